import Foundation

/// A refused API call: the status and the JSON error body the OpenAPI
/// document describes (`{"error": {"code": …, "message": …}}`).
public struct APIProblem: Error, Equatable, Sendable {
    public let status: Int
    public let code: String
    public let message: String
    public init(status: Int, code: String, message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public static func badRequest(_ message: String) -> APIProblem {
        APIProblem(status: 400, code: "InvalidParameter", message: message)
    }

    public var json: String {
        APIJSON.object(["error": .object(["code": .string(code), "message": .string(message)])])
    }
}

/// A tiny JSON writer for the API's answers (sorted keys, escaped strings),
/// so the monitor builds exactly what the OpenAPI document says.
public indirect enum APIJSON: Sendable, Equatable {
    case string(String), int(Int64), bool(Bool), null
    case array([APIJSON]), object([String: APIJSON])

    public static func object(_ fields: [String: APIJSON]) -> String { APIJSON.object(fields).text }

    public var text: String {
        switch self {
        case .string(let s): return Self.quote(s)
        case .int(let n): return String(n)
        case .bool(let b): return b ? "true" : "false"
        case .null: return "null"
        case .array(let items): return "[" + items.map(\.text).joined(separator: ",") + "]"
        case .object(let fields):
            return "{" + fields.keys.sorted().map { Self.quote($0) + ":" + fields[$0]!.text }.joined(separator: ",") + "}"
        }
    }

    public static func optional(_ s: String?) -> APIJSON { s.map { .string($0) } ?? .null }
    public static func optional(_ n: Int64?) -> APIJSON { n.map { .int($0) } ?? .null }
    public static func date(_ d: Date?) -> APIJSON { d.map { .string(APIParameters.format($0)) } ?? .null }

    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "<": out += "\\u003c"   // never markup, even if someone renders it
            case ">": out += "\\u003e"
            case "&": out += "\\u0026"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f || scalar.value == 0x2028 || scalar.value == 0x2029 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

/// The API's query parameters, checked strictly: an unknown parameter, a
/// bad time or a bad number is a 400 naming it, never a default.
public struct APIParameters: Sendable {
    public let raw: [String: String]

    public init(_ raw: [String: String], allowed: Set<String>) throws(APIProblem) {
        for key in raw.keys.sorted() where !allowed.contains(key) {
            throw .badRequest("unknown parameter \(key.debugDescription); allowed: \(allowed.sorted().joined(separator: ", "))")
        }
        self.raw = raw
    }

    public func string(_ name: String, maxLength: Int = 256) throws(APIProblem) -> String? {
        guard let value = raw[name] else { return nil }
        guard !value.isEmpty, value.utf8.count <= maxLength,
              !value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw .badRequest("\(name) must be 1-\(maxLength) bytes of text without control characters")
        }
        return value
    }

    public func int(_ name: String, in range: ClosedRange<Int>) throws(APIProblem) -> Int? {
        guard let value = raw[name] else { return nil }
        guard value.utf8.count <= 18, value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = Int(value),
              range.contains(n) else {
            throw .badRequest("\(name) must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return n
    }

    public func date(_ name: String) throws(APIProblem) -> Date? {
        guard let value = raw[name] else { return nil }
        guard let date = Self.parse(value) else {
            throw .badRequest("\(name) must be an ISO 8601 date-time such as 2026-12-06T10:00:00Z")
        }
        return date
    }

    public func oneOf(_ name: String, _ values: [String]) throws(APIProblem) -> String? {
        guard let value = raw[name] else { return nil }
        guard values.contains(value) else {
            throw .badRequest("\(name) must be one of: \(values.joined(separator: ", "))")
        }
        return value
    }

    /// RFC 3339 date-time, with or without fractional seconds.
    public static func parse(_ text: String) -> Date? {
        guard text.utf8.count <= 40 else { return nil }
        let plain = ISO8601DateFormatter()
        plain.formatOptions = [.withInternetDateTime]
        if let d = plain.date(from: text) { return d }
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return fractional.date(from: text)
    }

    /// With milliseconds.
    public static func formatPrecise(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: date)
    }

    public static func format(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: date)
    }
}

/// The content types of `GET /api/v1/activity`, in the manner of the
/// Management Activity API's `Audit.*`.
public enum ActivityContentType {
    public static let all = ["Audit.Session", "Audit.Command", "Audit.Lockbox", "Audit.Gateway"]

