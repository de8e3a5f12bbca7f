import Foundation
import GatehouseCore
import Lockbox
import Logging
import PostgresStore
import Synchronization
import XCTest

/// The fleet's test database: `GATEHOUSE_TEST_POSTGRES_URL` (`scripts/test-postgres start`
/// prints one; `make test` and `.ci/run` start one and export it). Unset, the
/// PostgreSQL classes skip and say why, except under `CI=true`, where a
/// missing database is a failure: CI must not pass without testing the store.
enum TestPostgres {
    static let variable = "GATEHOUSE_TEST_POSTGRES_URL"

    static func location() throws -> PostgresLocation {
        let environment = ProcessInfo.processInfo.environment
        guard let url = environment[variable], !url.isEmpty else {
            let why = "\(variable) is unset: no PostgreSQL to test against (scripts/test-postgres start prints a URL)"
            if environment["CI"] == "true" {
                XCTFail("under CI=true the PostgreSQL store must be tested: \(why)")
                throw XCTSkip("failed above")
            }
            print("skipping PostgreSQL store tests: \(why)")
            throw XCTSkip(why)
        }
        switch PostgresLocation.parse(url) {
        case .success(let location): return location
        case .failure(let error): throw XCTSkip("\(variable) is not a usable URL: \(error)")
        }
    }

    /// A fresh schema for one test case, and a way to drop it.
    static func freshSchema() throws -> (location: PostgresLocation, schema: String, drop: () -> Void) {
        let location = try location()
        let schema = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let admin = try FleetDatabase(location: location, logger: Logger(label: "test"), maxConnections: 1)
        _ = try admin.withConnection { try $0.execute("CREATE SCHEMA \(schema)") }
        return (location, schema, {
            _ = try? admin.withConnection { try $0.execute("DROP SCHEMA \(schema) CASCADE") }
            admin.shutdown()
        })
    }
}

final class PostgresStoreComplianceTests: XCTestCase {
    var location: PostgresLocation!
    var schema = ""
    var drop: (() -> Void)?
    var databases: [FleetDatabase] = []

    override func setUpWithError() throws {
        (location, schema, drop) = try TestPostgres.freshSchema()
    }

    override func tearDown() {
        for database in databases { database.shutdown() }
        databases = []
        drop?()
    }

    /// A store as one node would open it: its own connections to the shared schema.
    func store(maxConnections: Int = 4) throws -> PostgresLockboxStore {
        let database = try FleetDatabase(location: location, logger: Logger(label: "test"), schema: schema,
                                         maxConnections: maxConnections)
        databases.append(database)
        return try PostgresLockboxStore(database: database)
    }

    func testInsertAndRead() throws { try StoreCompliance.insertAndRead(store()) }
    func testCompareAndSetOnState() throws { try StoreCompliance.compareAndSetOnState(store()) }
    func testSecretIsSetOnce() throws { try StoreCompliance.secretIsSetOnceAndOnlyWhenApproved(store()) }
    func testActiveGrants() throws { try StoreCompliance.activeGrantsAreBoundToTheSessionAndExpire(store()) }
    func testDueAndQueries() throws { try StoreCompliance.dueAndQueries(store()) }
    func testEarliestDeadline() throws { try StoreCompliance.earliestDeadlineOfLiveRequests(store()) }
    func testConcurrentTransitions() throws { try StoreCompliance.concurrentTransitionsHaveOneWinner(store()) }
    func testFailedBeforeCommitRollsBack() throws { try StoreCompliance.failedBeforeCommitRollsBack(store()) }

    /// A second node opening the same database finds the schema migrated,
    /// the rows there, and applies nothing twice.
    func testReopenKeepsRowsAndMigratesOnce() throws {
        let first = try store()
        let a = try first.insert(StoreCompliance.new())
        let second = try store()
        XCTAssertEqual(try second.request(id: a.id), a)
        XCTAssertEqual(try second.insert(StoreCompliance.new()).id, a.id + 1)
        let names = try databases[0].withConnection { s in
            try s.query("SELECT name FROM schema_migrations ORDER BY name").map { try $0.decode(String.self) }
        }
        XCTAssertEqual(names, FleetSchema.migrations.map(\.name).sorted())
    }

    /// Nodes starting together race to migrate an empty database: the
    /// advisory lock lets one apply, the others find it done.
    func testNodesStartingTogetherMigrateOnce() throws {
        let databases = try (0..<4).map { _ in
            try FleetDatabase(location: location, logger: Logger(label: "test"), schema: schema, maxConnections: 1)
        }
        self.databases += databases
        let failures = Counter()
        DispatchQueue.concurrentPerform(iterations: databases.count) { i in
            do { _ = try PostgresLockboxStore(database: databases[i]) } catch { failures.increment() }
        }
        XCTAssertEqual(failures.value, 0)
        let count = try databases[0].withConnection { s in
            try s.query("SELECT COUNT(*) FROM schema_migrations").first!.decode(Int.self)
        }
        XCTAssertEqual(count, FleetSchema.migrations.count)
    }

