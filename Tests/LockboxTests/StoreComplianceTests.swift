import Foundation
import GatehouseCore
import Lockbox
import Synchronization
import XCTest

/// One compliance suite, run against every `LockboxStore`. Each check is a
/// plain function so each store's test class lists them explicitly (XCTest on
/// Linux does not discover inherited test methods).
enum StoreCompliance {
    static let alice = UserName("alice")!
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    /// Real separate processes (as two gateway nodes on one database are)
    /// race the same compare-and-set at the same instant: `lockbox-race-helper
    /// setup` makes a request, six racers wait for one start instant, and
    /// exactly one wins; three rounds. `environment` is added to each helper's.
    static func separateProcessesRace(database: String, environment: [String: String] = [:],
                                      startDelay: TimeInterval) throws {
        let helper = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("lockbox-race-helper").path
        guard FileManager.default.isExecutableFile(atPath: helper) else {
            throw XCTSkip("lockbox-race-helper not built beside the test bundle (\(helper)); run swift build first")
        }
        func spawn(_ args: [String]) throws -> (Process, Pipe) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: helper)
            p.arguments = args
            p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            let pipe = Pipe()
            p.standardOutput = pipe
            try p.run()
            return (p, pipe)
        }
        func output(_ pair: (Process, Pipe)) -> String {
            let data = pair.1.fileHandleForReading.readDataToEndOfFile()
            pair.0.waitUntilExit()
            return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        for _ in 0..<3 {
            let id = output(try spawn(["setup", database]))
            XCTAssertNotNil(Int64(id), id)
            // Each racer connects first, then waits for the start instant.
            let start = String(Date().timeIntervalSince1970 + startDelay)
            let racers = try (0..<6).map { _ in try spawn(["race", database, id, start]) }
            let results = racers.map(output)
            XCTAssertEqual(results.filter { $0 == "won" }.count, 1, "\(results)")
            XCTAssertEqual(results.filter { $0 == "lost" }.count, 5, "\(results)")
        }
    }

    static func new(_ scope: String = "contoso", requester: UserName = alice, ttl: TimeInterval = 3600) -> NewRequest {
        NewRequest(requester: requester, role: "MailboxAdmin", scope: scope, durationSeconds: 600, reason: "r",
                   ticket: "INC-1", needsCustomerApproval: true, createdAt: t0, pendingDeadline: t0 + ttl)
    }

    static func insertAndRead(_ store: LockboxStore) throws {
        let a = try store.insert(new())
        let b = try store.insert(new("fabrikam"))
        XCTAssertLessThan(a.id, b.id)
        XCTAssertEqual(a.state, .pendingManager)
        XCTAssertEqual(try store.request(id: a.id), a)
        XCTAssertEqual(a.ticket, "INC-1")
        XCTAssertEqual(a.deadline, t0 + 3600)
        XCTAssertTrue(a.needsCustomerApproval)
        XCTAssertNil(try store.request(id: 999_999))
    }

    static func compareAndSetOnState(_ store: LockboxStore) throws {
        let a = try store.insert(new())
        var c = RequestChanges()
        c.managerApprover = UserName("bob")
        c.managerComment = "fine"
        let moved = try XCTUnwrap(store.transition(id: a.id, from: .pendingManager, to: .pendingCustomer, changes: c,
                                                   onlyInSession: nil))
        XCTAssertEqual(moved.state, .pendingCustomer)
        XCTAssertEqual(moved.managerApprover, UserName("bob"))
        XCTAssertEqual(moved.managerComment, "fine")
        XCTAssertEqual(moved.deadline, t0 + 3600, "unset changes leave fields alone")
        XCTAssertNil(try store.transition(id: a.id, from: .pendingManager, to: .pendingCustomer, changes: c,
                                          onlyInSession: nil), "a stale 'from' state changes nothing")
        XCTAssertEqual(try store.request(id: a.id), moved)
        XCTAssertNil(try store.transition(id: 424_242, from: .pendingManager, to: .denied, changes: c, onlyInSession: nil))
    }

    static func secretIsSetOnceAndOnlyWhenApproved(_ store: LockboxStore) throws {
        let a = try store.insert(new())
        XCTAssertFalse(try store.setSecret(id: a.id, salt: [1], hash: [2], issuedAt: t0), "not approved yet")
        _ = try store.transition(id: a.id, from: .pendingManager, to: .approved, changes: RequestChanges(), onlyInSession: nil)
        XCTAssertTrue(try store.setSecret(id: a.id, salt: [1, 2], hash: [3, 4], issuedAt: t0))
        XCTAssertFalse(try store.setSecret(id: a.id, salt: [9], hash: [9], issuedAt: t0), "a secret is set only once")
        let row = try XCTUnwrap(store.request(id: a.id))
        XCTAssertEqual(row.secretSalt, [1, 2])
        XCTAssertEqual(row.secretHash, [3, 4])
        XCTAssertEqual(row.credentialIssuedAt, t0)
    }

    /// A `beforeCommit` that throws (the audit log is down) rolls the change
    /// back: the row is as before, and the error reaches the caller.
    static func failedBeforeCommitRollsBack(_ store: LockboxStore) throws {
        XCTAssertThrowsError(try store.insert(new(), beforeCommit: { _ in throw LockboxError.auditUnavailable })) {
            XCTAssertEqual($0 as? LockboxError, .auditUnavailable)
        }
        XCTAssertEqual(try store.requests(RequestQuery()).count, 0, "no half-filed request")

        let a = try store.insert(new())
        var c = RequestChanges()
        c.managerApprover = UserName("bob")
        var seen: LockboxRequest?
        XCTAssertThrowsError(try store.transition(id: a.id, from: .pendingManager, to: .approved, changes: c,
                                                  onlyInSession: nil, beforeCommit: { seen = $0; throw LockboxError.auditUnavailable }))
        XCTAssertEqual(seen?.state, .approved, "the closure sees the row as the change left it")
        XCTAssertEqual(try store.request(id: a.id), a, "and the change is gone")

        _ = try store.transition(id: a.id, from: .pendingManager, to: .approved, changes: c, onlyInSession: nil)
        XCTAssertThrowsError(try store.setSecret(id: a.id, salt: [1], hash: [2], issuedAt: t0,
                                                 beforeCommit: { throw LockboxError.auditUnavailable }))
        XCTAssertNil(try store.request(id: a.id)?.secretHash)
        XCTAssertTrue(try store.setSecret(id: a.id, salt: [1], hash: [2], issuedAt: t0), "still settable once")
    }

    static func activeGrantsAreBoundToTheSessionAndExpire(_ store: LockboxStore) throws {
        let s1 = SessionID(rawValue: "s1"), s2 = SessionID(rawValue: "s2")
        let a = try store.insert(new())
        _ = try store.transition(id: a.id, from: .pendingManager, to: .approved, changes: RequestChanges(), onlyInSession: nil)
        var c = RequestChanges()
        c.session = s1
        c.activatedAt = t0
        c.expiresAt = t0 + 600
        c.deadline = t0 + 600
        _ = try store.transition(id: a.id, from: .approved, to: .active, changes: c, onlyInSession: nil)
        XCTAssertEqual(try store.activeGrants(session: s1, now: t0 + 599),
                       [ActiveGrant(requestID: a.id, role: "MailboxAdmin", scope: "contoso", expiresAt: t0 + 600)])
        XCTAssertEqual(try store.activeGrants(session: s1, now: t0 + 600), [], "not at the expiry instant")
        XCTAssertEqual(try store.activeGrants(session: s2, now: t0), [])
        XCTAssertNil(try store.transition(id: a.id, from: .active, to: .cancelled, changes: RequestChanges(),
                                          onlyInSession: s2), "another session cannot end it")
        var end = RequestChanges()
        end.clearDeadline = true
        end.endReason = "exit"
        let ended = try XCTUnwrap(store.transition(id: a.id, from: .active, to: .cancelled, changes: end, onlyInSession: s1))
        XCTAssertNil(ended.deadline)
        XCTAssertEqual(ended.endReason, "exit")
        XCTAssertEqual(try store.activeGrants(session: s1, now: t0), [])
    }

    static func dueAndQueries(_ store: LockboxStore) throws {
        let a = try store.insert(new(ttl: 10))
        let b = try store.insert(new(ttl: 20))
        let c = try store.insert(new(requester: UserName("dave")!, ttl: 5))
        var end = RequestChanges()
        end.clearDeadline = true
        _ = try store.transition(id: c.id, from: .pendingManager, to: .denied, changes: end, onlyInSession: nil)
        XCTAssertEqual(try store.due(now: t0 + 10, limit: 10).map(\.id), [a.id], "terminal rows are never due")
        XCTAssertEqual(try store.due(now: t0 + 20, limit: 10).map(\.id), [a.id, b.id])
        XCTAssertEqual(try store.due(now: t0 + 20, limit: 1).map(\.id), [a.id])
        XCTAssertEqual(try store.requests(RequestQuery(requester: alice)).map(\.id), [b.id, a.id])
        XCTAssertEqual(try store.requests(RequestQuery(states: [.denied])).map(\.id), [c.id])
        XCTAssertEqual(try store.requests(RequestQuery(states: [])).count, 0)
        XCTAssertEqual(try store.requests(RequestQuery(limit: 2)).map(\.id), [c.id, b.id])
    }

    /// The sweeper's next wake-up: the earliest deadline of a live request,
    /// whichever kind of deadline it is; terminal rows never count.
    static func earliestDeadlineOfLiveRequests(_ store: LockboxStore) throws {
        XCTAssertNil(try store.earliestDeadline(), "no requests, no deadline")
        let a = try store.insert(new(ttl: 10))
        let b = try store.insert(new(ttl: 20))
        XCTAssertEqual(try store.earliestDeadline(), t0 + 10)
        var end = RequestChanges()
        end.clearDeadline = true
        _ = try store.transition(id: a.id, from: .pendingManager, to: .denied, changes: end, onlyInSession: nil)
        XCTAssertEqual(try store.earliestDeadline(), t0 + 20, "a denied request has no deadline left")
        var approve = RequestChanges()
        approve.deadline = t0 + 15
        _ = try store.transition(id: b.id, from: .pendingManager, to: .approved, changes: approve, onlyInSession: nil)
        XCTAssertEqual(try store.earliestDeadline(), t0 + 15, "the redeem window replaces the pending TTL")
        var redeem = RequestChanges()
        redeem.deadline = t0 + 600
        redeem.session = SessionID(rawValue: "s1")
        _ = try store.transition(id: b.id, from: .approved, to: .active, changes: redeem, onlyInSession: nil)
        let c = try store.insert(new(ttl: 700))
        XCTAssertEqual(try store.earliestDeadline(), t0 + 600, "a grant's expiry counts")
        _ = try store.transition(id: b.id, from: .active, to: .expired, changes: end, onlyInSession: nil)
        XCTAssertEqual(try store.earliestDeadline(), c.deadline)
        _ = try store.transition(id: c.id, from: .pendingManager, to: .cancelled, changes: end, onlyInSession: nil)
        XCTAssertNil(try store.earliestDeadline(), "only terminal rows left")
    }

    /// Many threads race the same compare-and-set: exactly one wins.
    static func concurrentTransitionsHaveOneWinner(_ store: LockboxStore, threads: Int = 16) throws {
        for round in 0..<5 {
            let a = try store.insert(new())
            let winners = Counter()
            DispatchQueue.concurrentPerform(iterations: threads) { i in
                var c = RequestChanges()
                c.session = SessionID(rawValue: "s\(i)")
                if (try? store.transition(id: a.id, from: .pendingManager, to: .active, changes: c,
                                          onlyInSession: nil)) ?? nil != nil {
                    winners.increment()
                }
            }
            XCTAssertEqual(winners.value, 1, "round \(round)")
        }
    }

    /// Two stores on the same data (two processes' connections, two nodes)
    /// race the same transition: exactly one wins.
    static func twoStoresHaveOneWinner(_ one: LockboxStore, _ two: LockboxStore) throws {
        for round in 0..<5 {
            let a = try one.insert(new())
            let winners = Counter()
            DispatchQueue.concurrentPerform(iterations: 8) { i in
                let s = i % 2 == 0 ? one : two
                if (try? s.transition(id: a.id, from: .pendingManager, to: .denied, changes: RequestChanges(),
                                      onlyInSession: nil)) ?? nil != nil {
                    winners.increment()
                }
            }
            XCTAssertEqual(winners.value, 1, "round \(round)")
        }
    }
}

