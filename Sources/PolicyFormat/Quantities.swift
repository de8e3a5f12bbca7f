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

/// A UTC instant typed on a command line: `YYYY-MM-DD` (midnight) or
/// `YYYY-MM-DDTHH:MM:SSZ`. ASCII digits only, no offsets other than `Z`, no
/// fractions: one spelling per instant, so gateway and backend cannot read a
/// value two ways. Kept as seconds since the epoch (proleptic Gregorian).
public enum PolicyDateTime {
    public static func parse(_ text: String) -> Int? {
        let s = Array(text.unicodeScalars)
        guard s.count == 10 || (s.count == 20 && s[10] == "T" && s[13] == ":" && s[16] == ":" && s[19] == "Z"),
              s[4] == "-", s[7] == "-" else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            guard s[range].allSatisfy(ASCII.isDigit) else { return nil }
            return ASCII.parseNonNegativeInt(String(String.UnicodeScalarView(s[range])))
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
              (1970...9999).contains(year), (1...12).contains(month),
              (1...daysIn(month: month, year: year)).contains(day) else { return nil }
        var seconds = 0
        if s.count == 20 {
            guard let h = number(11..<13), let m = number(14..<16), let sec = number(17..<19),
                  h < 24, m < 60, sec < 60 else { return nil }
            seconds = h * 3600 + m * 60 + sec
        }
        return daysFromCivil(year, month, day) * 86400 + seconds
    }

    public static func format(_ t: Int) -> String {
        let days = t >= 0 ? t / 86400 : (t - 86399) / 86400
        let rest = t - days * 86400
        let (y, m, d) = civilFromDays(days)
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(y)-\(two(m))-\(two(d))T\(two(rest / 3600)):\(two(rest % 3600 / 60)):\(two(rest % 60))Z"
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    // Howard Hinnant's days_from_civil / civil_from_days.
    static func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    static func civilFromDays(_ z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}
