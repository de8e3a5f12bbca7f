import CmdletPolicy
import CmdletShell
import Foundation
import GatehouseCore
@testable import Gateway
import Lockbox
import PAMWorkers
import TestSupport
import XCTest

/// The monitor channel's bytes: every message shape comes back as it went,
/// and hostile bytes are refused with a `MonitorWireError`, never a trap.
final class MonitorWireFormatTests: XCTestCase {
    let alice = UserName("alice")!
    let session = SessionID(rawValue: "0123456789abcdef01234567")

    func requests() -> [MonitorRequest] {
        let spawn = ExecutionRequest(argv: ["/usr/lib/gatehouse/backends/mailbox", "get", "--identity", "zoë"],
                                     environment: ["GATEHOUSE_TENANT": "contoso", "GATEHOUSE_USER": "alice"],
                                     workingDirectory: "/", timeoutSeconds: 0.25, outputLimit: Int.max,
                                     killGraceSeconds: -0.0, line: Array("Get-Mailbox -Identity zoë".utf8))
        let nested = ParameterValue.list([.string(""), .list([.int(Int.min), .int(Int.max), .list([])]),
                                          .switchPresent, .size(bytes: 1 << 40), .dateTime(-1), .duration(seconds: 60)])
        return [
            .publicKey(user: "alice", key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"),
            .keyboardInteractive(user: "alice", session: session, source: "[2001:db8::1]:22"),
            .pamAnswers(["123456", nil, "", "pässwörd\u{0}"]),
            .pamAnswers(nil),
            .pamAnswers([]),
            .closeConnection,
            .preAuthAudit(kind: .authFailure, user: nil, session: nil, fields: [:]),
            .preAuthAudit(kind: .connectionRefused, user: "bob", session: session,
                          fields: Dictionary(uniqueKeysWithValues: (0..<40).map { ("key\($0)", "value \($0)") })),
            .openSession(user: alice, session: session),
            .elevations,
            .audit(kind: .commandFinished, fields: ["status": "0", "line": "Get-Mailbox\u{1b}[2J"]),
            .createTranscript,
            .spawn(spawn),
            .signalBackend(pid: Int32.max, signal: 15),
            .reapBackend(pid: -1),
            .lockbox(command: .newRequest, parameters: [WireParameter(BoundParameter(name: "Role", value: .string("x"))),
                                                        WireParameter(BoundParameter(name: "Args", value: nested))],
                     sensitive: true, columns: nil),
            .lockbox(command: .getRequest, parameters: [], sensitive: false, columns: 132),
            .redeem(id: Int64.min, secret: []),
            .redeem(id: 42, secret: Array(0...255)),
            .endElevations(reason: "exit"),
            .sweep,
            .ownRequest(id: 7),
            .end(reason: "client closed", fields: nil),
            .end(reason: "", fields: ["commands": "3"]),
            .sessionListing(query: UInt64.max, sessions: [SessionRegistry.Summary(
                id: "s", user: "alice", source: "192.0.2.1", started: Date(timeIntervalSince1970: 1_800_000_000.5),
                lastInput: Date.distantPast, commandRunning: true)], unauthenticated: 3),
            .ready,
        ]
    }

    func replies() -> [MonitorReply] {
        var request = LockboxRequest(id: 9, requester: alice, role: "MailboxAdmin", scope: "contoso",
                                     durationSeconds: 3600, reason: "ticket 1", ticket: nil, state: .approved,
                                     needsCustomerApproval: true, createdAt: Date(timeIntervalSince1970: 0),
                                     deadline: Date(timeIntervalSince1970: 1e9))
        request.secretSalt = [1, 2, 3]
        request.secretHash = []
        request.managerApprover = UserName("mallory")
        request.endReason = "ended \u{1F512}"
        return [
            .authorized(true), .authorized(false),
            .pamMessages([WirePAMMessage(PAMMessage(style: .promptEchoOff, text: "Verification code: ")),
                          WirePAMMessage(PAMMessage(style: .textInfo, text: ""))]),
            .pamResult(success: false, failure: "Authentication failure", notice: nil),
            .grants([RoleGrant(role: "Reader"),
                     RoleGrant(role: "MailboxAdmin", scope: "contoso", expires: Date(timeIntervalSince1970: 2e9),
                               source: .elevation(requestID: 9))]),
            .spawned(pid: 4242), .exitStatus(-9), .done,
            .lockboxError(.illegalTransition(from: .denied, event: "approve")),
            .lockboxError(.corruptRow(id: nil, column: "state", problem: "unknown")),
            .lockboxError(.auditUnavailable),
            .request(nil), .request(request), .requests([request, request]),
            .lockboxOutput([.stdout(Array("ok\n".utf8)), .sensitive([0xff, 0]), .stderr([])], status: 2),
            .refused("out of state"), .failed("disk"),
            .notice(.grantEnded(session: session, requestID: 9)), .notice(.reload),
            .notice(.listSessions(query: 1)),
        ]
    }

    func testEveryRequestAndReplyComesBackAsItWent() throws {
        for (call, request) in requests().enumerated() {
            let bytes = try MonitorWire.encode(MonitorEnvelope(call: UInt64(call), connection: 7, body: request))
            let back = try MonitorWire.decode(MonitorEnvelope<MonitorRequest>.self, from: bytes)
            XCTAssertEqual(back.body, request)
            XCTAssertEqual(back.call, UInt64(call))
            XCTAssertEqual(back.connection, 7)
        }
        for reply in replies() {
            let bytes = try MonitorWire.encode(MonitorEnvelope(call: 1, connection: 2, body: reply))
            XCTAssertEqual(try MonitorWire.decode(MonitorEnvelope<MonitorReply>.self, from: bytes).body, reply)
        }
    }

    func testARequestDoesNotDecodeAsAReply() throws {
        let bytes = try MonitorWire.encode(MonitorEnvelope(call: 1, connection: 2, body: MonitorRequest.sweep))
        XCTAssertThrowsError(try MonitorWire.decode(MonitorEnvelope<MonitorReply>.self, from: bytes))
    }

    func testEveryCutShortMessageIsAnError() throws {
        for request in requests() {
            let bytes = try MonitorWire.encode(MonitorEnvelope(call: 3, connection: 4, body: request))
            for length in 0..<bytes.count {
                XCTAssertThrowsError(try MonitorWire.decode(MonitorEnvelope<MonitorRequest>.self,
                                                            from: Array(bytes[..<length])),
                                     "\(request) cut to \(length) of \(bytes.count) bytes")
            }
            XCTAssertThrowsError(try MonitorWire.decode(MonitorEnvelope<MonitorRequest>.self, from: bytes + [0]),
                                 "a byte after the message")
        }
    }

    /// Random damage: each damaged message is refused, or it decodes to a
    /// request that itself survives a round trip. Nothing traps.
    func testDamagedMessagesAreRefusedOrWellFormed() throws {
        var random = SeededGenerator(seed: 0x6a7e_4015e)
        var refused = 0, accepted = 0
        for request in requests() {
            let bytes = try MonitorWire.encode(MonitorEnvelope(call: 3, connection: 4, body: request))
            for _ in 0..<300 {
                var damaged = bytes
                for _ in 0..<(1 + Int(random.next() % 3)) {
                    damaged[Int(random.next() % UInt64(damaged.count))] = UInt8(truncatingIfNeeded: random.next())
                }
                do {
                    let decoded = try MonitorWire.decode(MonitorEnvelope<MonitorRequest>.self, from: damaged)
                    let again = try MonitorWire.encode(decoded)
                    XCTAssertEqual(try MonitorWire.decode(MonitorEnvelope<MonitorRequest>.self, from: again).body,
                                   decoded.body)
                    accepted += 1
                } catch is MonitorWireError {
                    refused += 1
                } catch is DecodingError {
                    refused += 1    // a damaged JSON frame (the Lockbox's requests)
                }
            }
        }
        // Both outcomes happen: damage to a count or a tag is refused,
        // damage inside a string's bytes often still decodes.
        XCTAssertGreaterThan(refused, 1000)
        XCTAssertGreaterThan(accepted, 1000)
    }

    func testHostileShapesAreRefused() throws {
        func refused(_ why: String, line: UInt = #line, _ build: (inout MonitorWireWriter) throws -> Void) rethrows {
            var writer = MonitorWireWriter()
            writer.integer(UInt64(1))
            writer.integer(UInt64(2))
            try build(&writer)
            XCTAssertThrowsError(try MonitorWire.decode(MonitorEnvelope<MonitorRequest>.self, from: writer.bytes), why,
                                 line: line) { error in
                XCTAssertTrue(error is MonitorWireError || error is DecodingError, "\(why): \(error)", line: line)
            }
        }
        // The well-formed message the hostile ones are made like.
        var writer = MonitorWireWriter()
        writer.integer(UInt64(1)); writer.integer(UInt64(2)); writer.tag(17); writer.string("bye"); writer.tag(0)
        XCTAssertEqual(try MonitorWire.decode(MonitorEnvelope<MonitorRequest>.self, from: writer.bytes).body,
                       .end(reason: "bye", fields: nil))

        XCTAssertThrowsError(try MonitorWire.decode(MonitorEnvelope<MonitorRequest>.self, from: []), "nothing")
        refused("no request") { _ in }
        refused("an unknown request") { $0.tag(99) }
        refused("a byte after the request") { $0.tag(15); $0.tag(0) }
        refused("a flag that is neither 0 nor 1") { $0.tag(17); $0.string("bye"); $0.tag(2) }
        refused("a string longer than the message") { $0.tag(14); $0.integer(UInt32(100)); $0.tag(0x41) }
        refused("a count of four billion names") { $0.tag(10); $0.integer(UInt32.max) }
        refused("a string that is not UTF-8") { $0.tag(14); $0.bytes([0xc3, 0x28]) }
        refused("an invalid user name") { $0.tag(6); $0.string("Alice\n"); $0.string("s1") }
        refused("an unknown audit kind") { $0.tag(8); $0.string("lockbox.approved.forged"); $0.fields([:]) }
        refused("a field named twice") { w in
            w.tag(8); w.string("command.finished"); w.integer(UInt32(2))
            w.string("status"); w.string("0"); w.string("status"); w.string("1")
        }
        refused("a number cut short") { $0.tag(11); $0.integer(Int32(1)); $0.tag(15) }
        // The JSON frame carries only the Lockbox's requests and the listing.
        let lockbox = MonitorRequest.lockbox(command: .getRequest, parameters: [], sensitive: false, columns: nil)
        writer = MonitorWireWriter()
        writer.integer(UInt64(1)); writer.integer(UInt64(2)); writer.tag(0xff); try writer.json(lockbox)
        XCTAssertEqual(try MonitorWire.decode(MonitorEnvelope<MonitorRequest>.self, from: writer.bytes).body, lockbox)
        try refused("a login request in the JSON frame") { $0.tag(0xff); try $0.json(MonitorRequest.sweep) }
        refused("JSON that is not a request") { $0.tag(0xff); $0.bytes(Array("{\"sweep\":".utf8)) }
        refused("a JSON frame that is not JSON") { $0.tag(0xff); $0.bytes([0xff, 0xfe]) }
    }
}
