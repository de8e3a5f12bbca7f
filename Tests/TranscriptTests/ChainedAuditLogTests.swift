import Crypto
import Foundation
import GatehouseCore
import TestSupport
import Transcript
import XCTest

/// The chain and its verifier: every kind of tampering the issue names is
/// detected, and named by the right sequence number.
final class ChainedAuditLogTests: XCTestCase {
    var dir: String!
    var logPath: String { dir + "/audit.log" }

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "gatehouse-audit-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// Writes `count` command events, with checkpoints after events in `checkpointAfter`, and a final one.
    @discardableResult
    func makeLog(count: Int, checkpointAfter: Set<Int> = [], finalCheckpoint: Bool = true) throws -> AuditSigningKey {
        let key = try AuditSigningKey.loadOrCreate(in: dir)
        let clock = ManualClock()
        let log = try ChainedAuditLog(path: logPath, key: key, clock: clock, checkpointInterval: nil, synchronous: false)
        for n in 1...count {
            clock.advance(by: 1)
            try log.record(AuditEvent(time: clock.now(), kind: .commandAllowed, user: "alice",
                                      session: SessionID(rawValue: "s1"),
                                      fields: ["cmdlet": "Get-Mailbox", "line": "Get-Mailbox -Identity u\(n)"]))
            if checkpointAfter.contains(n) { try log.checkpoint(reason: "interval") }
        }
        if finalCheckpoint { try log.close() }
        return key
    }

