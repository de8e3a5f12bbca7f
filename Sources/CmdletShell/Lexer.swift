import CmdletPolicy

/// A syntax error with the 1-based column (in Unicode scalars) it starts at.
public struct SyntaxError: Error, Sendable, Equatable {
    public let message: String
    public let column: Int

    public init(_ message: String, column: Int) {
        self.message = message
        self.column = column
    }
}

/// One word of a command line.
public struct Token: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// An unquoted word that does not start with '-'.
        case bare
        /// A single- or double-quoted string (quotes removed, `''`/`""` unescaped).
        case quoted
        /// `-Name` or `-Name:value`; `text` is the name without the dash.
        case parameter(inlineValue: InlineValue?)
        /// `|` outside quotes: the line continues with a built-in formatter.
        case pipe
    }

    /// The `value` of `-Name:value`, with its own column and quoting.
    public struct InlineValue: Sendable, Equatable {
        public let text: String
        public let quoted: Bool
        public let column: Int

        public init(text: String, quoted: Bool, column: Int) {
            self.text = text
            self.quoted = quoted
            self.column = column
        }
    }

    public let kind: Kind
    public let text: String
    /// 1-based column of the token's first scalar.
    public let column: Int
}

/// Splits one line into tokens, refusing everything that would make the line
/// mean something in PowerShell (or a POSIX shell) beyond "a cmdlet with
/// literal arguments". The lexer is deliberately much stricter than
/// PowerShell: anything it accepts means the same thing to the gateway and to
/// any PowerShell-like backend.
///
/// Refused, with the column where it starts:
/// - invalid UTF-8, and lines longer than `maxLineBytes`;
/// - control characters (C0, DEL, C1), U+2028/U+2029, invisible format
///   characters (zero-width, bidi overrides: "Trojan source") and non-ASCII
///   spaces; tab counts as a space;
/// - language features: `$ { } ( ) ; & < >` and backtick anywhere outside
///   single quotes, `@` and `#` at the start of a word (splatting,
///   comments), and `--%`;
///
/// `|` outside quotes is a token of its own (`.pipe`); what may follow it
/// (built-in formatters only) is decided by `Pipeline`, not here.
/// - Unicode look-alikes of '-' and quotes — en dash, em dash, horizontal bar,
///   minus sign, and the smart quotes U+2018–U+201E — everywhere, even inside
///   quotes. PowerShell treats these exactly like '-', `'` and `"`, so a
///   value holding one could end a quoted string in one reading and not in
///   the other. Refusing them (rather than normalising) keeps one reading
///   only, and tells the user about the word processor that produced them.
///
/// Single quotes are literal with `''` for a quote. Double quotes are literal
/// too (no expansion at all) with `""` for a quote; `$` and backtick inside
/// them are refused, because PowerShell would expand or escape there.
public enum Lexer {
    /// The longest line accepted, in bytes.
    public static let maxLineBytes = 4096

    public static func tokenize(_ bytes: [UInt8]) -> Result<[Token], SyntaxError> {
        if bytes.count > maxLineBytes {
            return .failure(SyntaxError("line is longer than \(maxLineBytes) bytes", column: maxLineBytes + 1))
        }
        let scalars: [Unicode.Scalar]
        switch UTF8Validation.decode(bytes) {
        case .success(let s): scalars = s
        case .failure(let error): return .failure(error)
        }
        // Character-class checks first, so the reported problem is the
        // leftmost refused character whatever the quoting around it.
        for (i, s) in scalars.enumerated() {
            if let message = refusedEverywhere(s) {
                return .failure(SyntaxError(message, column: i + 1))
            }
        }
        var scanner = Scanner(scalars: scalars)
        return scanner.run()
    }

