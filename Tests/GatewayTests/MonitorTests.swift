import Foundation
import GatehouseCore
@testable import Gateway
import CmdletShell
import Lockbox
import SSHServer
import Synchronization
import TestSupport
import Transcript
import XCTest

/// The request table's rows, one by one.
final class MonitorPermitsTests: XCTestCase {
    let alice = UserName("alice")!
    let session = SessionID(rawValue: "s1")

    func kbd(_ user: String = "alice") -> MonitorRequest {
        .keyboardInteractive(user: user, session: session, source: "192.0.2.1")
    }

    func authenticated() -> MonitorPermits {
        var permits = MonitorPermits()
        XCTAssertEqual(permits.admit(.publicKey(user: "alice", key: "k")), .allowedPreAuth)
        permits.keyChecked(user: alice, authorized: true)
        XCTAssertEqual(permits.admit(kbd()), .allowedPreAuth)
        permits.conversationEnded(user: alice, success: true)
        XCTAssertEqual(permits.state, .authenticated(user: alice))
        return permits
    }

    func opened() -> MonitorPermits {
        var permits = authenticated()
        XCTAssertEqual(permits.admit(.openSession(user: alice, session: session)), .allowed(user: alice, session: session))
        return permits
    }

    func testASessionOpensOnlyAfterTheMonitorsOwnTwoFactors() {
        // Not before anything, not after the key alone, not while PAM runs,
        // not after PAM failed, not for another user.
        var permits = MonitorPermits()
        guard case .refused = permits.admit(.openSession(user: alice, session: session)) else { return XCTFail("no auth") }
        permits = MonitorPermits()
        _ = permits.admit(.publicKey(user: "alice", key: "k"))
        permits.keyChecked(user: alice, authorized: true)
        var keyOnly = permits
        guard case .refused = keyOnly.admit(.openSession(user: alice, session: session)) else { return XCTFail("key only") }
        _ = permits.admit(kbd())
        var conversing = permits
        guard case .refused = conversing.admit(.openSession(user: alice, session: session)) else {
            return XCTFail("during PAM")
        }
        permits.conversationEnded(user: alice, success: false)
        XCTAssertEqual(permits.state, .keyAccepted(user: alice), "a failed PAM goes back to the key")
        var failed = permits
        guard case .refused = failed.admit(.openSession(user: alice, session: session)) else { return XCTFail("PAM failed") }
        var other = authenticated()
        guard case .refused = other.admit(.openSession(user: UserName("bob")!, session: session)) else {
            return XCTFail("a session for a user who did not authenticate")
        }
    }

    func testKeyboardInteractiveOnlyForTheUserWhoseKeyWasAccepted() {
        var permits = MonitorPermits()
        guard case .refused = permits.admit(kbd()) else { return XCTFail("PAM before a key") }
        permits = MonitorPermits()
        permits.keyChecked(user: alice, authorized: false)
        guard case .refused = permits.admit(kbd()) else { return XCTFail("PAM after a refused key") }
        permits = MonitorPermits()
        permits.keyChecked(user: alice, authorized: true)
        guard case .refused = permits.admit(kbd("bob")) else { return XCTFail("PAM for another user") }
        permits = MonitorPermits()
        permits.keyChecked(user: alice, authorized: true)
        _ = permits.admit(kbd())
        guard case .refused = permits.admit(kbd()) else { return XCTFail("two conversations at once") }
        var idle = MonitorPermits()
        guard case .refused = idle.admit(.pamAnswers(["123456"])) else { return XCTFail("answers with no conversation") }
    }

