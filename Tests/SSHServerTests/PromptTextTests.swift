import XCTest
@testable import SSHServer

/// Text the SSH layer sends to a client's terminal (keyboard-interactive
/// prompts) kept C1 controls: U+009B is CSI on its own, so a prompt could
/// still carry an escape sequence. It now strips every control character
/// (GatehouseCore's one predicate) except the newline.
final class PromptTextTests: XCTestCase {
    func testPromptTextKeepsNoControlCharacter() {
        XCTAssertEqual(Prompter.clean("One-time password:\u{9b}2J \u{1b}[31m\u{7f}ok\n"), "One-time password:2J [31mok\n")
        XCTAssertEqual(Prompter.clean("caf\u{e9} \u{85}x"), "caf\u{e9} x")
    }
}