    /// Characters refused wherever they appear.
    static func refusedEverywhere(_ s: Unicode.Scalar) -> String? {
        let v = s.value
        switch v {
        case 0x09: return nil
        case _ where s.isControlCharacter:
            return "control character \(hex(v)) is not allowed"
        case _ where s.isLineOrParagraphSeparator:
            return "line separator \(hex(v)) is not allowed"
        case 0x2013, 0x2014, 0x2015, 0x2212, 0xfe58, 0xfe63, 0xff0d:
            return "the dash look-alike \(hex(v)) is not allowed; type a plain '-' (U+002D)"
        case 0x2018, 0x2019, 0x201a, 0x201b, 0x201c, 0x201d, 0x201e:
            return "the typographic quote \(hex(v)) is not allowed; type a plain ' or \""
        case 0x00a0, 0x1680, 0x2000...0x200a, 0x202f, 0x205f, 0x3000:
            return "the non-ASCII space \(hex(v)) is not allowed; type a plain space"
        case 0x00ad, 0x061c, 0x180e, 0x200b...0x200f, 0x202a...0x202e, 0x2060...0x2064, 0x2066...0x206f, 0xfeff,
             0xfff9...0xfffb, 0xe0000...0xe007f:
            return "the invisible formatting character \(hex(v)) is not allowed"
        default:
            return nil
        }
    }