    /// An event may name a balancer only if this node lists it
    /// (`proxyProtocolFrom`); with none listed, no event may name one.
    func testAForwardedAddressOnlyThroughAListedBalancer() {
        let listed = [AddressRange("10.0.0.0/24")!]
        func event(_ fields: [String: String]) -> MonitorRequest {
            .preAuthAudit(kind: .authSuccess, user: "alice", session: session, fields: fields)
        }
        XCTAssertFalse(Monitor.namesUnlistedBalancer(event(["source": "192.0.2.1:5"]), []), "direct: nothing to check")
        XCTAssertFalse(Monitor.namesUnlistedBalancer(event(["source": "192.0.2.1:5", "balancer": "10.0.0.7:4000"]), listed))
        XCTAssertTrue(Monitor.namesUnlistedBalancer(event(["source": "192.0.2.1:5", "balancer": "10.0.1.7:4000"]), listed))
        XCTAssertTrue(Monitor.namesUnlistedBalancer(event(["source": "192.0.2.1:5", "balancer": "10.0.0.7:4000"]), []))
        XCTAssertTrue(Monitor.namesUnlistedBalancer(.audit(kind: .sessionStart, fields: ["balancer": "nonsense"]), listed))
        XCTAssertFalse(Monitor.namesUnlistedBalancer(kbd(), []))
    }

    func testBeforeASessionOnlyAuthenticationEventsAreReported() {
        for kind in AuditEventKind.allCases {
            var permits = MonitorPermits()
            let verdict = permits.admit(.preAuthAudit(kind: kind, user: "alice", session: nil, fields: [:]))
            XCTAssertEqual(verdict == .allowedPreAuth, MonitorPermits.reportablePreAuthKinds.contains(kind), kind.rawValue)
        }
        var inSession = opened()
        guard case .refused = inSession.admit(.preAuthAudit(kind: .authSuccess, user: "bob", session: nil, fields: [:])) else {
            return XCTFail("a session reported under another name")
        }
    }

    func testNoSessionRequestBeforeASessionIsOpen() {
        for request: MonitorRequest in [.elevations, .createTranscript, .sweep, .ownRequest(id: 1),
                                        .redeem(id: 1, secret: [1]), .endElevations(reason: "x"),
                                        .audit(kind: .commandAllowed, fields: [:]), .end(reason: "x", fields: [:])] {
            var permits = authenticated()
            guard case .refused = permits.admit(request) else { return XCTFail("\(request) allowed before openSession") }
            XCTAssertEqual(permits.state, .ended, "a refused connection ends")
            guard case .refused = permits.admit(.openSession(user: alice, session: session)) else {
                return XCTFail("a refused connection opened a session")
            }
        }
    }

    func testOneSessionPerConnectionAndOneTranscript() {
        var permits = opened()
        guard case .refused = permits.admit(.openSession(user: alice, session: SessionID(rawValue: "s2"))) else {
            return XCTFail("a second session on one connection")
        }
        permits = opened()
        XCTAssertEqual(permits.admit(.createTranscript), .allowed(user: alice, session: session))
        guard case .refused = permits.admit(.createTranscript) else { return XCTFail("a second transcript") }
    }

    func testTheSessionSideReportsOnlyWhatItObserves() {
        for kind in AuditEventKind.allCases {
            var permits = opened()
            let verdict = permits.admit(.audit(kind: kind, fields: [:]))
            if MonitorPermits.reportableKinds.contains(kind) {
                XCTAssertEqual(verdict, .allowed(user: alice, session: session), kind.rawValue)
            } else {
                guard case .refused = verdict else { return XCTFail("\(kind.rawValue) forged by the session's side") }
            }
        }
        // What the monitor alone writes is never on the list.
        for kind: AuditEventKind in [.authSuccess, .sessionEnd, .lockboxApproved, .elevationStart, .auditCheckpoint,
                                     .policyLoad, .monitorRefused, .userUnlock, .sessionKill, .mfaEnrolled, .mfaReset] {
            XCTAssertFalse(MonitorPermits.reportableKinds.contains(kind), kind.rawValue)
        }
    }

