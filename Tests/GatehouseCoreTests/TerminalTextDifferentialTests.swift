import GatehouseCore
import TestSupport
import XCTest

/// The byte-buffer sanitiser must give exactly what the scalar-by-scalar
/// implementation it replaced gave, for every input and every way a pipe may
/// split it. That implementation is kept here, verbatim, as the oracle.
enum LegacyTerminalText {
    static func sanitize(_ bytes: some Sequence<UInt8>, keepLineBreaks: Bool = true) -> String {
        let decoded = String(decoding: Array(bytes), as: UTF8.self)
        return sanitize(decoded, keepLineBreaks: keepLineBreaks)
    }

    static func sanitize(_ text: String, keepLineBreaks: Bool = true) -> String {
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

    private static func hex(_ v: UInt32) -> String {
        let s = String(v, radix: 16)
        return s.count == 1 ? "0" + s : s
    }

    /// CmdletShell's former `StreamSanitizer`.
    struct Stream {
        private var pending: [UInt8] = []

        mutating func feed(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
            var data = pending
            data.append(contentsOf: bytes)
            let cut = Stream.completePrefixLength(data)
            pending = Array(data[cut...])
            guard cut > 0 else { return [] }
            return Array(LegacyTerminalText.sanitize(data[..<cut], keepLineBreaks: true).utf8)
        }

        mutating func finish() -> [UInt8] {
            defer { pending = [] }
            guard !pending.isEmpty else { return [] }
            return Array(LegacyTerminalText.sanitize(pending, keepLineBreaks: true).utf8)
        }

        static func completePrefixLength(_ data: [UInt8]) -> Int {
            let n = data.count
            var back = 1
            while back <= min(3, n) {
                let b = data[n - back]
                if b & 0xc0 == 0x80 { back += 1; continue }
                let needed: Int
                switch b {
                case 0xc2...0xdf: needed = 2
                case 0xe0...0xef: needed = 3
                case 0xf0...0xf4: needed = 4
                default: return n
                }
                return back < needed ? n - back : n
            }
            return n
        }
    }
}

enum AdversarialBytes {
    /// Pieces that sit on every edge of the escaping and decoding rules.
    static let pieces: [[UInt8]] = {
        var pieces: [[UInt8]] = [
            Array("plain text ".utf8), [0x0a], [0x09], [0x0d], [0x00], [0x1b], [0x7f], [0x1f], [0x20], [0x7e],
            Array("\u{1b}[2J\u{1b}]0;title\u{07}".utf8), Array("é€😀東".utf8),
            [0xc2, 0x80], [0xc2, 0x9f], [0xc2, 0xa0], [0xc2, 0x9b],                  // C1 (CSI) and NBSP
            [0xd8, 0x9c], [0xe2, 0x80, 0x8e], [0xe2, 0x80, 0x8f],                      // U+061C, U+200E, U+200F
            [0xe2, 0x80, 0xa8], [0xe2, 0x80, 0xa9], [0xe2, 0x80, 0xaa], [0xe2, 0x80, 0xae], [0xe2, 0x80, 0xaf],
            [0xe2, 0x81, 0xa5], [0xe2, 0x81, 0xa6], [0xe2, 0x81, 0xa9], [0xe2, 0x81, 0xaa],
            [0xef, 0xbb, 0xbf], [0xef, 0xbf, 0xbd], [0xf4, 0x8f, 0xbf, 0xbf], [0xf0, 0x90, 0x80, 0x80],
            // Ill-formed: lone continuations, overlongs, surrogates, past U+10FFFF, truncated leads.
            [0x80], [0xbf], [0xc0, 0x80], [0xc1, 0xbf], [0xe0, 0x80, 0x80], [0xe0, 0x9f, 0xbf], [0xed, 0xa0, 0x80],
            [0xed, 0xbf, 0xbf], [0xf0, 0x80, 0x80, 0x80], [0xf0, 0x8f, 0xbf, 0xbf], [0xf4, 0x90, 0x80, 0x80],
            [0xf5, 0x80, 0x80, 0x80], [0xff], [0xfe], [0xc3], [0xe2, 0x82], [0xf0, 0x9f, 0x98], [0xe2], [0xf0],
            [0xf0, 0x9f], [0xe0, 0xa0], [0xc3, 0x28], [0xe2, 0x28, 0xa1], [0xf0, 0x28, 0x8c, 0xbc],
        ]
        pieces.append(Array(repeating: UInt8(ascii: "x"), count: 40))
        return pieces
    }()

    static func stream(length: Int, using rng: inout SeededGenerator) -> [UInt8] {
        var out: [UInt8] = []
        while out.count < length {
            switch rng.next() % 4 {
            case 0: out.append(UInt8(truncatingIfNeeded: rng.next()))                  // any byte
            case 1: out += pieces[Int(rng.next() % UInt64(pieces.count))]
            case 2: out += (0..<Int(rng.next() % 24)).map { _ in UInt8(0x20 + rng.next() % 0x5f) } // printable run
            default: out += pieces[Int(rng.next() % UInt64(pieces.count))].prefix(Int(rng.next() % 4)) // cut pieces
            }
        }
        return out
    }

