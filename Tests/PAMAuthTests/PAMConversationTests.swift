import Foundation
import PAMAuth
import PAMWorkers
import TestSupport
import XCTest

/// Real PAM stacks in a private service directory (pam_wrapper), driven by a
/// scripted conversation in `pam-conversation-helper`: pam_wrapper must be
/// preloaded when a process starts, so each transaction runs in a helper
/// process. Nothing under /etc/pam.d is read or changed.
final class PAMConversationTests: XCTestCase {
    var stacks: PAMTestStacks!

    override func setUpWithError() throws { stacks = try PAMTestStacks() }

    override func tearDownWithError() throws { stacks?.remove() }

    /// Runs one transaction; returns the messages PAM sent and the result line.
    func converse(_ service: String, user: String = "alice", answers: [String])
        throws -> (messages: [(style: String, text: String)], result: String) {
        let run = try HelperProcess("pam-conversation-helper").run(
            [service, user] + answers,
            environment: stacks.environment)
        XCTAssertFalse(run.crashed, "\(run)")
        XCTAssertEqual(run.status, 0, "\(run)")
        var messages: [(style: String, text: String)] = []
        var result = ""
        for line in run.lines {
            if line.hasPrefix("message ") {
                let rest = line.dropFirst("message ".count)
                let style = rest.prefix { $0 != " " }
                messages.append((String(style), String(rest.dropFirst(style.count + 1))))
            } else if line.hasPrefix("result ") {
                result = String(line.dropFirst("result ".count))
            }
        }
        return (messages, result)
    }

    func testRightPasswordSucceedsAfterOneEchoOffPrompt() throws {
        let (messages, result) = try converse("gh-password", answers: ["secret"])
        XCTAssertEqual(result, "success")
        XCTAssertEqual(messages.map(\.style), ["promptEchoOff"])
        XCTAssertEqual(messages.first?.text, "Password: ")
    }

    func testWrongPasswordFailsInPamAuthenticate() throws {
        let (_, result) = try converse("gh-password", answers: ["wrong"])
        XCTAssertEqual(result, "error \(PAMError.authError) pam_authenticate")
    }

    /// Notices arrive with their own styles, take no answer, and do not use
    /// up the answer meant for the prompt after them.
    func testInfoAndErrorNoticesArriveWithTheirStylesBeforeThePrompt() throws {
        let (messages, result) = try converse("gh-chatty", answers: ["secret"])
        XCTAssertEqual(result, "success")
        XCTAssertEqual(messages.last?.style, "promptEchoOff")
        let notices = messages.dropLast()
        XCTAssertTrue(notices.contains { $0.style == "textInfo" && $0.text == "Authentication succeeded" }, "\(messages)")
        XCTAssertTrue(notices.contains { $0.style == "errorMessage" && $0.text == "Authentication generated an error" },
                      "\(messages)")
        XCTAssertTrue(notices.allSatisfy { $0.style == "textInfo" || $0.style == "errorMessage" }, "\(messages)")
    }

    func testEchoOnPromptArrivesAsEchoOn() throws {
        let (messages, result) = try converse("gh-echo", answers: ["secret"])
        XCTAssertEqual(result, "success")
        XCTAssertEqual(messages.map(\.style), ["promptEchoOn"])
    }

    func testPasswordThenTOTPCodeSucceeds() throws {
        let (messages, result) = try converse("gh-totp", answers: ["secret", try stacks.totp()])
        XCTAssertEqual(result, "success")
        XCTAssertEqual(messages.map(\.style), ["promptEchoOff", "promptEchoOff"])
        XCTAssertTrue(messages.last?.text.contains("One-time password") ?? false, "\(messages)")
    }

    func testWrongTOTPCodeFails() throws {
        let code = try stacks.totp()
        let wrong = String(code.map { Character(String((($0.wholeNumberValue ?? 0) + 1) % 10)) })
        let (_, result) = try converse("gh-totp", answers: ["secret", wrong])
        XCTAssertTrue(result.hasPrefix("error ") && result.hasSuffix(" pam_authenticate"), result)
    }

    /// A client that stops answering fails the conversation, and with it the
    /// authentication; it is never taken as success.
    func testUnansweredPromptFailsTheTransaction() throws {
        let (messages, result) = try converse("gh-password", answers: [])
        XCTAssertEqual(messages.first?.style, "promptEchoOff")
        XCTAssertTrue(result.hasPrefix("error ") && result.hasSuffix(" pam_authenticate"), result)
    }

    /// An answer longer than `PAM_MAX_RESP_SIZE` (512) is not handed to PAM:
    /// the trampoline fails the conversation instead of truncating it.
    /// It fails as an unanswered prompt does, not as a wrong password would.
    func testOverlongAnswerFailsTheConversation() throws {
        let (_, overlong) = try converse("gh-password", answers: [String(repeating: "x", count: 600)])
        let (_, unanswered) = try converse("gh-password", answers: [])
        let (_, wrong) = try converse("gh-password", answers: [String(repeating: "x", count: 500)])
        XCTAssertEqual(overlong, unanswered)
        XCTAssertNotEqual(overlong, wrong)
    }

    /// pam_start fails when neither the service nor `other` exists. The
    /// transaction must throw a PAMError and free what it allocated exactly
    /// once: before the fix the `pam_conv` was freed in init and again in
    /// deinit, and glibc aborted the helper.
    func testFailedPamStartThrowsAPAMErrorWithoutCrashing() throws {
        let (messages, result) = try converse("gh-no-such-service", answers: ["secret"])
        XCTAssertTrue(messages.isEmpty)
        XCTAssertTrue(result.hasPrefix("error ") && result.hasSuffix(" pam_start"), result)
    }
}