    func testNothingAfterTheEnd() {
        var permits = opened()
        XCTAssertEqual(permits.admit(.end(reason: "exit", fields: [:])), .allowed(user: alice, session: session))
        guard case .refused = permits.admit(.elevations) else { return XCTFail("a request after the end") }
    }
}

/// The monitor behind a real `SOCK_SEQPACKET` channel, with a real gateway
/// (policies, SQLite Lockbox, chained audit log): the session's side is
/// played by the test, honest through `MonitorClient` or hostile with raw
/// packets.
final class MonitorTests: PolicySnapshotTestCase {
    var gateway: GatewayContext!
    var raw: SharedPacketChannel!

    override func setUpWithError() throws {
        try super.setUpWithError()
        gateway = try makeGateway()
    }

    override func tearDownWithError() throws {
        gateway?.closeAudit()
        try super.tearDownWithError()
    }

    var monitor: Monitor!

    /// A monitor and the raw end of its channel.
    func startRaw() throws {
        let pair = try PacketChannel.pair()
        monitor = Monitor(gateway: gateway, channel: pair.first, secondFactor: { _, _, _, _ in })
        monitor.start()
        raw = SharedPacketChannel(pair.second)
    }

    /// Both factors for alice (or bob) on `connection`, over the raw channel.
    func authenticate(connection: UInt64 = 7, as user: String = "alice") throws {
        let key = user == "bob" ? Self.bobKey : Self.aliceKey
        guard case .authorized(true) = try send(.publicKey(user: user, key: key), connection: connection),
              case .pamResult(true, _, _) = try send(.keyboardInteractive(user: user, session: SessionID(rawValue: "s"),
                                                                          source: "192.0.2.1"), connection: connection)
        else { throw MonitorCallError.unexpectedReply }
    }

    func send(_ request: MonitorRequest, connection: UInt64 = 7, call: UInt64 = 1) throws -> MonitorReply {
        try raw.send(MonitorWire.encode(MonitorEnvelope(call: call, connection: connection, body: request)))
        return try receiveReply()
    }

    func receiveReply() throws -> MonitorReply {
        switch try raw.receive(maxBytes: MonitorWire.maxReplyBytes, maxDescriptors: 1) {
        case .endOfStream: throw MonitorCallError.monitorGone
        case .packet(let packet):
            return try MonitorWire.decode(MonitorEnvelope<MonitorReply>.self, from: packet.bytes).body
        }
    }

    func auditEvents() throws -> [AuditRecord] {
        let text = try String(contentsOfFile: gateway.configuration.auditLogPath, encoding: .utf8)
        return try text.split(separator: "\n").map { try AuditRecord.parse(line: Array($0.utf8)).record }
    }

    /// Waits (bounded) until the monitor has audited `count` refusals.
    func refusals(atLeast count: Int) throws -> [AuditRecord] {
        let deadline = Date().addingTimeInterval(10)
        while true {
            let found = try auditEvents().filter { $0.kind == AuditEventKind.monitorRefused.rawValue }
            if found.count >= count || Date() > deadline { return found }
            usleep(2_000)
        }
    }

    func testOutOfStateRequestsAreRefusedAuditedAndEndTheConnection() throws {
        try startRaw()
        guard case .refused(let reason) = try send(.elevations) else { return XCTFail("elevations before openSession") }
        XCTAssertTrue(reason.contains("no session"), reason)
        // The refused connection stays ended: it cannot open a session now.
        guard case .refused = try send(.openSession(user: alice, session: SessionID(rawValue: "s1"))) else {
            return XCTFail("a refused connection opened a session")
        }
        let audited = try refusals(atLeast: 2)
        XCTAssertEqual(audited.count, 2)
        XCTAssertEqual(audited.first?.fields["request"], "elevations")
        XCTAssertEqual(audited.first?.fields["connection"], "7")
        // Another connection is not affected.
        try authenticate(connection: 8)
        guard case .done = try send(.openSession(user: alice, session: SessionID(rawValue: "s2")), connection: 8) else {
            return XCTFail("a fresh connection was refused")
        }
    }

