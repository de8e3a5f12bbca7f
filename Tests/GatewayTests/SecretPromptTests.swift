import GatehouseCore
import XCTest
@testable import Gateway

/// The hidden Enter-Elevation prompt edits like the line editor with echo
/// off, but keeps what is typed in SecretBytes only.
final class SecretPromptTests: XCTestCase {
    /// Feeds `text` and returns the last step and the secret's bytes, read
    /// back for the assertion only.
    func type(_ text: String, afterCR: Bool = false, max: Int = 64) -> (SecretPrompt.Step, [UInt8]) {
        var prompt = SecretPrompt(requestID: 7, maxBytes: max, afterCR: afterCR)
        var step = SecretPrompt.Step.typing
        for byte in Array(text.utf8) {
            step = prompt.feed(byte)
            if step != .typing { break }
        }
        let secret = prompt.typed()
        return (step, secret.withUnsafeBytes { Array($0) })
    }

    func testEnterEndsTheSecretAndEditingWorks() {
        XCTAssertEqual(type("ABCD\r").1, Array("ABCD".utf8))
        XCTAssertEqual(type("ABX\u{7f}CD\n").1, Array("ABCD".utf8))
        XCTAssertEqual(type("é\u{7f}A\r").1, Array("A".utf8), "backspace removes a whole UTF-8 character")
        XCTAssertEqual(type("junk\u{15}ABCD\r").1, Array("ABCD".utf8), "Ctrl-U kills what was typed")
        XCTAssertEqual(type("AB\u{1b}[DCD\r").1, Array("ABCD".utf8), "an arrow key is dropped")
    }

    func testALineFeedAfterTheOpeningCRIsNotAnEmptySecret() {
        let (step, secret) = type("\nABCD\r", afterCR: true)
        XCTAssertEqual(step, .entered)
        XCTAssertEqual(secret, Array("ABCD".utf8))
        XCTAssertEqual(type("\n", afterCR: false).0, .entered, "a LF alone is Enter")
    }

    func testInterruptEndOfInputAndOverflowCancel() {
        XCTAssertEqual(type("AB\u{03}").0, .cancelled)
        XCTAssertEqual(type("\u{04}").0, .cancelled)
        XCTAssertEqual(type("A\u{04}B\r").1, Array("AB".utf8), "Ctrl-D on a non-empty secret is ignored")
        XCTAssertEqual(type("ABCDEFGH\r", max: 4).0, .cancelled)
    }
}
