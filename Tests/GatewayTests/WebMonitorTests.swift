import ConsoleCore
import Foundation
import GatehouseCore
@testable import Gateway
import PAMWorkers
import Transcript
import XCTest

/// Throws for a wrong answer, as PAM does.
struct FakePAMFailure: Error {}

/// The monitor's side of the web channel, over a real socketpair, with a
/// scripted PAM stack (password, then code) in place of the worker pool.
final class WebMonitorTests: PolicySnapshotTestCase {
    var gateway: GatewayContext!
    var raw: SharedPacketChannel!
    var nextCall: UInt64 = 1

    override func setUpWithError() throws {
        try super.setUpWithError()
        gateway = try makeGateway()
        let pair = try PacketChannel.pair()
        let monitor = WebMonitor(gateway: gateway, channel: pair.first, secondFactor: { _, user, _, conversation in
            let password = conversation.converse([PAMMessage(style: .promptEchoOff, text: "Password: ")])
            let code = conversation.converse([PAMMessage(style: .textInfo, text: "Hello"),
                                              PAMMessage(style: .promptEchoOn, text: "Code: ")])
            guard password == ["pw-" + user.rawValue], code == [nil, "123456"] else { throw FakePAMFailure() }
        })
        monitor.start()
        raw = SharedPacketChannel(pair.second)
    }

    override func tearDownWithError() throws {
        gateway?.closeAudit()
        try super.tearDownWithError()
    }

    func send(_ request: WebRequest) throws -> WebReply {
        let call = nextCall
        nextCall += 1
        try raw.send(WebWire.encode(WebEnvelope(call: call, body: request)))
        switch try raw.receive(maxBytes: WebWire.maxMessageBytes, maxDescriptors: 0) {
        case .endOfStream: throw MonitorCallError.monitorGone
        case .packet(let packet):
            let envelope = try WebWire.decode(WebEnvelope<WebReply>.self, from: packet.bytes)
            XCTAssertEqual(envelope.call, call)
            return envelope.body
        }
    }

    func audit() throws -> [AuditRecord] {
        let text = try String(contentsOfFile: gateway.configuration.auditLogPath, encoding: .utf8)
        return try text.split(separator: "\n").map { try AuditRecord.parse(line: Array($0.utf8)).record }
    }

    func signIn(_ user: String, password: String? = nil, code: String = "123456") throws -> WebReply {
        guard case .prompts(let conversation, let first) = try send(.signInStart(user: user, source: "192.0.2.9:4000")) else {
            XCTFail("no first prompt")
            return .failed("")
        }
        XCTAssertEqual(first, [WebPrompt(style: .secret, text: "Password: ")])
        guard case .prompts(let again, let second) = try send(.signInAnswers(conversation: conversation,
                                                                             answers: [password ?? "pw-" + user])) else {
            XCTFail("no second prompt")
            return .failed("")
        }
        XCTAssertEqual(again, conversation)
        XCTAssertEqual(second, [WebPrompt(style: .info, text: "Hello"), WebPrompt(style: .visible, text: "Code: ")])
        return try send(.signInAnswers(conversation: conversation, answers: [code]))
    }

    func testNothingIsAnsweredBeforeReadyAndReadyOnlyOnce() throws {
        guard case .forbidden = try send(.signInStart(user: "alice", source: "x")) else { return XCTFail("before ready") }
        XCTAssertEqual(try send(.ready(port: 1)), .done)
        guard case .forbidden = try send(.ready(port: 2)) else { return XCTFail("ready twice") }
        XCTAssertEqual(try audit().filter { $0.kind == "monitor.refused" && $0.fields["channel"] == "web" }.count, 2)
    }

