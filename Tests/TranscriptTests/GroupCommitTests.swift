import Foundation
import GatehouseCore
import Synchronization
import TestSupport
@testable import Transcript
import XCTest

/// Group commit in `ChainedAuditLog`: many sessions recording at once share
/// fdatasync calls, yet no `record` returns before a completed sync covers
/// its event, the chain stays exact, and a failed sync fails every event it
/// covered and the log with it.
final class GroupCommitTests: XCTestCase {
    var dir: String!
    var logPath: String { dir + "/audit.log" }

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "gatehouse-groupcommit-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// What the seam saw: how many syncs ran and the newest seq a completed one covered.
    final class SyncLog: Sendable {
        let state = Mutex((syncs: 0, durable: 0, covered: [Int](), heldTooLong: false))
        var durable: Int { state.withLock { $0.durable } }
    }

    /// Holds the first sync after `event` events until `total` have been
    /// written, so that the threads that wrote meanwhile pile up behind it;
    /// then runs the real sync, or fails it with EIO.
    static func seam(_ log: SyncLog, holdFrom event: Int, until total: Int, failHeld: Bool = false,
              written: @escaping @Sendable () -> Int) -> ChainedAuditLog.SyncSeam {
        { covered, synchronize in
            let hold = covered >= event && log.state.withLock { $0.covered.allSatisfy { $0 < event } }
            if hold {
                let deadline = Date().addingTimeInterval(20)
                while written() < total && Date() < deadline { usleep(500) }
                if written() < total { log.state.withLock { $0.heldTooLong = true } }
            }
            defer { log.state.withLock { $0.syncs += 1; $0.covered.append(covered) } }
            if hold && failHeld { throw Errno(rawValue: EIO) }
            try synchronize()
            log.state.withLock { $0.durable = max($0.durable, covered) }
        }
    }

