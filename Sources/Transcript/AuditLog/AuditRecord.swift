import Crypto
import Foundation
import GatehouseCore

/// One line of the chained audit log: the event plus its place in the chain.
///
/// On disk a record is the canonical JSON (see `JSONValue`) of
/// `{seq, prev, hash, time, kind, user?, session?, fields?}`, where `hash` is
/// the hex SHA-256 of the canonical JSON of the same object without `hash`,
/// and `prev` is the previous record's `hash` (64 zeros for seq 1).
public struct AuditRecord: Sendable, Equatable {
    public static let genesisHash = String(repeating: "0", count: 64)

    public let seq: Int
    public let prev: String
    public let hash: String
    public let time: Date
    /// The kind as written (a reader keeps kinds it does not know).
    public let kind: String
    public let user: String?
    public let session: String?
    public let fields: [String: String]

    /// The line as `init(event:seq:prev:)` built it next to the hash; nil
    /// for a record read back, whose line is encoded on demand.
    private let builtLine: [UInt8]?

    /// Builds the record that follows `prev` (computing its hash).
    ///
    /// One encoding serves both the hash and the line. In canonical key
    /// order `fields` sorts before `hash` and every other key after it, so
    /// the line is the hashed bytes with `"hash":"…",` spliced in after the
    /// fields. Encoding the body twice (once to hash it, once with the hash
    /// to write it) was half of the audit's instructions, 7 times a login.
    public init(event: AuditEvent, seq: Int, prev: String) {
        let session = event.session?.rawValue
        var rest: [String: JSONValue] = [
            "seq": .int(seq), "prev": .string(prev),
            "time": .string(AuditTime.format(event.time)), "kind": .string(event.kind.rawValue),
        ]
        if let user = event.user { rest["user"] = .string(user) }
        if let session { rest["session"] = .string(session) }
        var head: [UInt8] = [UInt8(ascii: "{")]
        if !event.fields.isEmpty {
            head.append(contentsOf: #""fields":"#.utf8)
            head.append(contentsOf: JSONValue.object(event.fields.mapValues { .string($0) }).canonicalBytes)
            head.append(UInt8(ascii: ","))
        }
        // `rest` always has members: its encoding is `{` + them + `}`.
        let tail = JSONValue.object(rest).canonicalBytes.dropFirst()
        let hash = Self.hashHex(head + tail)
        var line = head
        line.append(contentsOf: #""hash":""#.utf8)
        line.append(contentsOf: hash.utf8)
        line.append(contentsOf: #"","#.utf8)
        line.append(contentsOf: tail)
        self.init(seq: seq, prev: prev, hash: hash, time: event.time, kind: event.kind.rawValue,
                  user: event.user, session: session, fields: event.fields, line: line)
    }

    init(seq: Int, prev: String, hash: String, time: Date, kind: String, user: String?, session: String?,
         fields: [String: String], line: [UInt8]? = nil) {
        self.seq = seq; self.prev = prev; self.hash = hash; self.time = time; self.kind = kind
        self.user = user; self.session = session; self.fields = fields
        builtLine = line
    }

    /// Equal content; how the line was obtained does not matter.
    public static func == (a: AuditRecord, b: AuditRecord) -> Bool {
        a.seq == b.seq && a.prev == b.prev && a.hash == b.hash && a.time == b.time && a.kind == b.kind
            && a.user == b.user && a.session == b.session && a.fields == b.fields
    }

    /// The line as written (without the newline).
    public var lineBytes: [UInt8] {
        if let builtLine { return builtLine }
        guard case .object(var members) = body else { return [] }
        members["hash"] = .string(hash)
        return JSONValue.object(members).canonicalBytes
    }

    /// The hashed content: everything but `hash`.
    var body: JSONValue {
        var members: [String: JSONValue] = [
            "seq": .int(seq), "prev": .string(prev),
            "time": .string(AuditTime.format(time)), "kind": .string(kind),
        ]
        if let user { members["user"] = .string(user) }
        if let session { members["session"] = .string(session) }
        if !fields.isEmpty { members["fields"] = .object(fields.mapValues { .string($0) }) }
        return .object(members)
    }

    static func hashHex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for b in SHA256.hash(data: bytes) {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xf)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Why a line is not a well-formed record.
    public struct ParseFailure: Error, Sendable { public let reason: String }

    /// What parsing one line found: the record, and whether its content still
    /// matches its own hash.
    public struct Parsed: Sendable {
        public let record: AuditRecord
        public let hashMatches: Bool
        /// The line is byte for byte the canonical encoding of what it
        /// parses to. A duplicated key, for one, is not: parsers disagree on
        /// which copy wins, so such a line must not pass as unaltered.
        public let isCanonical: Bool
    }

    /// Parses one line. Unknown event kinds are kept as written, so a
    /// newer log still verifies with an older tool.
    public static func parse(line: some Collection<UInt8>) throws -> Parsed {
        let value: JSONValue
        do { value = try JSONValue.parse(line) } catch { throw ParseFailure(reason: "not valid JSON") }
        guard case .object(var members) = value else { throw ParseFailure(reason: "not a JSON object") }
        let isCanonical = value.canonicalBytes.elementsEqual(line)
        guard let seq = members["seq"]?.int, let prev = members["prev"]?.string,
              let hash = members["hash"]?.string, let kindName = members["kind"]?.string,
              let timeText = members["time"]?.string else {
            throw ParseFailure(reason: "missing seq, prev, hash, kind or time")
        }
        members["hash"] = nil
        let recomputed = hashHex(JSONValue.object(members).canonicalBytes)
        var fields: [String: String] = [:]
        if let raw = members["fields"]?.object {
            for (k, v) in raw { fields[k] = v.string ?? "" }
        }
        let record = AuditRecord(seq: seq, prev: prev, hash: hash,
                                 time: AuditTime.parse(timeText) ?? Date(timeIntervalSince1970: 0),
                                 kind: kindName, user: members["user"]?.string,
                                 session: members["session"]?.string, fields: fields)
        return Parsed(record: record, hashMatches: recomputed == hash, isCanonical: isCanonical)
    }
}

/// The audit log's time format: RFC 3339 UTC with milliseconds.
public enum AuditTime {
    public static func format(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    public static func parse(_ text: String) -> Date? {
        if let d = parseFast(text) { return d }
        if let d = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return d }
        return try? Date.ISO8601FormatStyle().parse(text)
    }

    /// The exact shape `format` writes, `2026-11-29T04:10:28.713Z`, parsed
    /// without a formatter (reindexing a long log parses millions of these).
    static func parseFast(_ text: String) -> Date? {
        let b = Array(text.utf8)
        guard b.count == 24, b[4] == 0x2d, b[7] == 0x2d, b[10] == 0x54, b[13] == 0x3a, b[16] == 0x3a,
              b[19] == 0x2e, b[23] == 0x5a else { return nil }
        func num(_ r: Range<Int>) -> Int? {
            var v = 0
            for i in r {
                guard b[i] >= 0x30 && b[i] <= 0x39 else { return nil }
                v = v * 10 + Int(b[i] - 0x30)
            }
            return v
        }
        guard let y = num(0..<4), let mo = num(5..<7), let d = num(8..<10), let h = num(11..<13),
              let mi = num(14..<16), let s = num(17..<19), let ms = num(20..<23),
              (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, s < 61 else { return nil }
        // Days from civil (Howard Hinnant's algorithm), UTC.
        let yy = mo <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146097 + doe - 719468
        let seconds = Double(days * 86400 + h * 3600 + mi * 60 + s) + Double(ms) / 1000
        return Date(timeIntervalSince1970: seconds)
    }
}