    static func hex(_ v: UInt32) -> String {
        let digits = String(v, radix: 16, uppercase: true)
        return "U+" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    /// Refused outside single quotes, with the reason shown to the user.
    static func metacharacterMessage(_ s: Unicode.Scalar) -> String? {
        switch s {
        case "$": return "'$' is not allowed: there are no variables or expressions"
        case "`": return "the backtick escape character is not allowed"
        case ";": return "';' is not allowed: one command per line"
        case "&": return "'&' is not allowed: no background jobs or call operator"
        case "(", ")": return "'\(s)' is not allowed: no subexpressions"
        case "{", "}": return "'\(s)' is not allowed: no script blocks"
        case "<", ">": return "'\(s)' is not allowed: no redirection"
        default: return nil
        }
    }

    struct Scanner {
        let scalars: [Unicode.Scalar]
        var index = 0

        init(scalars: [Unicode.Scalar]) { self.scalars = scalars }

        static func isSpace(_ s: Unicode.Scalar) -> Bool { s == " " || s == "\t" }

        mutating func run() -> Result<[Token], SyntaxError> {
            var tokens: [Token] = []
            while true {
                while index < scalars.count, Scanner.isSpace(scalars[index]) { index += 1 }
                guard index < scalars.count else { return .success(tokens) }
                switch token() {
                case .success(let t): tokens.append(t)
                case .failure(let e): return .failure(e)
                }
            }
        }

        mutating func token() -> Result<Token, SyntaxError> {
            let start = index
            let column = start + 1
            let first = scalars[start]
            if first == "|" {
                index += 1
                return .success(Token(kind: .pipe, text: "|", column: column))
            }
            if first == "'" || first == "\"" {
                return quoted().map { Token(kind: .quoted, text: $0, column: column) }
            }
            if first == "@" {
                return .failure(SyntaxError("'@' is not allowed at the start of a word: no splatting or arrays", column: column))
            }
            if first == "#" {
                return .failure(SyntaxError("'#' is not allowed at the start of a word: no comments", column: column))
            }
            // A bare word runs to the next space. For `-Name:'value'` the
            // word ends at the colon and a quoted inline value follows.
            var text = String.UnicodeScalarView()
            var inline: Token.InlineValue?
            while index < scalars.count, !Scanner.isSpace(scalars[index]), scalars[index] != "|" {
                let s = scalars[index]
                if let message = Lexer.metacharacterMessage(s) {
                    return .failure(SyntaxError(message, column: index + 1))
                }
                if s == "'" || s == "\"" {
                    let isInlineStart = first == "-" && index > start && scalars[index - 1] == ":"
                        && !text.dropLast().contains(":")
                    guard isInlineStart else {
                        return .failure(SyntaxError("a quote may only start a word (or follow '-Name:')", column: index + 1))
                    }
                    let valueColumn = index + 1
                    switch quoted() {
                    case .success(let value):
                        inline = .init(text: value, quoted: true, column: valueColumn)
                    case .failure(let e):
                        return .failure(e)
                    }
                    break
                }
                text.append(s)
                index += 1
            }
            let word = String(text)
            guard first == "-" else { return .success(Token(kind: .bare, text: word, column: column)) }

            if word == "--%" || word.hasPrefix("--%") {
                return .failure(SyntaxError("the stop-parsing token '--%' is not allowed", column: column))
            }
            // `-Name`, `-Name:value` or `-Name:` + quoted value.
            var body = Substring(word.dropFirst())
            if inline != nil {
                body = body.dropLast() // the ':' before the quote
            } else if let colon = body.firstIndex(of: ":") {
                let value = String(body[body.index(after: colon)...])
                let valueColumn = column + 1 + body.distance(from: body.startIndex, to: colon) + 1
                body = body[..<colon]
                inline = .init(text: value, quoted: false, column: valueColumn)
            }
            return .success(Token(kind: .parameter(inlineValue: inline), text: String(body), column: column))
        }

        /// Reads a quoted string starting at `index` (on the quote).
        mutating func quoted() -> Result<String, SyntaxError> {
            let quote = scalars[index]
            let openColumn = index + 1
            index += 1
            var value = String.UnicodeScalarView()
            while index < scalars.count {
                let s = scalars[index]
                if s == quote {
                    if index + 1 < scalars.count, scalars[index + 1] == quote {
                        value.append(quote)
                        index += 2
                        continue
                    }
                    index += 1
                    if index < scalars.count, !Scanner.isSpace(scalars[index]), scalars[index] != "|" {
                        return .failure(SyntaxError("expected a space after the closing quote", column: index + 1))
                    }
                    return .success(String(value))
                }
                if quote == "\"" && (s == "$" || s == "`") {
                    let what = s == "$" ? "'$'" : "the backtick"
                    return .failure(SyntaxError("\(what) is not allowed inside double quotes; use single quotes for a literal value",
                                                column: index + 1))
                }
                value.append(s)
                index += 1
            }
            return .failure(SyntaxError("missing closing quote", column: openColumn))
        }
    }
}

/// Strict UTF-8 decoding that reports where the first bad sequence starts.
/// Overlong forms, surrogates and values above U+10FFFF are refused.
enum UTF8Validation {
    static func decode(_ bytes: [UInt8]) -> Result<[Unicode.Scalar], SyntaxError> {
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            let b0 = bytes[i]
            let length: Int
            var value: UInt32
            switch b0 {
            case 0x00...0x7f: length = 1; value = UInt32(b0)
            case 0xc2...0xdf: length = 2; value = UInt32(b0 & 0x1f)
            case 0xe0...0xef: length = 3; value = UInt32(b0 & 0x0f)
            case 0xf0...0xf4: length = 4; value = UInt32(b0 & 0x07)
            default: return .failure(invalid(scalars.count))
            }
            guard i + length <= bytes.count else { return .failure(invalid(scalars.count)) }
            for k in 1..<max(length, 1) where length > 1 {
                let b = bytes[i + k]
                guard b & 0xc0 == 0x80 else { return .failure(invalid(scalars.count)) }
                value = (value << 6) | UInt32(b & 0x3f)
            }
            let minimum: UInt32 = [0, 0, 0x80, 0x800, 0x10000][length]
            guard value >= minimum, let scalar = Unicode.Scalar(value) else {
                return .failure(invalid(scalars.count))
            }
            scalars.append(scalar)
            i += length
        }
        return .success(scalars)
    }

    static func invalid(_ scalarsBefore: Int) -> SyntaxError {
        SyntaxError("the line is not valid UTF-8", column: scalarsBefore + 1)
    }
}
