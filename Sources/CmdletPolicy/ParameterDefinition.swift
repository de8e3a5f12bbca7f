import Foundation

/// The declared type of a parameter. New types (`duration`, `datetime`,
/// lists) are added as new cases; binding switches over this exhaustively so
/// the compiler points at every place that must learn the new type.
public enum ParameterType: String, Sendable, CaseIterable {
    case string
    case int
    case size
    case `switch`
    case `enum`
    /// `30s`, `5m`, `2h`, `7d`; reaches the backend as whole seconds.
    case duration
    /// `2026-01-31` or `2026-01-31T08:00:00Z` (UTC only); reaches the backend
    /// as `YYYY-MM-DDTHH:MM:SSZ`.
    case datetime
}

/// A parameter as declared, with its constraints already compiled.
public struct ParameterDefinition: Sendable {
    public let name: String
    public let type: ParameterType
    public let mandatory: Bool
    /// Positional slot (0-based) when the value may be given without `-Name`.
    public let position: Int?
    public let description: String?
    public let pattern: AnchoredPattern?
    /// Allowed values (declared spelling), for `enum` and optionally `string`.
    public let allowedValues: [String]?
    /// Inclusive bounds: a number for `int`, bytes for `size`.
    public let minimum: Int?
    public let maximum: Int?
    /// Longest accepted value in UTF-8 bytes (string parameters).
    public let maxLength: Int
    /// Declared as `type: T[]`: the value is a comma list `a,b,c` (a quoted
    /// value is one item, as in PowerShell), each item checked on its own.
    public let isList: Bool
    /// Most items a list may hold.
    public let maxItems: Int
    /// Only when the policy says so may a value start with '-'; otherwise
    /// no typed value can ever look like an option to the backend.
    public let allowLeadingDash: Bool

    public static let defaultMaxLength = 256
    public static let maximumMaxLength = 4096
    public static let defaultMaxItems = 32

    public init(name: String, type: ParameterType, mandatory: Bool, position: Int?, description: String?,
                pattern: AnchoredPattern?, allowedValues: [String]?, minimum: Int?, maximum: Int?, maxLength: Int,
                isList: Bool = false, maxItems: Int = ParameterDefinition.defaultMaxItems,
                allowLeadingDash: Bool = false) {
        self.name = name
        self.type = type
        self.mandatory = mandatory
        self.position = position
        self.description = description
        self.pattern = pattern
        self.allowedValues = allowedValues
        self.minimum = minimum
        self.maximum = maximum
        self.maxLength = maxLength
        self.isList = isList
        self.maxItems = maxItems
        self.allowLeadingDash = allowLeadingDash
    }

    /// The type as `Get-Help` shows it: `string`, `string[]`.
    public var typeName: String { type.rawValue + (isList ? "[]" : "") }

    /// Checks a list value item by item; `items` are already split.
    public func validate(items: [String]) -> Result<ParameterValue, ParameterValueError> {
        guard isList else {
            guard items.count == 1 else { return .failure(.init("-\(name) takes one value, not a list")) }
            return validate(items[0])
        }
        if items.count > maxItems {
            return .failure(.init("-\(name) takes at most \(maxItems) values"))
        }
        var values: [ParameterValue] = []
        for item in items {
            if item.isEmpty { return .failure(.init("-\(name) has an empty list item")) }
            if item.hasPrefix("-") && !allowLeadingDash {
                return .failure(.init("values may not start with '-'"))
            }
            if item.hasPrefix("@") { return .failure(.init("values may not start with '@'")) }
            switch validate(item) {
            case .success(let v): values.append(v)
            case .failure(let e): return .failure(e)
            }
        }
        return .success(.list(values))
    }

    /// Checks one raw value against type and constraints. The returned value
    /// carries the canonical text that reaches the backend.
    public func validate(_ raw: String) -> Result<ParameterValue, ParameterValueError> {
        switch type {
        case .switch:
            return .failure(.init("-\(name) is a switch and takes no value"))
        case .string:
            return validateText(raw).map { .string($0) }
        case .enum:
            return validateText(raw).map { .enumeration($0) }
        case .int:
            guard let number = ASCII.parseNonNegativeInt(raw) else {
                return .failure(.init("-\(name) expects a whole number (ASCII digits only)"))
            }
            if let minimum, number < minimum {
                return .failure(.init("-\(name) must be at least \(minimum)"))
            }
            if let maximum, number > maximum {
                return .failure(.init("-\(name) must be at most \(maximum)"))
            }
            return .success(.int(number))
        case .size:
            guard let bytes = ByteSize.parse(raw) else {
                return .failure(.init("-\(name) expects a size such as 500MB or 10GB (units B, KB, MB, GB, TB)"))
            }
            if let minimum, bytes < minimum {
                return .failure(.init("-\(name) must be at least \(ByteSize.format(minimum))"))
            }
            if let maximum, bytes > maximum {
                return .failure(.init("-\(name) must be at most \(ByteSize.format(maximum))"))
            }
            return .success(.size(bytes: bytes))
        case .duration:
            guard let seconds = PolicyDuration.parseSeconds(raw) else {
                return .failure(.init("-\(name) expects a duration such as 30s, 15m, 2h or 7d"))
            }
            if let minimum, seconds < minimum {
                return .failure(.init("-\(name) must be at least \(PolicyDuration.format(minimum))"))
            }
            if let maximum, seconds > maximum {
                return .failure(.init("-\(name) must be at most \(PolicyDuration.format(maximum))"))
            }
            return .success(.duration(seconds: seconds))
        case .datetime:
            guard let date = PolicyDateTime.parse(raw) else {
                return .failure(.init("-\(name) expects a UTC date such as 2026-01-31 or 2026-01-31T08:00:00Z"))
            }
            return .success(.dateTime(date))
        }
    }