    public static func of(kind: String) -> String {
        if kind.hasPrefix("session.") || kind.hasPrefix("channel.") || kind.hasPrefix("transcript.") { return "Audit.Session" }
        if kind.hasPrefix("command.") { return "Audit.Command" }
        if kind.hasPrefix("lockbox.") || kind.hasPrefix("elevation.") { return "Audit.Lockbox" }
        return "Audit.Gateway"
    }
}

/// `GET /api/v1/activity`: audit events in a time window, oldest first,
/// paged by sequence number.
public struct ActivityQuery: Sendable, Equatable {
    public static let allowed: Set<String> = ["startTime", "endTime", "contentType", "user", "kind", "pageSize", "nextPage"]
    /// The longest window one call may ask for (the Management Activity API allows 24 hours; 7 days here).
    public static let maxWindow: TimeInterval = 7 * 86400
    public static let defaultWindow: TimeInterval = 86400

    public var startTime: Date
    public var endTime: Date
    public var contentType: String?
    public var user: String?
    public var kind: String?
    public var pageSize: Int
    /// Events after this sequence number (the cursor of `nextPage`).
    public var after: Int

    public static func parse(_ query: [String: String], now: Date) throws(APIProblem) -> ActivityQuery {
        let p = try APIParameters(query, allowed: allowed)
        let start = try p.date("startTime"), end = try p.date("endTime")
        let endTime = end ?? (start.map { $0 + defaultWindow } ?? now)
        let startTime = start ?? endTime - defaultWindow
        guard startTime < endTime else { throw .badRequest("startTime must be before endTime") }
        guard endTime.timeIntervalSince(startTime) <= maxWindow else {
            throw .badRequest("the window from startTime to endTime may be at most 7 days")
        }
        return ActivityQuery(startTime: startTime, endTime: endTime,
                             contentType: try p.oneOf("contentType", ActivityContentType.all),
                             user: try p.string("user", maxLength: 64), kind: try p.string("kind", maxLength: 64),
                             pageSize: try p.int("pageSize", in: 1...100) ?? 50,
                             after: try p.int("nextPage", in: 0...Int(Int32.max)) ?? 0)
    }

    /// The query that fetches the page after `lastSeq`, as a path with its parameters.
    /// The window is written to the millisecond, widened outwards, so a
    /// default `endTime` (now, to the nanosecond) loses no event on the next page.
    public func nextPageURI(afterSeq lastSeq: Int) -> String {
        let start = Date(timeIntervalSince1970: (startTime.timeIntervalSince1970 * 1000).rounded(.down) / 1000)
        let end = Date(timeIntervalSince1970: (endTime.timeIntervalSince1970 * 1000).rounded(.up) / 1000)
        var items: [(String, String)] = [("startTime", APIParameters.formatPrecise(start)),
                                         ("endTime", APIParameters.formatPrecise(end))]
        if let contentType { items.append(("contentType", contentType)) }
        if let user { items.append(("user", user)) }
        if let kind { items.append(("kind", kind)) }
        items.append(("pageSize", String(pageSize)))
        items.append(("nextPage", String(lastSeq)))
        return "/api/v1/activity?" + items.map { "\($0.0)=\(HTML.urlComponent($0.1))" }.joined(separator: "&")
    }
}

/// Paging over a list already in order: at most `pageSize` items after the
/// cursor, and the cursor of the next page when more remain.
public enum Paging {
    public static func page<T>(_ items: [T], pageSize: Int, after cursor: Int?, key: (T) -> Int,
                               ascending: Bool = true) -> (items: [T], next: Int?) {
        let rest = items.filter { item in
            guard let cursor else { return true }
            return ascending ? key(item) > cursor : key(item) < cursor
        }
        let page = Array(rest.prefix(pageSize))
        return (page, rest.count > page.count ? page.last.map(key) : nil)
    }
}