    func testAForgedAuditKindIsRefusedAndNeverWritten() throws {
        try startRaw()
        try authenticate()
        guard case .done = try send(.openSession(user: alice, session: SessionID(rawValue: "s1"))) else { return XCTFail() }
        guard case .refused = try send(.audit(kind: .lockboxApproved, fields: ["id": "1"])) else {
            return XCTFail("a forged Lockbox event was taken")
        }
        guard case .refused = try send(.audit(kind: .commandAllowed, fields: [:])) else {
            return XCTFail("the connection went on after a refusal")
        }
        XCTAssertEqual(try refusals(atLeast: 2).count, 2)
        XCTAssertFalse(try auditEvents().contains { $0.kind == AuditEventKind.lockboxApproved.rawValue })
    }

    func testMalformedAndOversizedPacketsAreRefusedAndTheMonitorGoesOn() throws {
        try startRaw()
        try raw.send(Array("{\"call\":1,\"connection\":7,\"body\":{\"nonsense\":{}}}".utf8))
        try raw.send([0xff, 0x00, 0x13])
        try raw.send([UInt8](repeating: 0x20, count: MonitorWire.maxRequestBytes + 1))
        let audited = try refusals(atLeast: 3)
        XCTAssertEqual(audited.count, 3)
        XCTAssertTrue(audited.contains { $0.fields["reason"]?.contains("unreadable packet") == true })
        XCTAssertEqual(audited.filter { $0.fields["reason"] == "malformed request" }.count, 2)
        // Still serving.
        guard case .authorized(true) = try send(.publicKey(user: "alice", key: Self.aliceKey)) else {
            return XCTFail("the monitor stopped after hostile packets")
        }
    }

    func testTheMonitorWritesEventsUnderTheConnectionsUserAndSession() throws {
        try startRaw()
        let session = SessionID(rawValue: "s-alice")
        try authenticate()
        guard case .done = try send(.openSession(user: alice, session: session)) else { return XCTFail() }
        guard case .done = try send(.audit(kind: .commandDenied, fields: ["line": "Set-Mailbox"])) else { return XCTFail() }
        let event = try XCTUnwrap(try auditEvents().last)
        XCTAssertEqual(event.kind, AuditEventKind.commandDenied.rawValue)
        XCTAssertEqual(event.user, "alice")
        XCTAssertEqual(event.session, session.rawValue)
    }

    func testTheTranscriptIsCreatedOnceAndHandedOver() throws {
        let privileges = try monitored(gateway, user: alice, session: SessionID(rawValue: "s-cast"))
        let file = try privileges.createTranscript()
        try file.writeAll(Array("{}\n".utf8))
        XCTAssertEqual(try String(contentsOfFile: privileges.transcriptPath, encoding: .utf8), "{}\n")
        do {
            _ = try privileges.createTranscript()
            XCTFail("a second transcript was created")
        } catch MonitorCallError.refused(let reason) {
            XCTAssertTrue(reason.contains("exists already"), reason)
        }
    }

    /// alice's MailboxAdmin request for `session`, approved by her manager and
    /// the tenant's approver, and its one-time secret.
    private func approvedRequest(for session: SessionID) throws -> (LockboxRequest, OneTimeSecret) {
        let lockbox = gateway.lockbox
        let request = try lockbox.submit(requester: alice, role: "MailboxAdmin", scope: "contoso", durationSeconds: 3600,
                                         reason: "quota", ticket: "INC-1", session: session)
        try lockbox.approve(id: request.id, by: UserName("bob")!)
        try lockbox.approve(id: request.id, by: UserName("carol")!)
        return (request, try lockbox.issueCredential(id: request.id, to: alice))
    }