    private func validateText(_ raw: String) -> Result<String, ParameterValueError> {
        if raw.utf8.count > maxLength {
            return .failure(.init("-\(name) is longer than \(maxLength) bytes"))
        }
        if let allowedValues {
            let key = ASCII.lowercased(raw)
            guard let declared = allowedValues.first(where: { ASCII.lowercased($0) == key }) else {
                return .failure(.init("-\(name) must be one of: \(allowedValues.joined(separator: ", "))"))
            }
            return .success(declared)
        }
        if let pattern {
            guard pattern.matches(raw) else {
                return .failure(.init("-\(name) does not match the allowed pattern \(pattern.source)"))
            }
            return .success(raw)
        }
        if raw.isEmpty {
            return .failure(.init("-\(name) must not be empty"))
        }
        return .success(raw)
    }
}

/// Why a value was refused; safe to show the client.
public struct ParameterValueError: Error, Sendable, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
}

/// A validated value. `argumentText` is the only text a backend ever sees.
public enum ParameterValue: Sendable, Equatable {
    case string(String)
    case int(Int)
    /// Bytes; handed to the backend as a plain decimal byte count.
    case size(bytes: Int)
    /// A present switch. An absent switch is simply not bound.
    case switchPresent
    /// The declared spelling of the matching set member.
    case enumeration(String)
    /// Whole seconds.
    case duration(seconds: Int)
    /// Seconds since 1970-01-01T00:00:00Z (UTC).
    case dateTime(Int)
    /// The items of a list parameter, each validated on its own.
    case list([ParameterValue])

    /// For a list, the items joined with ','; templates expand lists item by
    /// item instead (see `TemplateExpander`), so this only feeds audit text.
    public var argumentText: String {
        switch self {
        case .string(let s), .enumeration(let s): return s
        case .int(let n): return String(n)
        case .size(let b): return String(b)
        case .switchPresent: return "true"
        case .duration(let s): return String(s)
        case .dateTime(let t): return PolicyDateTime.format(t)
        case .list(let items): return items.map(\.argumentText).joined(separator: ",")
        }
    }

    /// The items of a list, or the value itself as a one-item list.
    public var items: [ParameterValue] {
        if case .list(let items) = self { return items }
        return [self]
    }
}

/// A regular expression that must match the *whole* value.
///
/// Admins write `'^[a-z]+$'`, but ICU's `$` also matches before a final line
/// terminator, and a pattern without anchors would match any substring. So
/// the match is only accepted when it covers the entire value, and a value
/// containing any line terminator (`\n`, `\r`, U+0085, U+2028, U+2029) never
/// matches at all, whatever the pattern says.
public struct AnchoredPattern: Sendable {
    public let source: String
    private let regex: NSRegularExpression

    /// Compiles `source` alone (so an unbalanced pattern cannot escape the
    /// wrapping) and then wrapped as `\A(?:source)\z`, so backtracking looks
    /// for a whole-value match rather than settling for a prefix.
    public init(_ source: String) throws {
        self.source = source
        _ = try NSRegularExpression(pattern: source, options: [])
        regex = try NSRegularExpression(pattern: "\\A(?:" + source + ")\\z", options: [])
    }

    private static let lineTerminators: Set<UInt32> = [0x0a, 0x0b, 0x0c, 0x0d, 0x85, 0x2028, 0x2029]

    public func matches(_ value: String) -> Bool {
        if value.unicodeScalars.contains(where: { AnchoredPattern.lineTerminators.contains($0.value) }) {
            return false
        }
        let whole = NSRange(value.startIndex..<value.endIndex, in: value)
        let found = regex.firstMatch(in: value, options: [.anchored], range: whole)
        guard let found else { return false }
        return found.range.location == whole.location && found.range.length == whole.length
    }
}