    /// Two nodes (two connection sets) race the same transition: one winner.
    func testTwoNodesHaveOneWinner() throws {
        try StoreCompliance.twoStoresHaveOneWinner(try store(), try store())
    }

    /// Real separate processes (as nodes are) race the same compare-and-set
    /// at the same instant through the database: exactly one wins.
    func testSeparateProcessesRaceForOneRequest() throws {
        _ = try store()  // migrated
        try StoreCompliance.separateProcessesRace(database: ProcessInfo.processInfo.environment[TestPostgres.variable]!,
                                                  environment: ["GATEHOUSE_TEST_POSTGRES_SCHEMA": schema],
                                                  startDelay: 1.5)
    }

    /// The whole Lockbox on PostgreSQL: many sessions on two nodes race to
    /// redeem one secret; one wins, and the grant records its node.
    func testConcurrentRedemptionsOnTwoNodesHaveOneWinner() throws {
        let a = try Harness(store: try store(), node: "node-a")
        let b = try Harness(store: try store(), node: "node-b", clock: a.clock)
        let (id, secret) = try a.withSecret()
        let winners = Counter()
        DispatchQueue.concurrentPerform(iterations: 12) { i in
            let h = i % 2 == 0 ? a : b
            if (try? h.lockbox.redeem(id: id, secret: Array(secret.utf8), by: World.alice,
                                      session: SessionID(rawValue: "race-\(i)"))) != nil {
                winners.increment()
            }
        }
        XCTAssertEqual(winners.value, 1)
        XCTAssertEqual(a.audit.events(of: .elevationStart).count + b.audit.events(of: .elevationStart).count, 1)
        let row = try XCTUnwrap(a.store.request(id: id))
        XCTAssertEqual(row.state, .active)
        let winnerIndex = Int(row.session!.rawValue.dropFirst("race-".count))!
        XCTAssertEqual(row.node, winnerIndex % 2 == 0 ? "node-a" : "node-b")
    }

    /// Many approvers press approve at once on two nodes: one approval is recorded.
    func testConcurrentApprovalsOnTwoNodesHaveOneWinner() throws {
        let a = try Harness(store: try store(), node: "node-a")
        let b = try Harness(store: try store(), node: "node-b", clock: a.clock)
        let r = try a.submit("fabrikam")
        let winners = Counter()
        DispatchQueue.concurrentPerform(iterations: 12) { i in
            if (try? (i % 2 == 0 ? a : b).lockbox.approve(id: r.id, by: World.bob)) != nil { winners.increment() }
        }
        XCTAssertEqual(winners.value, 1)
        XCTAssertEqual(try a.store.request(id: r.id)?.state, .approved)
        XCTAssertEqual(a.audit.events(of: .lockboxApproved).count + b.audit.events(of: .lockboxApproved).count, 1)
    }

    /// Two nodes' sweepers wake at the same deadline: every lapsed request
    /// is expired exactly once, and recorded once, across both.
    func testSweepersOnTwoNodesDoNotDoubleTransition() throws {
        let a = try Harness(store: try store(), node: "node-a")
        let b = try Harness(store: try store(), node: "node-b", clock: a.clock)
        var ids: [Int64] = []
        for i in 0..<10 {
            let (id, secret) = try a.withSecret(duration: 600)
            _ = try a.lockbox.redeem(id: id, secret: Array(secret.utf8), by: World.alice, session: SessionID(rawValue: "s\(i)"))
            ids.append(id)
        }
        a.clock.advance(by: 601)
        let expired = Collected()
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            expired.add((i % 2 == 0 ? a : b).lockbox.sweep().map(\.id))
        }
        XCTAssertEqual(expired.values.sorted(), ids.sorted(), "each expired once, by one sweeper")
        XCTAssertEqual(a.audit.events(of: .elevationEnd).count + b.audit.events(of: .elevationEnd).count, 10)
        XCTAssertEqual(try a.store.requests(RequestQuery(states: [.expired])).count, 10)
    }

    /// A node's start-up sweep of orphaned grants ends only its own grants.
    func testOrphanSweepEndsOnlyThisNodesGrants() throws {
        let a = try Harness(store: try store(), node: "node-a")
        let b = try Harness(store: try store(), node: "node-b", clock: a.clock)
        let (idA, secretA) = try a.withSecret()
        _ = try a.lockbox.redeem(id: idA, secret: Array(secretA.utf8), by: World.alice, session: SessionID(rawValue: "on-a"))
        let (idB, secretB) = try b.withSecret()
        _ = try b.lockbox.redeem(id: idB, secret: Array(secretB.utf8), by: World.alice, session: SessionID(rawValue: "on-b"))
        XCTAssertEqual(try a.store.request(id: idB)?.node, "node-b")
        let ended = a.lockbox.endElevations(ofSessionsOtherThan: [], reason: "restart")
        XCTAssertEqual(ended.map(\.id), [idA])
        XCTAssertEqual(try a.store.request(id: idA)?.state, .cancelled)
        XCTAssertEqual(try a.store.request(id: idB)?.state, .active, "node B's grant survives node A's restart")
    }

    /// A database that cannot be reached: opening fails with words naming
    /// the server, never the password.
    func testUnreachableDatabaseFailsClosedWithAClearMessage() throws {
        var dead = location!
        dead.host = "127.0.0.1"
        dead.port = 1
        dead.password = "not-in-any-message"
        let database = try FleetDatabase(location: dead, logger: Logger(label: "test"), connectTimeout: 2)
        databases.append(database)
        XCTAssertThrowsError(try PostgresLockboxStore(database: database)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("cannot connect to PostgreSQL at 127.0.0.1:1"), text)
            XCTAssertFalse(text.contains("not-in-any-message"), text)
        }
    }
}

