// The one definition of "control character" for every layer: the lexer and
// the policy loader refuse these, the terminal, JSON and review writers
// escape them, the SSH layer strips them. A site that needs more than the
// control characters names the extra set it adds, so the difference is
// visible where it is used.

extension Unicode.Scalar {
    /// C0 (U+0000–U+001F), DEL (U+007F) and C1 (U+0080–U+009F): general
    /// category Cc. Each can move a terminal's cursor, end a line, or start
    /// an escape sequence (C1 U+009B is CSI on its own).
    public var isControlCharacter: Bool {
        value < 0x20 || (0x7f...0x9f).contains(value)
    }

    /// U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR: not controls,
    /// but line breaks to JavaScript, many editors and log viewers, so a
    /// single-line value that holds one can look like two lines.
    public var isLineOrParagraphSeparator: Bool {
        value == 0x2028 || value == 0x2029
    }

    /// Bidirectional embeddings, overrides and isolates and the implicit
    /// marks (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069): they make
    /// text display in an order other than the one it is stored in
    /// ("Trojan Source").
    public var isBidiControl: Bool {
        (0x202a...0x202e).contains(value) || (0x2066...0x2069).contains(value)
            || value == 0x200e || value == 0x200f || value == 0x061c
    }
}

extension UInt8 {
    /// C0 (0x00–0x1F) or DEL (0x7F): the control bytes of ASCII. A byte
    /// 0x80–0x9F is part of a UTF-8 sequence, not a C1 control; decode to
    /// `Unicode.Scalar` to see those.
    public var isASCIIControl: Bool {
        self < 0x20 || self == 0x7f
    }

    /// C0 only (0x00–0x1F): the bytes JSON (RFC 8259 section 7) forbids raw
    /// in a string. DEL is allowed there.
    public var isC0Control: Bool {
        self < 0x20
    }
}
