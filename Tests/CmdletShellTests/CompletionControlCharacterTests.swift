import CmdletPolicy
import CmdletShell
import GatehouseCore
import XCTest

/// Completion gave up on a line with a C0 control but completed one holding
/// DEL or a C1 control, which the lexer then refuses; it now uses the same
/// predicate as the lexer.
final class CompletionControlCharacterTests: XCTestCase {
    func complete(_ typed: String) throws -> String {
        let claim = try makeClaim([RoleGrant(role: "Reader")])
        return String(decoding: Completion.complete(line: Array(typed.utf8), claim: claim, snapshot: try shellSnapshot()),
                      as: UTF8.self)
    }

    func testNoCompletionOnALineTheLexerRefuses() throws {
        XCTAssertEqual(try complete("Get-Mailbox x | Where"), "-Object ", "the control case completes")
        XCTAssertEqual(try complete("Get-Mailbox \u{9b} | Where"), "")
        XCTAssertEqual(try complete("Get-Mailbox \u{7f} | Where"), "")
        XCTAssertEqual(try complete("Get-Mailbox \u{1} | Where"), "")
    }
}