    func lines() throws -> [String] {
        try String(contentsOfFile: logPath, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    func write(_ lines: [String]) throws {
        try (lines.joined(separator: "\n") + "\n").write(toFile: logPath, atomically: false, encoding: .utf8)
    }

    func verify() throws -> AuditLogVerifier.Report {
        let key = try AuditSigningKey.readPublicKey(path: dir + "/" + AuditSigningKey.publicFileName)
        return try AuditLogVerifier(logPath: logPath, publicKey: key).verify()
    }

    func testIntactLogVerifiesWithSignatures() throws {
        try makeLog(count: 10, checkpointAfter: [4])
        let report = try verify()
        XCTAssertNil(report.problem)
        XCTAssertEqual(report.events, 12)          // 10 events + 2 checkpoints
        XCTAssertEqual(report.checkpoints, 2)
        XCTAssertEqual(report.signedThrough, 12)
        XCTAssertEqual(report.unsignedTail, 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: logPath + ".checkpoint"))
    }

    func testEachLineHashesItsCanonicalContentAndChains() throws {
        try makeLog(count: 3)
        var prev = String(repeating: "0", count: 64)
        for (n, line) in try lines().enumerated() {
            let parsed = try AuditRecord.parse(line: Array(line.utf8))
            XCTAssertTrue(parsed.hashMatches)
            XCTAssertEqual(parsed.record.seq, n + 1)
            XCTAssertEqual(parsed.record.prev, prev)
            // The line is exactly the canonical encoding of its own content.
            XCTAssertEqual(parsed.record.lineBytes, Array(line.utf8))
            prev = parsed.record.hash
        }
    }

    func testFlippedByteIsNamedBySeq() throws {
        try makeLog(count: 8)
        var all = try lines()
        all[4] = all[4].replacingOccurrences(of: "u5", with: "u6")   // seq 5
        try write(all)
        let problem = try XCTUnwrap(try verify().problem)
        XCTAssertEqual(problem.seq, 5)
        XCTAssertTrue(problem.reason.contains("does not match its hash"), problem.reason)
    }

    func testFlippedByteThatBreaksJSONIsNamedBySeq() throws {
        try makeLog(count: 8)
        var bytes = Array(try lines()[2].utf8)                           // seq 3
        bytes[0] = UInt8(ascii: "[")
        var all = try lines()
        all[2] = String(decoding: bytes, as: UTF8.self)
        try write(all)
        XCTAssertEqual(try verify().problem?.seq, 3)
    }

    func testDuplicatedKeyIsRejectedEvenThoughTheHashStillMatches() throws {
        try makeLog(count: 5)
        let original = try lines()
        // Parsers disagree on which copy of a key wins (Python's json and jq
        // keep the last): either placement is caught, at the right seq.
        // Whichever copy our parser keeps, the other placement hashes the
        // same as the original: only the canonical-form check catches it.
        var reasons: [String] = []
        for edit in [("{\"fields\"", "{\"kind\":\"command.denied\",\"fields\""),
                     ("\"}\u{0}", "\",\"kind\":\"command.denied\"}")] {
            var all = original
            all[1] = (all[1] + "\u{0}").replacingOccurrences(of: edit.0, with: edit.1)
                .replacingOccurrences(of: "\u{0}", with: "")
            XCTAssertNotEqual(all[1], original[1])
            try write(all)
            let problem = try XCTUnwrap(try verify().problem)
            XCTAssertEqual(problem.seq, 2)
            reasons.append(problem.reason)
        }
        XCTAssertEqual(reasons.filter { $0.contains("canonical") }.count, 1, "\(reasons)")
    }

    func testRemovedEventIsNamedBySeq() throws {
        try makeLog(count: 8)
        var all = try lines()
        all.remove(at: 3)                                               // seq 4
        try write(all)
        let problem = try XCTUnwrap(try verify().problem)
        XCTAssertEqual(problem.seq, 4)
        XCTAssertTrue(problem.reason.contains("found seq 5"), problem.reason)
    }

    func testReorderedEventsAreNamedBySeq() throws {
        try makeLog(count: 8)
        var all = try lines()
        all.swapAt(5, 6)                                                // seq 6 and 7
        try write(all)
        let problem = try XCTUnwrap(try verify().problem)
        XCTAssertEqual(problem.seq, 6)
        XCTAssertTrue(problem.reason.contains("found seq 7"), problem.reason)
    }

    func testTruncationBeforeTheNewestCheckpointIsDetected() throws {
        try makeLog(count: 8)                                           // checkpoint is seq 9
        let all = try lines()
        try write(Array(all.prefix(6)))
        let problem = try XCTUnwrap(try verify().problem)
        XCTAssertEqual(problem.seq, 7)
        XCTAssertTrue(problem.reason.contains("truncated"), problem.reason)
    }

    func testRewrittenChainFailsTheCheckpointSignature() throws {
        try makeLog(count: 6)
        // An attacker edits seq 3 and recomputes every hash after it, but
        // cannot sign: the checkpoint (seq 7) no longer verifies.
        var records = try lines().map { try AuditRecord.parse(line: Array($0.utf8)).record }
        var rewritten: [String] = []
        var prev = AuditRecord.genesisHash
        for (n, r) in records.enumerated() {
            var fields = r.fields
            if n == 2 { fields["line"] = "Get-Mailbox -Identity innocent" }
            if r.kind == "audit.checkpoint" { fields["signedHash"] = prev }
            let event = AuditEvent(time: r.time, kind: AuditEventKind(rawValue: r.kind)!, user: r.user,
                                   session: r.session.map(SessionID.init(rawValue:)), fields: fields)
            let new = AuditRecord(event: event, seq: r.seq, prev: prev)
            rewritten.append(String(decoding: new.lineBytes, as: UTF8.self))
            prev = new.hash
        }
        records.removeAll()
        try write(rewritten)
        let problem = try XCTUnwrap(try verify().problem)
        XCTAssertEqual(problem.seq, 7)
        XCTAssertTrue(problem.reason.contains("signature is not valid"), problem.reason)
    }

    func testCheckpointFromAnotherKeyIsRejected() throws {
        try makeLog(count: 3)
        let other = Curve25519.Signing.PrivateKey().publicKey
        let report = try AuditLogVerifier(logPath: logPath, publicKey: other).verify()
        XCTAssertEqual(report.problem?.seq, 4)
        XCTAssertTrue(report.problem?.reason.contains("signed by key") ?? false)
    }

    func testCrashLeavesAChainedUnsignedTailThatVerifies() throws {
        try makeLog(count: 5, checkpointAfter: [2], finalCheckpoint: false)
        let report = try verify()
        XCTAssertNil(report.problem)
        XCTAssertEqual(report.signedThrough, 3)
        XCTAssertEqual(report.unsignedTail, 3)
    }

    func testReopeningContinuesTheChain() throws {
        let key = try makeLog(count: 3)
        let log = try ChainedAuditLog(path: logPath, key: key, checkpointInterval: nil, synchronous: false)
        XCTAssertEqual(log.currentSeq, 4)
        try log.record(AuditEvent(time: Date(), kind: .policyLoad))
        try log.close()
        let report = try verify()
        XCTAssertNil(report.problem)
        XCTAssertEqual(report.lastSeq, 6)
        XCTAssertEqual(report.signedThrough, 6)
    }

    func testTornLastLineIsTerminatedAndTheChainContinues() throws {
        let key = try makeLog(count: 3)
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: logPath))
        handle.seekToEndOfFile()
        handle.write(Data("{\"fields\":{\"cmd".utf8))
        try handle.close()
        let log = try ChainedAuditLog(path: logPath, key: key, checkpointInterval: nil, synchronous: false)
        XCTAssertTrue(log.recoveredTornTail)
        try log.record(AuditEvent(time: Date(), kind: .policyLoad))
        try log.close()
        let report = try verify()
        XCTAssertNil(report.problem, "\(report.problem!)")
        XCTAssertEqual(report.lastSeq, 6)
        XCTAssertEqual(report.notes.count, 1)
    }

    func testWriteFailureIsStickySoTheGatewayFailsClosed() throws {
        let key = try AuditSigningKey.loadOrCreate(in: dir)
        // /dev/full accepts the open and fails every write with ENOSPC.
        let log = try ChainedAuditLog(path: "/dev/full", key: key, checkpointInterval: nil, synchronous: false)
        XCTAssertThrowsError(try log.record(AuditEvent(time: Date(), kind: .policyLoad)))
        XCTAssertTrue(log.hasFailed)
        XCTAssertThrowsError(try log.record(AuditEvent(time: Date(), kind: .policyLoad)))
    }

    func testSigningKeyIsCreatedPrivateAndReused() throws {
        let first = try AuditSigningKey.loadOrCreate(in: dir)
        var st = stat()
        XCTAssertEqual(stat(dir + "/" + AuditSigningKey.privateFileName, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600)
        let second = try AuditSigningKey.loadOrCreate(in: dir)
        XCTAssertEqual(first.keyID, second.keyID)
    }

    func testCanonicalJSONMatchesPythonsSortedCompactEncoding() {
        let value = JSONValue.object(["b": .string("x\"\\\n\u{1b}é/"), "a": .int(-3), "c": .array([.bool(true), .null])])
        // json.dumps(v, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        XCTAssertEqual(String(decoding: value.canonicalBytes, as: UTF8.self),
                       #"{"a":-3,"b":"x\"\\\n\u001bé/","c":[true,null]}"#)
    }
}