    func testSignInThroughPAMMakesASessionWithItsOwnCSRFToken() throws {
        _ = try send(.ready(port: 1))
        guard case .signedIn(let session, let identity) = try signIn("alice") else { return XCTFail("sign-in failed") }
        XCTAssertEqual(identity.user, "alice")
        XCTAssertFalse(identity.reviewer)
        XCTAssertTrue(WebTokens.isWellFormed(session) && WebTokens.isWellFormed(identity.csrf))
        XCTAssertEqual(try send(.whoAmI(session: session)), .identity(identity))
        guard case .requests = try send(.pending(session: session)) else { return XCTFail("pending") }
        // A change without the token, or a review by a non-reviewer: refused and audited.
        guard case .forbidden = try send(.decide(session: session, csrf: "", id: 1, approve: true, comment: "")) else {
            return XCTFail("decide without CSRF")
        }
        guard case .forbidden = try send(.search(session: session, query: CommandQuery())) else { return XCTFail("search") }
        let refused = try audit().filter { $0.kind == "monitor.refused" }
        XCTAssertEqual(refused.map { $0.fields["request"] }, ["decide", "search"])
        let success = try audit().first { $0.kind == "auth.success" }
        XCTAssertEqual(success?.user, "alice")
        XCTAssertEqual(success?.fields["via"], "web")
        XCTAssertEqual(success?.fields["source"], "192.0.2.9:4000")
        // Signed out (with the token), the session is gone.
        XCTAssertEqual(try send(.signOut(session: session, csrf: identity.csrf)), .done)
        XCTAssertEqual(try send(.whoAmI(session: session)), .unauthenticated)
    }

    func testAWrongAnswerFailsTheSignInAndIsAudited() throws {
        _ = try send(.ready(port: 1))
        guard case .signInFailed = try signIn("alice", password: "wrong") else { return XCTFail("a wrong password passed") }
        guard case .signInFailed = try signIn("bob", code: "000000") else { return XCTFail("a wrong code passed") }
        let failures = try audit().filter { $0.kind == "auth.failure" }
        XCTAssertEqual(failures.map(\.user), ["alice", "bob"])
        XCTAssertTrue(try audit().allSatisfy { !$0.fields.values.contains("wrong") && !$0.fields.values.contains("000000") },
                      "no answer is ever written")
        // Answers for a conversation that does not exist are refused.
        guard case .signInFailed = try send(.signInAnswers(conversation: WebTokens.random(), answers: ["x"])) else {
            return XCTFail("answers without a conversation")
        }
    }

    /// `review.access`: a reviewer's read is audited first, and with no
    /// audit log to take it, nothing is read.
    func testAReadOfRecordedActivityIsAuditedOrNotDone() throws {
        // bob reviews too.
        let directory = root + "/policies/directory.yaml"
        try String(contentsOfFile: directory, encoding: .utf8)
            .replacingOccurrences(of: "groups: [managers]", with: "groups: [managers, reviewers]")
            .write(toFile: directory, atomically: true, encoding: .utf8)
        XCTAssertTrue(gateway.reload().ok)
        _ = try send(.ready(port: 1))
        guard case .signedIn(let session, let identity) = try signIn("bob"), identity.reviewer else {
            return XCTFail("bob, a reviewer, did not sign in")
        }
        guard case .chain = try send(.verifyChain(session: session)) else { return XCTFail("the chain check") }
        var query = CommandQuery()
        query.cmdlet = "Set-Mailbox"
        _ = try send(.search(session: session, query: query))
        let reads = try audit().filter { $0.kind == "review.access" }
        XCTAssertEqual(reads.map(\.user), ["bob", "bob"])
        XCTAssertEqual(reads.map { $0.fields["what"] }, ["verify-chain", "search"])
        XCTAssertEqual(reads.last?.fields["query"], "cmdlet=Set-Mailbox")

        try fillTheAuditLogsDisk()
        for request: WebRequest in [.search(session: session, query: query), .verifyChain(session: session),
                                    .sessionDetail(session: session, id: "0123456789abcdef01234567"),
                                    .transcript(session: session, id: "0123456789abcdef01234567", offset: 0)] {
            guard case .failed(let why) = try send(request) else { return XCTFail("\(request.name) read unaudited") }
            XCTAssertEqual(why, WebMonitor.unaudited)
        }
    }

