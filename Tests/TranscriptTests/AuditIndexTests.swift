import Foundation
import GatehouseCore
import TestSupport
import Transcript
import XCTest

/// The SQLite index against a real log: the searches the reviewer tools run.
final class AuditIndexTests: XCTestCase {
    var dir: String!
    var log: ChainedAuditLog!
    let clock = ManualClock()

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "gatehouse-index-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        log = try ChainedAuditLog(path: dir + "/audit.log", key: try AuditSigningKey.loadOrCreate(in: dir),
                                  clock: clock, checkpointInterval: nil, synchronous: false)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func event(_ kind: AuditEventKind, _ user: String, _ session: String, _ fields: [String: String]) throws {
        clock.advance(by: 60)
        try log.record(AuditEvent(time: clock.now(), kind: kind, user: user, session: SessionID(rawValue: session), fields: fields))
    }

    func session(_ user: String, _ id: String, node: String = "gw1", body: () throws -> Void) throws {
        try event(.sessionStart, user, id, ["node": node, "source": "10.0.0.1:5000"])
        try body()
        try event(.sessionEnd, user, id, ["reason": "exit"])
    }

    func makeIndex() throws -> AuditIndex {
        let index = try AuditIndex(path: dir + "/index.sqlite", logPath: dir + "/audit.log")
        try index.catchUp()
        return index
    }

    func populate() throws {
        try session("alice", "s1") {
            try event(.commandAllowed, "alice", "s1", ["cmdlet": "Get-Mailbox", "line": "Get-Mailbox -Identity bob",
                                                       "role": "MailboxReader", "parameters": #"{"Identity":"bob"}"#])
            try event(.commandFinished, "alice", "s1", ["cmdlet": "Get-Mailbox", "exitStatus": "0", "durationMs": "12",
                                                        "stdoutBytes": "100", "stderrBytes": "0"])
        }
        try session("bob", "s2", node: "gw2") {
            try event(.commandDenied, "bob", "s2", ["cmdlet": "Set-Mailbox", "line": "Set-Mailbox -Identity carol",
                                                    "reason": "not permitted"])
            try event(.commandAllowed, "bob", "s2", ["cmdlet": "Set-Mailbox", "line": "Set-Mailbox -Identity carol -ProhibitSendQuota 1GB",
                                                     "role": "MailboxAdmin", "scope": "contoso", "requestID": "42",
                                                     "parameters": #"{"Identity":"carol","ProhibitSendQuota":"1GB"}"#])
            try event(.commandFinished, "bob", "s2", ["cmdlet": "Set-Mailbox", "exitStatus": "3", "durationMs": "5"])
        }
    }

    func testSearchesByCmdletParameterDecisionUserScopeAndRequest() throws {
        try populate()
        let index = try makeIndex()
        var f = AuditIndex.CommandFilter()
        f.cmdlet = "set-mailbox"
        XCTAssertEqual(try index.commands(f).count, 2)
        f.decision = "allow"
        f.scope = "contoso"
        let hits = try index.commands(f)
        XCTAssertEqual(hits.map(\.user), ["bob"])
        XCTAssertEqual(hits.first?.exitStatus, 3)
        XCTAssertEqual(hits.first?.requestID, 42)

        var p = AuditIndex.CommandFilter()
        p.parameters = [("identity", "carol"), ("ProhibitSendQuota", "1GB")]
        XCTAssertEqual(try index.commands(p).map(\.decision), ["allow"])
        p.parameters = [("Identity", "bob")]
        XCTAssertEqual(try index.commands(p).first?.stdoutBytes, 100)

        var r = AuditIndex.CommandFilter()
        r.requestID = 42
        XCTAssertEqual(try index.commands(r).count, 1)
    }

    func testSessionFilters() throws {
        try populate()
        let index = try makeIndex()
        var f = AuditIndex.SessionFilter()
        XCTAssertEqual(try index.sessions(f).map(\.id), ["s1", "s2"])
        f.deniedOnly = true
        XCTAssertEqual(try index.sessions(f).map(\.id), ["s2"])
        f = AuditIndex.SessionFilter()
        f.user = "alice"
        XCTAssertEqual(try index.sessions(f).first?.endReason, "exit")
        f = AuditIndex.SessionFilter()
        f.node = "gw2"
        XCTAssertEqual(try index.sessions(f).map(\.id), ["s2"])
        f = AuditIndex.SessionFilter()
        f.requestID = 42
        XCTAssertEqual(try index.sessions(f).map(\.id), ["s2"])
        f = AuditIndex.SessionFilter()
        f.since = clock.now().addingTimeInterval(-60 * 4)   // s1 ended long before
        XCTAssertEqual(try index.sessions(f).map(\.id), ["s2"])
        f.until = clock.now().addingTimeInterval(-60 * 10)
        XCTAssertEqual(try index.sessions(f).map(\.id), [])
    }

    func testCatchUpIsIncrementalAndRebuildsWhenTheLogWasReplaced() throws {
        try populate()
        let index = try makeIndex()
        try session("carol", "s3") {}
        XCTAssertEqual(try index.catchUp(), 2)
        XCTAssertEqual(try index.catchUp(), 0)
        XCTAssertEqual(try index.sessions(AuditIndex.SessionFilter()).count, 3)
        // A different log at the same path: the index starts over.
        try FileManager.default.removeItem(atPath: dir + "/audit.log")
        let fresh = try ChainedAuditLog(path: dir + "/audit.log", key: try AuditSigningKey.loadOrCreate(in: dir),
                                        clock: clock, checkpointInterval: nil, synchronous: false)
        log = fresh
        try session("dave", "s9") {}
        try session("dave", "s10") {}
        try session("dave", "s11") {}
        try session("dave", "s12") {}
        try index.catchUp()
        XCTAssertEqual(try index.sessions(AuditIndex.SessionFilter()).map(\.id), ["s9", "s10", "s11", "s12"])
        XCTAssertEqual(try index.rebuild(), 8)
    }
}
