import Foundation
import PAMAuth
import TestSupport
import XCTest

/// Real PAM stacks in a private service directory (pam_wrapper), driven by a
/// scripted conversation in `pam-conversation-helper`: pam_wrapper must be
/// preloaded when a process starts, so each transaction runs in a helper
/// process. Nothing under /etc/pam.d is read or changed.
final class PAMConversationTests: XCTestCase {
    static let wrapper = "/usr/lib/x86_64-linux-gnu/libpam_wrapper.so"
    static let matrix = "/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_matrix.so"
    static let chatty = "/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_chatty.so"
    static let oath = "/lib/x86_64-linux-gnu/security/pam_oath.so"
    static let oathSecret = "3132333435363738393031323334353637383930"

    var dir = ""
    var serviceDir: String { dir + "/services" }

    override func setUpWithError() throws {
        for file in [Self.wrapper, Self.matrix, Self.chatty, Self.oath, "/usr/bin/oathtool"]
        where !FileManager.default.fileExists(atPath: file) {
            throw XCTSkip("\(file) is missing (scripts/install-deps installs libpam-wrapper, libpam-oath, oathtool)")
        }
        dir = NSTemporaryDirectory() + "gatehouse-pam-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: serviceDir, withIntermediateDirectories: true)
        // pam_oath rewrites its users file (to refuse a reused code), so the file is per test.
        try "HOTP/T30 alice - \(Self.oathSecret)\n".write(toFile: dir + "/users.oath", atomically: true, encoding: .utf8)
        try service("gh-password", auth: ["\(Self.matrix) passdb=\(dir)/passdb-gh-password"])
        // pam_chatty sends PAM_TEXT_INFO and PAM_ERROR_MSG notices, then succeeds.
        try service("gh-chatty", auth: ["\(Self.chatty) num_lines=1 info error",
                                        "\(Self.matrix) passdb=\(dir)/passdb-gh-chatty"])
        try service("gh-echo", auth: ["\(Self.matrix) passdb=\(dir)/passdb-gh-echo echo"])
        try service("gh-totp", auth: ["\(Self.matrix) passdb=\(dir)/passdb-gh-totp",
                                      "\(Self.oath) usersfile=\(dir)/users.oath window=2 digits=6"])
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// One service file; pam_matrix's first passdb line for a user wins, so each service has its own.
    func service(_ name: String, auth: [String]) throws {
        try "alice:secret:\(name)\n".write(toFile: "\(dir)/passdb-\(name)", atomically: true, encoding: .utf8)
        let lines = auth.map { "auth required \($0)" }
            + ["account required \(Self.matrix) passdb=\(dir)/passdb-\(name)"]
        try (lines.joined(separator: "\n") + "\n").write(toFile: "\(serviceDir)/\(name)", atomically: true,
                                                         encoding: .utf8)
    }

    /// Runs one transaction; returns the messages PAM sent and the result line.
    func converse(_ service: String, user: String = "alice", answers: [String])
        throws -> (messages: [(style: String, text: String)], result: String) {
        let run = try HelperProcess("pam-conversation-helper").run(
            [service, user] + answers,
            environment: ["LD_PRELOAD": Self.wrapper, "PAM_WRAPPER": "1", "PAM_WRAPPER_SERVICE_DIR": serviceDir])
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

    func totp() throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/oathtool")
        process.arguments = ["--totp", Self.oathSecret]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
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
        let (messages, result) = try converse("gh-totp", answers: ["secret", try totp()])
        XCTAssertEqual(result, "success")
        XCTAssertEqual(messages.map(\.style), ["promptEchoOff", "promptEchoOff"])
        XCTAssertTrue(messages.last?.text.contains("One-time password") ?? false, "\(messages)")
    }

    func testWrongTOTPCodeFails() throws {
        let code = try totp()
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
