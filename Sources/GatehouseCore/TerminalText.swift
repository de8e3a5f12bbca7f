/// Makes untrusted text safe to put on a terminal: every C0/C1 control
/// character, DEL and ESC is shown escaped (`\x1b`), so neither a backend nor
/// stored data can move the cursor, repaint the screen or set the title.
/// Newlines and tabs survive when `keepLineBreaks` is set.
public enum TerminalText {
    public static func sanitize(_ bytes: some Sequence<UInt8>, keepLineBreaks: Bool = true) -> String {
        let decoded = String(decoding: Array(bytes), as: UTF8.self)
        return sanitize(decoded, keepLineBreaks: keepLineBreaks)
    }

    public static func sanitize(_ text: String, keepLineBreaks: Bool = true) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            let v = scalar.value
            if keepLineBreaks && (v == 0x0a || v == 0x09) {
                out.append(scalar)
            } else if scalar.isControlCharacter {
                for s in "\\x\(hex(v))".unicodeScalars { out.append(s) }
            } else if scalar.isLineOrParagraphSeparator || scalar.isBidiControl {
                for s in "\\u{\(String(v, radix: 16))}".unicodeScalars { out.append(s) }
            } else {
                out.append(scalar)
            }
        }
        return String(out)
    }

    /// Terminal columns `text` takes, as a table must count them: East Asian
    /// wide and fullwidth characters and most emoji take two, combining marks
    /// and invisible format characters none, everything else one. Meant for
    /// text that was sanitised first (no control characters left).
    public static func columns(_ text: String) -> Int {
        text.unicodeScalars.reduce(0) { $0 + columns(of: $1) }
    }

    public static func columns(of scalar: Unicode.Scalar) -> Int {
        let v = scalar.value
        if v < 0x7f { return scalar.isControlCharacter ? 0 : 1 }
        switch scalar.properties.generalCategory {
        case .nonspacingMark, .enclosingMark, .control: return 0
        case .format: return v == 0xad ? 1 : 0
        default: break
        }
        return wideRanges.contains { $0.contains(v) } ? 2 : 1
    }

    /// East Asian Wide (W) and Fullwidth (F) blocks and the emoji blocks
    /// terminals draw two columns wide (after Markus Kuhn's wcwidth).
    private static let wideRanges: [ClosedRange<UInt32>] = [
        0x1100...0x115f, 0x231a...0x231b, 0x2329...0x232a, 0x23e9...0x23ec, 0x23f0...0x23f0, 0x23f3...0x23f3,
        0x25fd...0x25fe, 0x2614...0x2615, 0x2648...0x2653, 0x267f...0x267f, 0x2693...0x2693, 0x26a1...0x26a1,
        0x26aa...0x26ab, 0x26bd...0x26be, 0x26c4...0x26c5, 0x26ce...0x26ce, 0x26d4...0x26d4, 0x26ea...0x26ea,
        0x26f2...0x26f3, 0x26f5...0x26f5, 0x26fa...0x26fa, 0x26fd...0x26fd, 0x2705...0x2705, 0x270a...0x270b,
        0x2728...0x2728, 0x274c...0x274c, 0x274e...0x274e, 0x2753...0x2755, 0x2757...0x2757, 0x2795...0x2797,
        0x27b0...0x27b0, 0x27bf...0x27bf, 0x2b1b...0x2b1c, 0x2b50...0x2b50, 0x2b55...0x2b55,
        0x2e80...0x303e, 0x3041...0x33ff, 0x3400...0x4dbf, 0x4e00...0x9fff, 0xa000...0xa4cf, 0xa960...0xa97f,
        0xac00...0xd7a3, 0xf900...0xfaff, 0xfe10...0xfe19, 0xfe30...0xfe6f, 0xff00...0xff60, 0xffe0...0xffe6,
        0x16fe0...0x18cff, 0x1b000...0x1b2ff, 0x1f004...0x1f004, 0x1f0cf...0x1f0cf, 0x1f18e...0x1f18e,
        0x1f191...0x1f19a, 0x1f200...0x1f251, 0x1f300...0x1f64f, 0x1f680...0x1f6ff, 0x1f7e0...0x1f7eb,
        0x1f90c...0x1f9ff, 0x1fa70...0x1faff, 0x20000...0x2fffd, 0x30000...0x3fffd,
    ]

    private static func hex(_ v: UInt32) -> String {
        let s = String(v, radix: 16)
        return s.count == 1 ? "0" + s : s
    }
}
