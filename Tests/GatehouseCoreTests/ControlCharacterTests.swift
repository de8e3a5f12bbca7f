import GatehouseCore
import XCTest

/// The one control-character predicate and its named companion sets, checked
/// over every scalar of the Basic Multilingual Plane against Unicode's own
/// general categories, so a range typo cannot hide.
final class ControlCharacterTests: XCTestCase {
    func testControlCharactersAreExactlyCategoryCc() {
        for v in UInt32(0)...0xffff {
            guard let scalar = Unicode.Scalar(v) else { continue }
            XCTAssertEqual(scalar.isControlCharacter, scalar.properties.generalCategory == .control,
                           "U+\(String(v, radix: 16))")
        }
        XCTAssertTrue(Unicode.Scalar(0x9b)!.isControlCharacter, "C1 CSI")
        XCTAssertTrue(Unicode.Scalar(0x85)!.isControlCharacter, "C1 NEL")
        XCTAssertFalse(Unicode.Scalar(0xa0)!.isControlCharacter)
        XCTAssertFalse(Unicode.Scalar(0x20)!.isControlCharacter)
    }

    func testSeparatorsAreLineAndParagraphSeparatorsOnly() {
        for v in UInt32(0)...0xffff {
            guard let scalar = Unicode.Scalar(v) else { continue }
            let category = scalar.properties.generalCategory
            XCTAssertEqual(scalar.isLineOrParagraphSeparator, category == .lineSeparator || category == .paragraphSeparator,
                           "U+\(String(v, radix: 16))")
        }
    }

    func testBidiControlsAreTheReorderingFormatCharacters() {
        let expected: Set<UInt32> = [0x061c, 0x200e, 0x200f, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e,
                                     0x2066, 0x2067, 0x2068, 0x2069]
        for v in UInt32(0)...0xffff {
            guard let scalar = Unicode.Scalar(v) else { continue }
            XCTAssertEqual(scalar.isBidiControl, expected.contains(v), "U+\(String(v, radix: 16))")
            // The same set as Unicode's own Bidi_Control property.
            XCTAssertEqual(scalar.isBidiControl, scalar.properties.isBidiControl, "U+\(String(v, radix: 16))")
        }
    }

    func testBytes() {
        for b in UInt8.min...UInt8.max {
            XCTAssertEqual(b.isASCIIControl, b < 0x80 && Unicode.Scalar(b).isControlCharacter, "\(b)")
            XCTAssertEqual(b.isC0Control, b != 0x7f && b.isASCIIControl, "\(b)")
        }
    }
}