    /// The session's side dies with a session open: the monitor records the
    /// session's end and ends its grants.
    func testTheSessionSideGoneEndsItsOpenSessions() throws {
        let session = SessionID(rawValue: "s-gone")
        let (request, secret) = try approvedRequest(for: session)
        let lockbox = gateway.lockbox
        try startRaw()
        try authenticate()
        guard case .done = try send(.openSession(user: alice, session: session)) else { return XCTFail() }
        guard case .request(let redeemed?) = try send(.redeem(id: request.id, secret: Array(secret.revealedText.utf8))) else {
            return XCTFail("redeem failed")
        }
        XCTAssertNil(redeemed.secretHash, "the secret's hash left the monitor")
        XCTAssertFalse(lockbox.elevationGrants(session: session, now: gateway.clock.now()).isEmpty)
        raw = nil   // the session's side closes its end
        let deadline = Date().addingTimeInterval(10)
        while !(try auditEvents().contains { $0.kind == AuditEventKind.sessionEnd.rawValue && $0.session == session.rawValue }) && Date() < deadline {
            usleep(2_000)
        }
        let end = try XCTUnwrap(try auditEvents().first { $0.kind == AuditEventKind.sessionEnd.rawValue && $0.session == session.rawValue })
        XCTAssertEqual(end.user, "alice")
        XCTAssertTrue(lockbox.elevationGrants(session: session, now: gateway.clock.now()).isEmpty)
    }

