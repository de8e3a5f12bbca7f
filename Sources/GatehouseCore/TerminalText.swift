#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Makes untrusted text safe to put on a terminal: every C0/C1 control
/// character, DEL and ESC is shown escaped (`\x1b`), so neither a backend nor
/// stored data can move the cursor, repaint the screen or set the title.
/// Newlines and tabs survive when `keepLineBreaks` is set.
public enum TerminalText {
    public static func sanitize(_ bytes: some Sequence<UInt8>, keepLineBreaks: Bool = true) -> String {
        let input = Array(bytes)
        var out: [UInt8] = []
        out.reserveCapacity(input.count)
        input.withUnsafeBufferPointer { UTF8Escaping.escape($0, rules: Rules(keepLineBreaks: keepLineBreaks), into: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    public static func sanitize(_ text: String, keepLineBreaks: Bool = true) -> String {
        var text = text
        return text.withUTF8 { sanitize($0, keepLineBreaks: keepLineBreaks) }
    }

    /// `bytes` with a carriage return before each line feed, as a client's
    /// pty expects. Runs between line feeds are found with `memchr` and
    /// copied whole: this sits on every byte of a pty session's output.
    public static func withCarriageReturns(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + bytes.count / 16)
        bytes.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            var i = 0
            while i < buffer.count {
                guard let hit = memchr(base + i, 0x0a, buffer.count - i) else {
                    out.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[i...]))
                    return
                }
                let lf = base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
                out.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[i..<lf]))
                out.append(0x0d)
                out.append(0x0a)
                i = lf + 1
            }
        }
        return out
    }

    /// Sanitises a byte stream that arrives in pieces (a backend's pipe)
    /// without breaking a UTF-8 sequence a `read` split in two: its start is
    /// held back until the next piece (or `finish`) completes it. The output,
    /// piece by piece, is what `sanitize` gives for the same pieces with the
    /// held-back bytes moved to the next one.
    public struct Stream: Sendable {
        private let rules: Rules
        /// The start of a split sequence: a lead byte and at most two
        /// continuation bytes.
        private var pending: [UInt8] = []

        public init(keepLineBreaks: Bool = true) {
            rules = Rules(keepLineBreaks: keepLineBreaks)
        }

        /// Appends the sanitised text of the complete part of `pending + bytes` to `out`.
        public mutating func feed(_ bytes: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
            guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
            var start = 0
            if !pending.isEmpty {
                // Finish the split sequence with at most three more bytes,
                // which is all a unit that starts in `pending` can take.
                let held = pending.count
                let joined = pending + bytes.prefix(3)
                let next = joined.withUnsafeBufferPointer {
                    UTF8Escaping.scan($0.baseAddress!, count: $0.count, from: 0, limit: held, final: false,
                                      rules: rules, into: &out)
                }
                if next < held {               // still incomplete: all of `bytes` was in `joined`
                    pending = Array(joined[next...])
                    return
                }
                pending = []
                start = next - held
            }
            let next = UTF8Escaping.scan(base, count: bytes.count, from: start, limit: bytes.count, final: false,
                                         rules: rules, into: &out)
            if next < bytes.count { pending = Array(bytes[next...]) }
        }

        /// Appends whatever is held back, with ill-formed bytes replaced (U+FFFD).
        public mutating func finish(into out: inout [UInt8]) {
            guard !pending.isEmpty else { return }
            pending.withUnsafeBufferPointer { UTF8Escaping.escape($0, rules: rules, into: &out) }
            pending = []
        }
    }

    /// Every C0/C1 control, DEL and ESC as `\x1b`; line and paragraph
    /// separators and bidi controls as `\u{2028}`; newline and tab kept
    /// when asked.
    @usableFromInline
    struct Rules: UTF8EscapeRules, Sendable {
        @usableFromInline let keepLineBreaks: Bool

        @usableFromInline init(keepLineBreaks: Bool) { self.keepLineBreaks = keepLineBreaks }

        @inlinable @inline(__always)
        func isPlain(word: UInt64) -> Bool { !UTF8Escaping.hasControlOrNonASCII(word) }

        @inlinable @inline(__always)
        func lookMask(word: UInt64) -> UInt64 { UTF8Escaping.controlOrNonASCIIMask(word) }

        @inlinable @inline(__always)
        func isPlain(_ byte: UInt8) -> Bool {
            !byte.isASCIIControl || (keepLineBreaks && (byte == 0x0a || byte == 0x09))
        }

        @inlinable
        func escape(ascii byte: UInt8, into out: inout [UInt8]) { Self.writeHexEscape(UInt32(byte), into: &out) }

        @inlinable @inline(__always)
        func needsEscape(scalar: UInt32) -> Bool {
            let s = Unicode.Scalar(scalar).unsafelyUnwrapped
            return s.isControlCharacter || s.isLineOrParagraphSeparator || s.isBidiControl
        }

        @inlinable
        func escape(scalar: UInt32, into out: inout [UInt8]) {
            if Unicode.Scalar(scalar).unsafelyUnwrapped.isControlCharacter {
                Self.writeHexEscape(scalar, into: &out)
                return
            }
            out.append(0x5c)
            out.append(UInt8(ascii: "u"))
            out.append(UInt8(ascii: "{"))
            var digits = 0
            var rest = scalar
            repeat { digits += 1; rest >>= 4 } while rest > 0
            for d in stride(from: digits - 1, through: 0, by: -1) { out.append(Self.hexDigits[Int(scalar >> (4 * d) & 0xf)]) }
            out.append(UInt8(ascii: "}"))
        }

        @usableFromInline static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

        /// `\x` and two lowercase hex digits (only C0, DEL and C1 come here).
        @inlinable
        static func writeHexEscape(_ value: UInt32, into out: inout [UInt8]) {
            out.append(0x5c)
            out.append(UInt8(ascii: "x"))
            out.append(hexDigits[Int(value >> 4 & 0xf)])
            out.append(hexDigits[Int(value & 0xf)])
        }
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
}