    /// The audit log's disk is full from now on: its descriptor becomes
    /// /dev/full, where every write fails with ENOSPC.
    private func fillTheAuditLogsDisk() throws {
        let path = URL(fileURLWithPath: gateway.configuration.auditLogPath).resolvingSymlinksInPath().path
        let held = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").compactMap(Int32.init).filter {
            let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)")) ?? ""
            return target == path || target == gateway.configuration.auditLogPath
        }
        XCTAssertFalse(held.isEmpty, "the audit log's descriptor")
        let full = open("/dev/full", O_WRONLY)
        XCTAssertGreaterThanOrEqual(full, 0)
        defer { close(full) }
        for fd in held { XCTAssertEqual(dup2(full, fd), fd) }
    }

    func testAnAPICallWithoutAValidTokenIs401() throws {
        _ = try send(.ready(port: 1))
        guard case .api(let status, let json) = try send(.api(token: WebTokens.random(), path: "/activity", query: [:])) else {
            return XCTFail()
        }
        XCTAssertEqual(status, 401)
        XCTAssertTrue(json.contains("Unauthorized"))
    }

    func testListsAreCutToFitTheChannel() throws {
        let big = String(repeating: "x", count: 1000)
        let views = (0..<200).map { i in
            CommandView(seq: i, session: "s", user: "alice", time: Date(), cmdlet: "Get-Mailbox", line: big,
                        decision: "allow", role: nil, reason: nil, scope: nil, requestID: nil, exitStatus: 0)
        }
        let (kept, cut) = WebMonitor.fitting(views, budget: WebMonitor.pageBudget)
        XCTAssertTrue(cut)
        XCTAssertGreaterThan(kept.count, 10)
        XCTAssertEqual(kept.map(\.seq), Array(0..<kept.count), "the leading items, in order")
        let reply = try WebWire.encode(WebEnvelope(call: 1, body: WebReply.commands(CommandPage(commands: kept, truncated: cut))))
        XCTAssertLessThanOrEqual(reply.count, WebWire.maxMessageBytes)
        XCTAssertEqual(WebMonitor.fitting(Array(views.prefix(3)), budget: WebMonitor.pageBudget).cut, false)
    }

    func testAuditLogMarksSeekExactlyBySeqAndWithSlackByTime() {
        let marks = AuditLogMarks(stride: 10)
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        // Records 1...100, 100 bytes each, one a minute.
        for seq in 1...100 {
            let offset = UInt64((seq - 1) * 100)
            marks.note(seq: seq, time: t0 + TimeInterval(seq * 60), offset: offset, end: offset + 100)
        }
        // Noting again (a second reader over the same lines) changes nothing.
        marks.note(seq: 5, time: t0, offset: 400, end: 500)
        XCTAssertEqual(marks.scannedTo, 10_000)
        let far = t0 + 1_000_000
        // Marks at seq 1, 11, 21…: the last whose seq is at most after + 1.
        XCTAssertEqual(marks.start(after: 0, from: far), 9000, "no cursor: the last mark old enough")
        XCTAssertEqual(marks.start(after: 10, from: far), 1000, "seq 11 is the first record after 10")
        XCTAssertEqual(marks.start(after: 55, from: far), 5000)
        // By time: a mark at least `timeSlack` (10 minutes) before the window's start.
        XCTAssertEqual(marks.start(after: 0, from: t0 + 31 * 60), 2000, "seq 21 at minute 21; seq 31 at minute 31 is too close")
        XCTAssertEqual(marks.start(after: 15, from: t0 + 31 * 60), 1000, "a cursor seeks by seq alone")
        XCTAssertEqual(marks.start(after: 95, from: t0), 9000, "whatever the window's start")
        XCTAssertEqual(marks.start(after: 0, from: t0 + 5 * 60), 0)
        marks.reset()
        XCTAssertEqual(marks.start(after: 55, from: far), 0)
        XCTAssertEqual(marks.start(after: 0, from: far), 0)
    }

    func testElevationWindowsPairStartsWithEnds() {
        let t = Date(timeIntervalSince1970: 1_800_000_000)
        let events = [
            AuditIndex.EventRow(seq: 1, time: t, kind: "elevation.start", requestID: 4, fields: ["role": "R", "scope": "contoso"]),
            AuditIndex.EventRow(seq: 2, time: t + 5, kind: "lockbox.approved", requestID: 9, fields: [:]),
            AuditIndex.EventRow(seq: 3, time: t + 60, kind: "elevation.end", requestID: 4, fields: ["reason": "Exit-Elevation"]),
            AuditIndex.EventRow(seq: 4, time: t + 70, kind: "elevation.start", requestID: 5, fields: [:]),
        ]
        let windows = WebMonitor.windows(events)
        XCTAssertEqual(windows, [
            ElevationWindow(requestID: 4, role: "R", scope: "contoso", start: t, end: t + 60, endReason: "Exit-Elevation"),
            ElevationWindow(requestID: 5, role: nil, scope: nil, start: t + 70, end: nil, endReason: nil),
        ])
    }
}