    /// Runs `body` on `count` threads of their own, all at once (Dispatch's
    /// concurrentPerform would run only as many as there are cores), and
    /// returns when every one has finished.
    static func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let done = DispatchSemaphore(value: 0)
        for t in 0..<count {
            Thread.detachNewThread {
                body(t)
                done.signal()
            }
        }
        for _ in 0..<count { done.wait() }
    }

    static func event(thread: Int, n: Int, kind: AuditEventKind = .commandAllowed) -> AuditEvent {
        AuditEvent(time: Date(), kind: kind, user: "user\(thread)", session: SessionID(rawValue: "s\(thread)"),
                   fields: ["id": "\(thread)-\(n)", "line": "Get-Mailbox -Identity u\(n)"])
    }

    func testConcurrentRecordsShareSyncsAndReturnOnlyOnceDurable() throws {
        let threads = 32, perThread = 20, total = threads * perThread
        let key = try AuditSigningKey.loadOrCreate(in: dir)
        let syncs = SyncLog()
        let box = Mutex<ChainedAuditLog?>(nil)
        let log = try ChainedAuditLog(path: logPath, key: key, checkpointInterval: nil, synchronous: true,
                                      syncSeam: Self.seam(syncs, holdFrom: 1, until: threads,
                                                     written: { box.withLock { $0?.writtenSeq ?? 0 } }))
        box.withLock { $0 = log }
        // For each event: the newest durable seq the seam had seen when `record` returned.
        let returned = Mutex([String: Int]())
        let failures = Mutex(0)
        Self.onThreads(threads + 1) { t in
            if t == threads { // checkpoints interleave with the records
                for _ in 0..<5 { if (try? log.checkpoint(reason: "interval")) == nil { failures.withLock { $0 += 1 } } }
                return
            }
            for n in 0..<perThread {
                do {
                    // Every third event only describes: it does not wait, but
                    // stays in its place in the chain.
                    try log.record(Self.event(thread: t, n: n, kind: n % 3 == 2 ? .commandFinished : .commandAllowed))
                    let durable = syncs.durable
                    returned.withLock { $0["\(t)-\(n)"] = durable }
                } catch {
                    failures.withLock { $0 += 1 }
                }
            }
        }
        try log.close()
        XCTAssertEqual(failures.withLock { $0 }, 0)
        XCTAssertFalse(syncs.state.withLock { $0.heldTooLong }, "the threads never all wrote while a sync was held")

        // The chain is exact and verifies, checkpoints included.
        let publicKey = try AuditSigningKey.readPublicKey(path: dir + "/" + AuditSigningKey.publicFileName)
        let report = try AuditLogVerifier(logPath: logPath, publicKey: publicKey).verify()
        XCTAssertNil(report.problem)
        XCTAssertGreaterThanOrEqual(report.events, total)

        // Every gating record returned after a completed sync covered its seq;
        // each thread's events are in the chain in the order it recorded them.
        let lines = try String(contentsOfFile: logPath, encoding: .utf8).split(separator: "\n")
        var seen = 0
        var next = [String: Int]()
        for line in lines {
            let parsed = try AuditRecord.parse(line: Array(line.utf8)).record
            guard let id = parsed.fields["id"] else { continue }
            seen += 1
            let parts = id.split(separator: "-").map { Int($0)! }
            XCTAssertEqual(parts[1], next["\(parts[0])", default: 0], "thread \(parts[0])'s events out of order")
            next["\(parts[0])"] = parts[1] + 1
            guard parsed.kind == AuditEventKind.commandAllowed.rawValue else { continue }
            let durable = try XCTUnwrap(returned.withLock { $0[id] }, id)
            XCTAssertGreaterThanOrEqual(durable, parsed.seq, "event \(id) returned before a sync covered seq \(parsed.seq)")
        }
        XCTAssertEqual(seen, total)

        // One sync covered every thread that wrote while the held one ran:
        // far fewer syncs than events.
        XCTAssertEqual(log.synchronizations, syncs.state.withLock { $0.syncs })
        XCTAssertLessThan(log.synchronizations, total - threads + 2)
    }

    func testAFailedSyncFailsEveryEventItCoveredAndTheLog() throws {
        let threads = 16
        let key = try AuditSigningKey.loadOrCreate(in: dir)
        let syncs = SyncLog()
        let box = Mutex<ChainedAuditLog?>(nil)
        // seq 1 syncs normally; the next sync is held until every thread has
        // written, then fails.
        let log = try ChainedAuditLog(path: logPath, key: key, checkpointInterval: nil, synchronous: true,
                                      syncSeam: Self.seam(syncs, holdFrom: 2, until: threads + 1, failHeld: true,
                                                     written: { box.withLock { $0?.writtenSeq ?? 0 } }))
        box.withLock { $0 = log }
        try log.record(Self.event(thread: 99, n: 0))
        XCTAssertEqual(syncs.durable, 1)

        let outcomes = Mutex([Bool]())
        Self.onThreads(threads) { t in
            let ok = (try? log.record(Self.event(thread: t, n: 0))) != nil
            outcomes.withLock { $0.append(ok) }
        }
        XCTAssertEqual(outcomes.withLock { $0.count }, threads)
        XCTAssertFalse(syncs.state.withLock { $0.heldTooLong }, "the threads never all wrote while a sync was held")
        XCTAssertEqual(outcomes.withLock { $0.filter { $0 }.count }, 0, "an event returned though its sync failed")
        let failedCovered = try XCTUnwrap(syncs.state.withLock { $0.covered.first { $0 >= 2 } })
        XCTAssertGreaterThanOrEqual(failedCovered, 2)
        XCTAssertEqual(syncs.durable, 1, "nothing past seq 1 was ever durable")
        XCTAssertTrue(log.hasFailed)
        XCTAssertThrowsError(try log.record(Self.event(thread: 0, n: 1)))
        XCTAssertThrowsError(try log.checkpoint(reason: "interval"))
    }

    /// A checkpoint waits for its sync like any event, without the chain's
    /// lock: while a sync is held, a session can still write. (It used to wait
    /// holding the lock, so every session stopped behind a checkpoint's sync;
    /// this is what made the concurrent test above time out now and then.)
    func testACheckpointWaitingForASyncDoesNotStopWriters() throws {
        let key = try AuditSigningKey.loadOrCreate(in: dir)
        let box = Mutex<ChainedAuditLog?>(nil)
        let entered = DispatchSemaphore(value: 0)
        let heldTooLong = Mutex(false)
        let first = Mutex(true)
        let log = try ChainedAuditLog(path: logPath, key: key, checkpointInterval: nil, synchronous: true,
                                      syncSeam: { _, synchronize in
            if first.withLock({ let was = $0; $0 = false; return was }) {
                entered.signal()
                // Held until a third line (an event after the checkpoint) is written.
                let deadline = Date().addingTimeInterval(5)
                while (box.withLock { $0?.writtenSeq ?? 0 }) < 3 && Date() < deadline { usleep(500) }
                if (box.withLock { $0?.writtenSeq ?? 0 }) < 3 { heldTooLong.withLock { $0 = true } }
            }
            try synchronize()
        })
        box.withLock { $0 = log }
        let failures = Mutex([String]())
        let recorded = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            do { try log.record(Self.event(thread: 0, n: 1)) } catch { failures.withLock { $0.append("\(error)") } }
            recorded.signal()
        }
        entered.wait()
        let checkpointed = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            do { try log.checkpoint(reason: "interval") } catch { failures.withLock { $0.append("\(error)") } }
            checkpointed.signal()
        }
        let deadline = Date().addingTimeInterval(5)
        while log.writtenSeq < 2 && Date() < deadline { usleep(500) }
        XCTAssertEqual(log.writtenSeq, 2, "the checkpoint line was not written")
        try log.record(Self.event(thread: 1, n: 2))
        checkpointed.wait()
        recorded.wait()
        XCTAssertEqual(failures.withLock { $0 }, [])
        XCTAssertFalse(heldTooLong.withLock { $0 }, "a writer was stopped behind the checkpoint's sync")

        let side = try String(contentsOfFile: log.checkpointPath, encoding: .utf8)
        let record = try AuditRecord.parse(line: Array(side.utf8.dropLast())).record
        XCTAssertEqual(record.seq, 2)
        let publicKey = try AuditSigningKey.readPublicKey(path: dir + "/" + AuditSigningKey.publicFileName)
        let report = try AuditLogVerifier(logPath: logPath, publicKey: publicKey).verify()
        XCTAssertNil(report.problem)
        XCTAssertEqual(report.events, 3)
    }

    func testSingleThreadSyncsOncePerEvent() throws {
        let key = try AuditSigningKey.loadOrCreate(in: dir)
        let syncs = SyncLog()
        let log = try ChainedAuditLog(path: logPath, key: key, checkpointInterval: nil, synchronous: true,
                                      syncSeam: Self.seam(syncs, holdFrom: Int.max, until: 0, written: { 0 }))
        for n in 1...5 {
            try log.record(Self.event(thread: 0, n: n))
            XCTAssertEqual(syncs.durable, n)
        }
        XCTAssertEqual(log.synchronizations, 5)
    }

    // MARK: - Describing events

    /// A seam that holds every sync until `release` is signalled (at most
    /// 20 s, so that a regression fails instead of hanging), then syncs and
    /// reports the seq it covered on `covered`.
    static func heldSeam(_ log: SyncLog, release: DispatchSemaphore, covered: DispatchSemaphore) -> ChainedAuditLog.SyncSeam {
        { seq, synchronize in
            _ = release.wait(timeout: .now() + 20)
            try synchronize()
            log.state.withLock { $0.syncs += 1; $0.durable = max($0.durable, seq); $0.covered.append(seq) }
            covered.signal()
        }
    }

    /// A describing event returns before any sync, and becomes durable
    /// without any later event: the flusher syncs it at its deadline.
    func testADescribingEventIsDurableWithoutALaterEvent() throws {
        let key = try AuditSigningKey.loadOrCreate(in: dir)
        let syncs = SyncLog()
        let release = DispatchSemaphore(value: 0), covered = DispatchSemaphore(value: 0)
        let log = try ChainedAuditLog(path: logPath, key: key, checkpointInterval: nil, synchronous: true,
                                      describingSyncDelay: 0.01,
                                      syncSeam: Self.heldSeam(syncs, release: release, covered: covered))
        try log.record(Self.event(thread: 0, n: 0, kind: .authSuccess))
        XCTAssertEqual(syncs.durable, 0, "record waited for a sync")
        XCTAssertEqual(log.writtenSeq, 1, "the line is written at once")
        release.signal()
        XCTAssertEqual(covered.wait(timeout: .now() + 30), .success, "no sync came for the describing event")
        XCTAssertEqual(syncs.state.withLock { $0.covered }, [1])
        // The seam signals before the log counts its sync; wait for the count
        // (bounded), rather than read it in that window.
        let counted = Date().addingTimeInterval(10)
        while log.synchronizations < 1 && Date() < counted { usleep(1_000) }
        XCTAssertEqual(log.synchronizations, 1)
    }

    /// A gating event returns only after one sync that covers it and every
    /// describing event before it; what is pending at `close` is synced by it.
    func testAGatingEventSyncsEverythingBeforeItInOneSync() throws {
        let key = try AuditSigningKey.loadOrCreate(in: dir)
        let syncs = SyncLog()
        // The flusher's deadline is out of reach: only the gating event syncs.
        let log = try ChainedAuditLog(path: logPath, key: key, checkpointInterval: nil, synchronous: true,
                                      describingSyncDelay: 3600,
                                      syncSeam: Self.seam(syncs, holdFrom: Int.max, until: 0, written: { 0 }))
        let login: [AuditEventKind] = [.authFailure, .authSuccess, .authSuccess, .sessionStart,
                                       .commandAllowed, .commandFinished, .sessionEnd]
        for (n, kind) in login.enumerated() {
            try log.record(Self.event(thread: 0, n: n, kind: kind))
            if kind.gatesAnAction {
                XCTAssertEqual(syncs.durable, n + 1, "\(kind) returned before a sync covered it and every event before it")
            }
        }
        XCTAssertEqual(syncs.state.withLock { $0.covered }, [4, 5], "one sync per gating event of a login")
        XCTAssertEqual(log.synchronizations, 2)
        try log.close()
        XCTAssertEqual(syncs.durable, 8, "close synced the pending describing events with its checkpoint")
        let publicKey = try AuditSigningKey.readPublicKey(path: dir + "/" + AuditSigningKey.publicFileName)
        let report = try AuditLogVerifier(logPath: logPath, publicKey: publicKey).verify()
        XCTAssertNil(report.problem)
        XCTAssertEqual(report.events, 8)
        let kinds = try String(contentsOfFile: logPath, encoding: .utf8).split(separator: "\n")
            .map { try AuditRecord.parse(line: Array($0.utf8)).record.kind }
        XCTAssertEqual(kinds, login.map(\.rawValue) + [AuditEventKind.auditCheckpoint.rawValue])
    }

    /// A log dropped without `close` syncs its pending describing events.
    func testDeinitSyncsPendingDescribingEvents() throws {
        let key = try AuditSigningKey.loadOrCreate(in: dir)
        let syncs = SyncLog()
        var log: ChainedAuditLog? = try ChainedAuditLog(path: logPath, key: key, checkpointInterval: nil,
                                                        synchronous: true, describingSyncDelay: 3600,
                                                        syncSeam: Self.seam(syncs, holdFrom: Int.max, until: 0,
                                                                            written: { 0 }))
        try log?.record(Self.event(thread: 0, n: 0, kind: .sessionEnd))
        XCTAssertEqual(syncs.durable, 0)
        log = nil
        XCTAssertEqual(syncs.durable, 1)
    }
}