final class Counter: Sendable {
    private let count = Mutex(0)
    func increment() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}

final class InMemoryStoreComplianceTests: XCTestCase {
    func store() -> LockboxStore { InMemoryLockboxStore() }
    func testInsertAndRead() throws { try StoreCompliance.insertAndRead(store()) }
    func testCompareAndSetOnState() throws { try StoreCompliance.compareAndSetOnState(store()) }
    func testSecretIsSetOnce() throws { try StoreCompliance.secretIsSetOnceAndOnlyWhenApproved(store()) }
    func testActiveGrants() throws { try StoreCompliance.activeGrantsAreBoundToTheSessionAndExpire(store()) }
    func testDueAndQueries() throws { try StoreCompliance.dueAndQueries(store()) }
    func testEarliestDeadline() throws { try StoreCompliance.earliestDeadlineOfLiveRequests(store()) }
    func testConcurrentTransitions() throws { try StoreCompliance.concurrentTransitionsHaveOneWinner(store()) }
    func testFailedBeforeCommitRollsBack() throws { try StoreCompliance.failedBeforeCommitRollsBack(store()) }
}

final class SQLiteStoreComplianceTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "gatehouse-lockbox-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: directory) }

    func store(_ name: String = "lockbox.sqlite") throws -> LockboxStore { try SQLiteLockboxStore(path: directory + "/" + name) }

    func testInsertAndRead() throws { try StoreCompliance.insertAndRead(store()) }
    func testCompareAndSetOnState() throws { try StoreCompliance.compareAndSetOnState(store()) }
    func testSecretIsSetOnce() throws { try StoreCompliance.secretIsSetOnceAndOnlyWhenApproved(store()) }
    func testActiveGrants() throws { try StoreCompliance.activeGrantsAreBoundToTheSessionAndExpire(store()) }
    func testDueAndQueries() throws { try StoreCompliance.dueAndQueries(store()) }
    func testEarliestDeadline() throws { try StoreCompliance.earliestDeadlineOfLiveRequests(store()) }
    func testConcurrentTransitions() throws { try StoreCompliance.concurrentTransitionsHaveOneWinner(store()) }
    func testFailedBeforeCommitRollsBack() throws { try StoreCompliance.failedBeforeCommitRollsBack(store()) }

    /// Survives a restart: a reopened file has the same rows, and migrations
    /// are not re-run.
    func testReopenKeepsRowsAndMigratesOnce() throws {
        let first = try store()
        let a = try first.insert(StoreCompliance.new())
        let second = try store()
        XCTAssertEqual(try second.request(id: a.id), a)
        XCTAssertEqual(try second.insert(StoreCompliance.new()).id, a.id + 1)
    }

    /// Two independent connections pools on one file (as two gateway
    /// processes would have) race the same transition: one winner.
    func testTwoStoresOnOneFileHaveOneWinner() throws {
        try StoreCompliance.twoStoresHaveOneWinner(try store(), try store())
    }

    /// Real separate processes (as two gateway nodes on one file would be)
    /// race the same compare-and-set at the same instant: exactly one wins.
    func testSeparateProcessesRaceForOneRequest() throws {
        try StoreCompliance.separateProcessesRace(database: directory + "/shared.sqlite", startDelay: 0.5)
    }

    /// The whole Lockbox on SQLite: many sessions race to redeem one secret.
    func testConcurrentRedemptionsOfOneSecretHaveOneWinner() throws {
        let h = try Harness(store: try store())
        let (id, secret) = try h.withSecret()
        let winners = Counter()
        DispatchQueue.concurrentPerform(iterations: 12) { i in
            if (try? h.lockbox.redeem(id: id, secret: Array(secret.utf8), by: World.alice,
                                      session: SessionID(rawValue: "race-\(i)"))) != nil {
                winners.increment()
            }
        }
        XCTAssertEqual(winners.value, 1)
        XCTAssertEqual(h.audit.events(of: .elevationStart).count, 1)
        XCTAssertEqual(h.audit.events(of: .elevationFailed).count, 11)
    }

    /// Many approvers press approve at once: one approval is recorded.
    func testConcurrentApprovalsHaveOneWinner() throws {
        let h = try Harness(store: try store())
        let r = try h.submit("fabrikam")
        let winners = Counter()
        DispatchQueue.concurrentPerform(iterations: 12) { _ in
            if (try? h.lockbox.approve(id: r.id, by: World.bob)) != nil { winners.increment() }
        }
        XCTAssertEqual(winners.value, 1)
        XCTAssertEqual(try h.store.request(id: r.id)?.state, .approved)
        XCTAssertEqual(h.audit.events(of: .lockboxApproved).count, 1)
    }

    /// The workflow tests' main path, on the real store.
    func testFullWorkflowOnSQLite() throws {
        let h = try Harness(store: try store())
        let (id, secret) = try h.withSecret()
        let session = SessionID(rawValue: "sql")
        _ = try h.lockbox.redeem(id: id, secret: Array(secret.utf8), by: World.alice, session: session)
        XCTAssertEqual(h.lockbox.claim(user: World.alice, session: session, now: h.clock.now()).grants.last?.scope, "contoso")
        h.clock.advance(by: 3600)
        XCTAssertEqual(h.lockbox.sweep().map(\.state), [.expired])
    }
}