    /// A backend starts only after its durable command.allowed event, and
    /// only as the monitor's own judgement of the line allows.
    func testASpawnNeedsItsAuditEventAndTheMonitorsOwnJudgement() throws {
        try startRaw()
        try authenticate()
        guard case .done = try send(.openSession(user: alice, session: SessionID(rawValue: "s-spawn"))) else {
            return XCTFail()
        }
        // What alice may not run (she reads mailboxes; Set-Mailbox needs an elevation),
        // dressed up as an allowed request with its audit event written first.
        let forged = ExecutionRequest(argv: ["/bin/sh", "-c", "id > /tmp/gatehouse-forged"], environment: [:],
                                      workingDirectory: gateway.executionContext.workingDirectory, timeoutSeconds: 5,
                                      outputLimit: 1000, line: Array("Get-Mailbox -Identity x@contoso.com".utf8))
        guard case .refused = try send(.spawn(forged)) else { return XCTFail("a spawn with no command.allowed event") }

        try authenticate(connection: 9)
        guard case .done = try send(.openSession(user: alice, session: SessionID(rawValue: "s-spawn2")), connection: 9),
              case .done = try send(.audit(kind: .commandAllowed, fields: ["argv": AuditText.jsonArray(forged.argv)]),
                                    connection: 9) else { return XCTFail() }
        guard case .failed = try send(.spawn(forged), connection: 9) else {
            return XCTFail("the monitor started a backend the line does not give")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/gatehouse-forged"))
        XCTAssertTrue(try refusals(atLeast: 2).contains { $0.fields["request"] == "spawn" })
        // Signals and reaps reach only the session's own backends.
        guard case .failed = try send(.signalBackend(pid: getpid(), signal: SIGKILL), connection: 9),
              case .failed = try send(.reapBackend(pid: 1), connection: 9) else {
            return XCTFail("a signal or reap of a process that is not the session's backend")
        }
    }

    /// Call 0 asks for no answer, which only a describing audit event may do:
    /// it is written, in order, with nothing sent back; a gating event or any
    /// other request sent so is refused, audited, and ends the connection.
    func testOnlyADescribingEventMayAskForNoAnswer() throws {
        try startRaw()
        try authenticate()
        let session = SessionID(rawValue: "s")
        guard case .done = try send(.openSession(user: alice, session: session)) else { return XCTFail() }
        try raw.send(MonitorWire.encode(MonitorEnvelope(call: 0, connection: 7, body: MonitorRequest.audit(
            kind: .commandDenied, fields: ["line": "Set-Mailbox", "marker": "posted"]))))
        // The next answered request finds the posted event written before it.
        guard case .done = try send(.audit(kind: .sessionWarning, fields: ["marker": "after"]), call: 2) else {
            return XCTFail("the connection did not go on after a posted describing event")
        }
        let markers = try auditEvents().compactMap { $0.fields["marker"] }
        XCTAssertEqual(markers, ["posted", "after"], "posted in order, with no answer in between")

        try raw.send(MonitorWire.encode(MonitorEnvelope(call: 0, connection: 7, body: MonitorRequest.audit(
            kind: .commandAllowed, fields: ["argv": "[\"/bin/true\"]"]))))
        let refused = try refusals(atLeast: 1)
        XCTAssertTrue(refused.last?.fields["reason"]?.contains("only an event that describes") == true, "\(refused)")
        guard case .refused = try send(.audit(kind: .sessionWarning, fields: [:]), call: 3) else {
            return XCTFail("a connection that asked a gating event for no answer was not ended")
        }
    }

    /// A revocation through the monitor reaches the session's side as a
    /// notice (call 0), which wakes the session that held the grant.
    func testARevokedGrantIsNoticedToTheSessionsSide() throws {
        let aliceSession = SessionID(rawValue: "s-held")
        let (request, secret) = try approvedRequest(for: aliceSession)
        let lockbox = gateway.lockbox
        try lockbox.redeem(id: request.id, secret: typedSecret(Array(secret.revealedText.utf8)), by: alice,
                           session: aliceSession)
        try startRaw()
        try authenticate(connection: 3, as: "bob")
        guard case .done = try send(.openSession(user: UserName("bob")!, session: SessionID(rawValue: "s-bob")),
                                    connection: 3) else { return XCTFail() }
        try raw.send(MonitorWire.encode(MonitorEnvelope(call: 5, connection: 3, body: MonitorRequest.lockbox(
            command: .revoke, parameters: [WireParameter(BoundParameter(name: "Id", value: .int(Int(request.id)))),
                                           WireParameter(BoundParameter(name: "Reason", value: .string("test")))],
            sensitive: false, columns: nil))))
        var notices: [MonitorNotice] = []
        var answered = false
        while !answered {
            guard case .packet(let packet) = try raw.receive(maxBytes: MonitorWire.maxReplyBytes, maxDescriptors: 0) else {
                return XCTFail("the monitor went away")
            }
            let envelope = try MonitorWire.decode(MonitorEnvelope<MonitorReply>.self, from: packet.bytes)
            switch (envelope.call, envelope.body) {
            case (0, .notice(let notice)): notices.append(notice)
            case (5, .lockboxOutput(_, let status)): XCTAssertEqual(status, 0); answered = true
            default: return XCTFail("unexpected \(envelope.body)")
            }
        }
        XCTAssertEqual(notices, [.grantEnded(session: aliceSession, requestID: request.id)])
    }

    /// The network side's own reports (`ready`, `sessionListing`) count only
    /// on connection 0; on a connection they are refused and end it.
    func testTheNetworkSidesReportsComeOnlyOnConnectionZero() throws {
        try startRaw()
        guard case .refused = try send(.ready, connection: 7) else { return XCTFail("ready on a connection") }
        guard case .refused = try send(.sessionListing(query: 1, sessions: [], unauthenticated: 0), connection: 8) else {
            return XCTFail("a listing on a connection")
        }
        try raw.send(MonitorWire.encode(MonitorEnvelope(call: 0, connection: 0, body: MonitorRequest.ready)))
        XCTAssertTrue(monitor.waitUntilReady(timeout: .seconds(5)))
    }

    /// The operator's listing shows what the network side says of the
    /// sessions the monitor holds open, and nothing it makes up; a kill is
    /// for an open session only, and reaches the network side as a notice.
    func testAListingShowsOnlyTheMonitorsSessionsAndAKillIsANotice() throws {
        try startRaw()
        try authenticate(connection: 7)
        let session = SessionID(rawValue: "s-listed")
        guard case .done = try send(.openSession(user: alice, session: session)) else { return XCTFail() }
        let listed = Mutex<(sessions: [SessionRegistry.Summary], unauthenticated: Int)?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread { [monitor] in
            listed.withLock { $0 = monitor!.liveSessions(timeout: .seconds(10)) }
            done.signal()
        }.start()
        guard case .packet(let packet) = try raw.receive(maxBytes: MonitorWire.maxReplyBytes, maxDescriptors: 0),
              case .notice(.listSessions(let query)) = try MonitorWire.decode(MonitorEnvelope<MonitorReply>.self,
                                                                            from: packet.bytes).body else {
            return XCTFail("no listing query")
        }
        let now = Date()
        let real = SessionRegistry.Summary(id: session.rawValue, user: "alice", source: "192.0.2.1", started: now,
                                           lastInput: now, commandRunning: false)
        let invented = SessionRegistry.Summary(id: "s-invented", user: "bob", source: "192.0.2.2", started: now,
                                               lastInput: now, commandRunning: true)
        try raw.send(MonitorWire.encode(MonitorEnvelope(call: query, connection: 0, body: MonitorRequest.sessionListing(
            query: query, sessions: [real, invented], unauthenticated: 3))))
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(listed.withLock { $0?.sessions }, [real])
        XCTAssertEqual(listed.withLock { $0?.unauthenticated }, 3)

        XCTAssertNil(monitor.endSession(SessionID(rawValue: "s-invented"), message: "x"))
        XCTAssertEqual(monitor.endSession(session, message: "bye"), alice)
        guard case .packet(let notice) = try raw.receive(maxBytes: MonitorWire.maxReplyBytes, maxDescriptors: 0) else {
            return XCTFail("no notice")
        }
        guard case .notice(let said) = try MonitorWire.decode(MonitorEnvelope<MonitorReply>.self, from: notice.bytes).body
        else { return XCTFail("not a notice") }
        XCTAssertEqual(said, .endSession(session: session, message: "bye"))
    }
}

final class MonitorClientTests: XCTestCase {
    private final class Outcome: Sendable {
        let callerStillWaitingDuringGone = Mutex<Bool?>(nil)
        let callerFailed = Mutex(false)
        let returned = DispatchSemaphore(value: 0)
    }