final class Collected: Sendable {
    private let items = Mutex<[Int64]>([])
    func add(_ more: [Int64]) { items.withLock { $0 += more } }
    var values: [Int64] { items.withLock { $0 } }
}

/// The fleet's lockout table: failures recorded by any node count for all,
/// old ones fall out of the window, and an unlock clears them everywhere.
final class PostgresLockoutStoreTests: XCTestCase {
    func testFailuresOfEveryNodeCountAndUnlockClearsThem() throws {
        let (location, schema, drop) = try TestPostgres.freshSchema()
        defer { drop() }
        let one = try FleetDatabase(location: location, logger: Logger(label: "test"), schema: schema)
        let two = try FleetDatabase(location: location, logger: Logger(label: "test"), schema: schema)
        defer { one.shutdown(); two.shutdown() }
        let a = PostgresLockoutStore(database: one), b = PostgresLockoutStore(database: two)
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        XCTAssertEqual(try a.recordFailure(user: "carol", at: t0, since: t0 - 600, node: "node-a"), 1)
        XCTAssertEqual(try b.recordFailure(user: "carol", at: t0 + 1, since: t0 - 599, node: "node-b"), 2)
        XCTAssertEqual(try a.recordFailure(user: "dave", at: t0 + 1, since: t0 - 599, node: "node-a"), 1)
        XCTAssertEqual(try b.failureCount(user: "carol", since: t0 - 600), 2, "node B sees node A's failure")
        XCTAssertEqual(try a.users(since: t0 - 600, atLeast: 2), ["carol"])
        // Ten minutes on, the first failure is outside the window and is forgotten.
        XCTAssertEqual(try a.recordFailure(user: "carol", at: t0 + 600, since: t0, node: "node-a"), 2)
        XCTAssertEqual(try b.clear(user: "carol", since: t0), 2)
        XCTAssertEqual(try a.failureCount(user: "carol", since: t0 - 10_000), 0)
        XCTAssertEqual(try a.failureCount(user: "dave", since: t0 - 600), 1, "other users keep theirs")
    }
}

/// A change on one node that sets a deadline wakes the others (their
/// sweepers sleep until the earliest deadline they know of).
final class PostgresDeadlineNotificationTests: XCTestCase {
    func testAnotherNodesChangeNotifiesThisOne() throws {
        let (location, schema, drop) = try TestPostgres.freshSchema()
        defer { drop() }
        let here = try FleetDatabase(location: location, logger: Logger(label: "test"), schema: schema)
        let there = try FleetDatabase(location: location, logger: Logger(label: "test"), schema: schema)
        defer { here.shutdown(); there.shutdown() }
        let store = try PostgresLockboxStore(database: there)
        let notified = DispatchSemaphore(value: 0)
        let listener = here.listen(channel: FleetSchema.lockboxChannel) { notified.signal() }
        defer { listener.stop() }
        XCTAssertEqual(notified.wait(timeout: .now() + 10), .success, "the first call follows the LISTEN")
        let request = try store.insert(StoreCompliance.new())
        XCTAssertEqual(notified.wait(timeout: .now() + 10), .success, "an insert sets a deadline")
        var approve = RequestChanges()
        approve.deadline = StoreCompliance.t0 + 30
        _ = try store.transition(id: request.id, from: .pendingManager, to: .approved, changes: approve, onlyInSession: nil)
        XCTAssertEqual(notified.wait(timeout: .now() + 10), .success, "so does a transition")
    }
}
