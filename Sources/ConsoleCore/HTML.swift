/// HTML that is safe to send: literal template text is trusted, and every
/// interpolated `String` is escaped (`&`, `<`, `>`, `"`, `'`), so data is
/// never concatenated into markup unescaped. Interpolating another `HTML`
/// inserts it as is (it was built the same way). Attribute values must be
/// quoted in the template; URLs built from data go through `url(_:)`.
public struct HTML: Sendable, Equatable, ExpressibleByStringInterpolation, CustomStringConvertible {
    public private(set) var rendered: String

    public init(stringLiteral value: StaticString) { rendered = value.description }

    public init(stringInterpolation: Interpolation) { rendered = stringInterpolation.output }

    public var description: String { rendered }

    public struct Interpolation: StringInterpolationProtocol {
        var output = ""
        public init(literalCapacity: Int, interpolationCount: Int) { output.reserveCapacity(literalCapacity * 2) }
        public mutating func appendLiteral(_ literal: StaticString) { output += literal.description }
        public mutating func appendInterpolation(_ text: String) { output += HTML.escape(text) }
        public mutating func appendInterpolation(_ text: String?) { output += HTML.escape(text ?? "") }
        public mutating func appendInterpolation<N: BinaryInteger>(_ number: N) { output += String(number) }
        public mutating func appendInterpolation(_ html: HTML) { output += html.rendered }
        public mutating func appendInterpolation(_ parts: [HTML]) { for part in parts { output += part.rendered } }
    }

    /// Escapes text for element content and quoted attribute values. Control
    /// characters (a recorded escape sequence) become visible U+FFFD-free
    /// `\u{..}` text, so nothing a terminal would act on reaches the page.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case "\n", "\t": out.unicodeScalars.append(scalar)
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f || (0x80...0x9f).contains(scalar.value) {
                    out += "\\u{" + String(scalar.value, radix: 16) + "}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    /// Percent-encodes one path segment or query value (RFC 3986 unreserved kept).
    public static func urlComponent(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case 0x30...0x39, 0x41...0x5a, 0x61...0x7a, 0x2d, 0x2e, 0x5f, 0x7e: out.unicodeScalars.append(Unicode.Scalar(byte))
            default: out += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            }
        }
        return out
    }

    public static func join(_ parts: [HTML]) -> HTML {
        var h: HTML = ""
        h.rendered = parts.map(\.rendered).joined()
        return h
    }
}