    /// When the monitor's channel ends, `gone` (in the daemon: the network
    /// side's immediate exit) runs before any waiting caller hears that the
    /// monitor is gone. Otherwise a session thread told so first would end
    /// "cleanly" and write its transcript's end marker for an end the monitor
    /// never saw (test_transcripts' kill -9 test caught one once).
    func testGoneRunsBeforeAnyWaitingCallerIsTold() throws {
        let pair = try PacketChannel.pair()
        let peer = pair.first
        let outcome = Outcome()
        let client = MonitorClient(channel: pair.second, gone: {
            // A caller already told would return well within this.
            let told = outcome.returned.wait(timeout: .now() + .milliseconds(300)) == .success
            if told { outcome.returned.signal() }
            outcome.callerStillWaitingDuringGone.withLock { $0 = !told }
        })
        Thread {
            do { _ = try client.call(1, .elevations) } catch { outcome.callerFailed.withLock { $0 = true } }
            outcome.returned.signal()
        }.start()
        // The request is registered and sent once the peer has it; then the
        // monitor's end closes, as when the monitor is killed.
        _ = try peer.receive(maxBytes: 65536, maxDescriptors: 0)
        _ = consume peer
        XCTAssertEqual(outcome.returned.wait(timeout: .now() + 10), .success, "the caller fails once gone returns")
        XCTAssertEqual(outcome.callerStillWaitingDuringGone.withLock { $0 }, true)
        XCTAssertTrue(outcome.callerFailed.withLock { $0 })
        XCTAssertThrowsError(try client.call(2, .elevations).reply, "later calls fail at once")
    }
}
