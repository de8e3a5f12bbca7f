import GatehouseCore
@testable import Transcript
import TestSupport
import XCTest

/// The one-pass JSON escaper must write what the two-pass path it replaced
/// in `AsciicastWriter` wrote (ASCII first; otherwise `String(decoding:)`
/// and then escaping). That escaping loop is kept here, verbatim, as the oracle.
enum LegacyJSONEscape {
    static func event(_ data: [UInt8]) -> [UInt8] {
        var buffer: [UInt8] = []
        let ascii = data.withUnsafeBufferPointer { escape($0, to: &buffer, stopAtNonASCII: true) }
        if !ascii {
            buffer.removeAll()
            var text = String(decoding: data, as: UTF8.self)
            text.withUTF8 { _ = escape($0, to: &buffer, stopAtNonASCII: false) }
        }
        return buffer
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    private static func writeEscape(_ b: UInt8, to out: inout [UInt8]) {
        out.append(0x5c)
        switch b {
        case 0x22: out.append(0x22)
        case 0x5c: out.append(0x5c)
        case 0x08: out.append(UInt8(ascii: "b"))
        case 0x0c: out.append(UInt8(ascii: "f"))
        case 0x0a: out.append(UInt8(ascii: "n"))
        case 0x0d: out.append(UInt8(ascii: "r"))
        case 0x09: out.append(UInt8(ascii: "t"))
        default:
            out.append(contentsOf: [UInt8(ascii: "u"), 0x30, 0x30, hexDigits[Int(b >> 4)], hexDigits[Int(b & 0xf)]])
        }
    }

    private static func escape(_ bytes: UnsafeBufferPointer<UInt8>, to out: inout [UInt8], stopAtNonASCII: Bool) -> Bool {
        var runStart = 0
        var i = 0
        let n = bytes.count
        while i < n {
            let b = bytes[i]
            if stopAtNonASCII && b >= 0x80 { return false }
            if !b.isC0Control && b != 0x22 && b != 0x5c { i += 1; continue }
            if runStart < i { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<i])) }
            writeEscape(b, to: &out)
            i += 1
            runStart = i
        }
        if runStart < n { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<n])) }
        return true
    }
}

final class JSONEscapeDifferentialTests: XCTestCase {
    private static let pieces: [[UInt8]] = [
        Array("plain \"quoted\" back\\slash ".utf8), [0x00], [0x08], [0x0c], [0x0a], [0x0d], [0x09], [0x1b], [0x1f],
        [0x7f], [0x22], [0x5c], Array("é€😀東".utf8), [0xc2, 0x9b], [0xe2, 0x80, 0xa8], [0xef, 0xbf, 0xbd],
        [0x80], [0xc0, 0x80], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xff], [0xc3],
        [0xe2, 0x82], [0xf0, 0x9f, 0x98], [0xc3, 0x28], Array(repeating: UInt8(ascii: "y"), count: 30),
    ]

    private func check(_ input: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> Bool {
        var got: [UInt8] = []
        input.withUnsafeBufferPointer { JSONValue.writeEscaped($0, to: &got) }
        let expected = LegacyJSONEscape.event(input)
        if got != expected {
            XCTFail("input \(input): got \(got), expected \(expected)", file: file, line: line)
            return false
        }
        return true
    }

    func testEveryShortByteStringMatches() {
        for a in 0...255 {
            guard check([UInt8(a)]) else { return }
            for b in 0...255 { guard check([UInt8(a), UInt8(b)]) else { return } }
        }
    }

    func testRandomAndAdversarialBytesMatch() {
        var rng = SeededGenerator(seed: 0x5eed_0004)
        func next() -> UInt64 { rng.next() }
        for _ in 0..<4000 {
            var input: [UInt8] = []
            let length = Int(next() % 300)
            while input.count < length {
                switch next() % 3 {
                case 0: input.append(UInt8(truncatingIfNeeded: next()))
                case 1: input += Self.pieces[Int(next() % UInt64(Self.pieces.count))]
                default: input += (0..<Int(next() % 40)).map { _ in UInt8(0x20 + next() % 0x5f) }
                }
            }
            guard check(input) else { return }
        }
    }

    /// Canonical JSON of audit events hashes the same as before: strings
    /// from Swift are valid UTF-8, which the escaper passes through.
    func testStringsEncodeAsBefore() {
        for s in ["", "a\"b\\c\n\t\r\u{8}\u{c}\u{0}\u{1f}\u{7f}", "é€😀 東京 \u{2028}\u{202e}", String(repeating: "x", count: 1000)] {
            var got: [UInt8] = []
            JSONValue.writeString(s, to: &got)
            XCTAssertEqual(got, [0x22] + LegacyJSONEscape.event(Array(s.utf8)) + [0x22])
        }
    }
}
