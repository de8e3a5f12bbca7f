import Foundation
import GatehouseCore

/// Text helpers for the reviewer tools. Everything they print passes through
/// here, so a recorded escape sequence (in a transcript, a command line or a
/// field) never acts on the reviewer's terminal.
public enum ReviewText {
    /// One-line safe text.
    public static func field(_ text: String?) -> String {
        TerminalText.sanitize(text ?? "", keepLineBreaks: false)
    }

    /// Transcript output made safe: CR LF becomes LF, everything else that is
    /// a control character (ESC, BS, a lone CR…) is shown escaped.
    public static func terminalOutput(_ text: String) -> String {
        TerminalText.sanitize(text.replacingOccurrences(of: "\r\n", with: "\n"), keepLineBreaks: true)
    }

    /// A JSON line safe for a terminal and still the same JSON value: the
    /// canonical encoding already escapes C0 controls; DEL, C1 controls and
    /// the Unicode line separators are escaped as `\uXXXX` too.
    public static func jsonLine(_ bytes: [UInt8]) -> String {
        var out = String.UnicodeScalarView()
        for scalar in String(decoding: bytes, as: UTF8.self).unicodeScalars {
            let v = scalar.value
            if scalar.isControlCharacter || scalar.isLineOrParagraphSeparator {
                let hex = String(v, radix: 16)
                out.append(contentsOf: ("\\u" + String(repeating: "0", count: 4 - hex.count) + hex).unicodeScalars)
            } else {
                out.append(scalar)
            }
        }
        return String(out)
    }

    /// One CSV cell (RFC 4180 quoting), sanitised. A cell starting with
    /// `= + - @` is prefixed with `'` so a spreadsheet never evaluates it.
    public static func csvCell(_ text: String?) -> String {
        var safe = field(text)
        if let first = safe.first, "=+-@".contains(first) { safe = "'" + safe }
        if safe.contains(where: { $0 == "," || $0 == "\"" || $0 == "'" }) {
            return "\"" + safe.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        return safe
    }

    /// `2026-11-29 04:12:03Z`
    public static func time(_ date: Date?) -> String {
        guard let date else { return "-" }
        let s = AuditTime.format(date)
        return s.replacingOccurrences(of: "T", with: " ")
            .replacingOccurrences(of: #"\.\d+Z$"#, with: "Z", options: .regularExpression)
    }

    /// Parses `--since`/`--until`: RFC 3339 (`2026-11-29T04:00:00Z`), a
    /// date (`2026-11-29`, UTC midnight), or an age (`90m`, `24h`, `7d`, `2w`).
    public static func parseTime(_ text: String, now: Date = Date()) -> Date? {
        if let d = AuditTime.parse(text) { return d }
        if text.range(of: #"^\d{4}-\d{2}-\d{2}$"#, options: .regularExpression) != nil {
            return AuditTime.parse(text + "T00:00:00Z")
        }
        guard let unitChar = text.last, let n = Double(text.dropLast()), n >= 0 else { return nil }
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800]
        guard let unit = units[unitChar] else { return nil }
        return now.addingTimeInterval(-n * unit)
    }
}
