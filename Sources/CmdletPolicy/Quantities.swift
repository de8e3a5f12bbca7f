/// A byte count written the way admins and engineers write it: `512`, `1MB`,
/// `100GB`. Units are B, KB, MB, GB, TB, ASCII case-insensitive, and 1024-based
/// (1KB = 1024 bytes), as PowerShell's numeric suffixes are. Digits are ASCII
/// only, there is no fraction and no sign, and overflow is refused.
///
/// The backend receives the canonical form: the plain number of bytes in
/// decimal (`1GB` → `1073741824`). One unambiguous spelling means a backend
/// never re-parses units and can never disagree with the gateway about them.
public enum ByteSize {
    public static let units: [(suffix: String, factor: Int)] = [
        ("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10), ("B", 1),
    ]

    /// Bytes, or nil when the text is not a well-formed size.
    public static func parse(_ text: String) -> Int? {
        let upper = String(String.UnicodeScalarView(text.unicodeScalars.map { s in
            (s.value >= 0x61 && s.value <= 0x7a) ? (Unicode.Scalar(s.value - 0x20) ?? s) : s
        }))
        var digits = upper[...]
        var factor = 1
        for unit in units where upper.hasSuffix(unit.suffix) {
            digits = upper.dropLast(unit.suffix.count)
            factor = unit.factor
            break
        }
        guard let number = ASCII.parseNonNegativeInt(digits) else { return nil }
        let (bytes, overflow) = number.multipliedReportingOverflow(by: factor)
        return overflow ? nil : bytes
    }

    /// The largest exact unit spelling, for messages (`1073741824` → `1GB`).
    public static func format(_ bytes: Int) -> String {
        for unit in units where unit.factor > 1 && bytes > 0 && bytes % unit.factor == 0 {
            return "\(bytes / unit.factor)\(unit.suffix)"
        }
        return "\(bytes)B"
    }
}

/// A length of time in policy: `30s`, `5m`, `1h`, `7d`, ASCII digits and
/// one unit, no fraction and no sign. Kept as whole seconds.
public enum PolicyDuration {
    public static func parseSeconds(_ text: String) -> Int? {
        guard let unit = text.unicodeScalars.last else { return nil }
        let factor: Int
        switch unit {
        case "s": factor = 1
        case "m": factor = 60
        case "h": factor = 3600
        case "d": factor = 86400
        default: return nil
        }
        guard let number = ASCII.parseNonNegativeInt(text.dropLast()) else { return nil }
        let (seconds, overflow) = number.multipliedReportingOverflow(by: factor)
        return overflow ? nil : seconds
    }

    public static func format(_ seconds: Int) -> String {
        if seconds > 0 && seconds % 86400 == 0 { return "\(seconds / 86400)d" }
        if seconds > 0 && seconds % 3600 == 0 { return "\(seconds / 3600)h" }
        if seconds > 0 && seconds % 60 == 0 { return "\(seconds / 60)m" }
        return "\(seconds)s"
    }
}