    /// Cuts `bytes` into pieces of random length (1 to `maximum`), as reads would.
    static func chunks(_ bytes: [UInt8], maximum: Int, using rng: inout SeededGenerator) -> [ArraySlice<UInt8>] {
        var chunks: [ArraySlice<UInt8>] = []
        var i = 0
        while i < bytes.count {
            let n = min(bytes.count - i, 1 + Int(rng.next() % UInt64(maximum)))
            chunks.append(bytes[i..<(i + n)])
            i += n
        }
        return chunks
    }
}

final class TerminalTextDifferentialTests: XCTestCase {
    func testWholeBuffersMatchTheOldImplementation() {
        var rng = SeededGenerator(seed: 0x5eed_0001)
        for round in 0..<3000 {
            let input = AdversarialBytes.stream(length: Int(rng.next() % 200), using: &rng)
            for keep in [true, false] {
                XCTAssertEqual(TerminalText.sanitize(input, keepLineBreaks: keep),
                               LegacyTerminalText.sanitize(input, keepLineBreaks: keep),
                               "round \(round), keepLineBreaks \(keep), input \(input)")
            }
        }
    }

    func testEveryShortByteStringMatches() {
        // Every one- and two-byte input, and every three-byte input that
        // starts a multi-byte sequence: all decoder states and their exits.
        var inputs: [[UInt8]] = []
        for a in 0...255 {
            inputs.append([UInt8(a)])
            for b in 0...255 { inputs.append([UInt8(a), UInt8(b)]) }
        }
        for a in [0xc2, 0xdf, 0xe0, 0xe1, 0xe2, 0xed, 0xef, 0xf0, 0xf3, 0xf4] as [UInt8] {
            for b in 0x70...0xc5 { for c in [0x41, 0x80, 0x8f, 0x9c, 0xa8, 0xa9, 0xaa, 0xbf, 0xc0] as [UInt8] {
                inputs.append([a, UInt8(b), c]); inputs.append([a, UInt8(b), c, 0x80])
            } }
        }
        for input in inputs {
            for keep in [true, false] where TerminalText.sanitize(input, keepLineBreaks: keep)
                != LegacyTerminalText.sanitize(input, keepLineBreaks: keep) {
                XCTFail("input \(input.map { String($0, radix: 16) }), keepLineBreaks \(keep)")
                return
            }
        }
    }

    func testStringsMatch() {
        let samples = ["", "a\u{1b}[2Jb\tc\n", "l1\u{2028}l2\u{2029}", "\u{202e}evil\u{202c}", "\u{61c}\u{200e}\u{200f}\u{2066}x\u{2069}",
                       "\u{9b}31m\u{85}", "tab\there\r\n", "😀 東京 café", String(repeating: "x", count: 100) + "\u{7f}"]
        for s in samples {
            for keep in [true, false] {
                XCTAssertEqual(TerminalText.sanitize(s, keepLineBreaks: keep), LegacyTerminalText.sanitize(s, keepLineBreaks: keep))
            }
        }
    }

    /// A stream cut at random points gives, piece by piece, what the old
    /// stream sanitiser gave for the same pieces.
    func testStreamsSplitAtRandomPointsMatch() {
        var rng = SeededGenerator(seed: 0x5eed_0002)
        for round in 0..<1500 {
            let input = AdversarialBytes.stream(length: Int(rng.next() % 600), using: &rng)
            let chunks = AdversarialBytes.chunks(input, maximum: [1, 2, 3, 5, 64, 700][round % 6], using: &rng)
            var old = LegacyTerminalText.Stream()
            var new = TerminalText.Stream()
            for (n, chunk) in chunks.enumerated() {
                var out: [UInt8] = []
                chunk.withUnsafeBufferPointer { new.feed($0, into: &out) }
                let expected = old.feed(chunk)
                if out != expected {
                    XCTFail("round \(round), chunk \(n): \(Array(chunk)) gave \(out), expected \(expected)")
                    return
                }
            }
            var out: [UInt8] = []
            new.finish(into: &out)
            XCTAssertEqual(out, old.finish(), "round \(round), finish")
        }
    }

    /// Large buffers: the eight-byte fast path and the runs between escapes.
    func testLargeMostlyPlainBuffersMatch() {
        var rng = SeededGenerator(seed: 0x5eed_0003)
        for _ in 0..<20 {
            var input = [UInt8](repeating: 0, count: 70_000)
            for i in input.indices { input[i] = UInt8(0x20 + rng.next() % 0x5f) }
            for _ in 0..<Int(rng.next() % 50) {
                let piece = AdversarialBytes.pieces[Int(rng.next() % UInt64(AdversarialBytes.pieces.count))]
                let at = Int(rng.next() % UInt64(input.count - 8))
                input.replaceSubrange(at..<(at + piece.count), with: piece)
            }
            var old = LegacyTerminalText.Stream()
            var new = TerminalText.Stream()
            var expected: [UInt8] = []
            var got: [UInt8] = []
            for chunk in AdversarialBytes.chunks(input, maximum: 65536, using: &rng) {
                expected += old.feed(chunk)
                chunk.withUnsafeBufferPointer { new.feed($0, into: &got) }
            }
            expected += old.finish()
            new.finish(into: &got)
            XCTAssertEqual(got, expected)
        }
    }
}

final class CarriageReturnTests: XCTestCase {
    /// Matches the byte loop it replaced in the gateway's channel writes.
    func testEveryLineFeedGetsACarriageReturnAndNothingElseChanges() {
        var rng = SeededGenerator(seed: 0x5eed_0005)
        for round in 0..<500 {
            let input = AdversarialBytes.stream(length: Int(rng.next() % 300), using: &rng)
            var expected: [UInt8] = []
            for b in input {
                if b == 0x0a { expected.append(0x0d) }
                expected.append(b)
            }
            XCTAssertEqual(TerminalText.withCarriageReturns(input), expected, "round \(round)")
        }
        XCTAssertEqual(TerminalText.withCarriageReturns([]), [])
        XCTAssertEqual(TerminalText.withCarriageReturns([0x0a, 0x0a]), [0x0d, 0x0a, 0x0d, 0x0a])
    }
}
