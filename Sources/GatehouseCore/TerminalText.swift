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
            } else if v < 0x20 || v == 0x7f || (0x80...0x9f).contains(v) {
                for s in "\\x\(hex(v))".unicodeScalars { out.append(s) }
            } else if v == 0x2028 || v == 0x2029 || v == 0x85 {
                for s in "\\u{\(String(v, radix: 16))}".unicodeScalars { out.append(s) }
            } else {
                out.append(scalar)
            }
        }
        return String(out)
    }

    private static func hex(_ v: UInt32) -> String {
        let s = String(v, radix: 16)
        return s.count == 1 ? "0" + s : s
    }
}
