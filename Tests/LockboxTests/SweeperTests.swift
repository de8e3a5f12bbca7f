import Foundation
import GatehouseCore
import Lockbox
import Synchronization
import TestSupport
import XCTest

/// `Lockbox.runSweeper()`: it sleeps until the earliest deadline or a change,
/// never on an interval, and records each lapse with no session involved.
/// The waits below are bounds against a hang, not measurements: each event
/// they wait for comes at once or (the real-clock test) at a one-second TTL.
final class SweeperTests: XCTestCase {
    /// Hands the test each expiry the Lockbox announces after committing it.
    private final class ExpiryListener: LockboxNotifier {
        let expired = Mutex<[AuditEvent]>([])
        let announced = DispatchSemaphore(value: 0)

        func notify(_ event: AuditEvent) {
            guard event.kind == .lockboxExpired else { return }
            expired.withLock { $0.append(event) }
            announced.signal()
        }
    }

    /// Counts the sweeper's store reads, to tell a sleeping sweeper from a spinning one.
    private final class CountingStore: LockboxStore {
        let inner = InMemoryLockboxStore()
        let dueReads = Mutex(0)

        func insert(_ request: NewRequest, beforeCommit: (LockboxRequest) throws -> Void) throws -> LockboxRequest {
            try inner.insert(request, beforeCommit: beforeCommit)
        }
        func request(id: Int64) throws -> LockboxRequest? { try inner.request(id: id) }
        func requests(_ query: RequestQuery) throws -> [LockboxRequest] { try inner.requests(query) }
        func transition(id: Int64, from: RequestState, to: RequestState, changes: RequestChanges,
                        onlyInSession session: SessionID?,
                        beforeCommit: (LockboxRequest) throws -> Void) throws -> LockboxRequest? {
            try inner.transition(id: id, from: from, to: to, changes: changes, onlyInSession: session,
                                 beforeCommit: beforeCommit)
        }
        func setSecret(id: Int64, salt: [UInt8], hash: [UInt8], issuedAt: Date,
                       beforeCommit: () throws -> Void) throws -> Bool {
            try inner.setSecret(id: id, salt: salt, hash: hash, issuedAt: issuedAt, beforeCommit: beforeCommit)
        }
        func activeGrants(session: SessionID, now: Date) throws -> [ActiveGrant] {
            try inner.activeGrants(session: session, now: now)
        }
        func due(now: Date, limit: Int) throws -> [LockboxRequest] {
            dueReads.withLock { $0 += 1 }
            return try inner.due(now: now, limit: limit)
        }
        func earliestDeadline() throws -> Date? { try inner.earliestDeadline() }
        func countsByState() throws -> [RequestState: Int] { try inner.countsByState() }
    }

    private func lockbox(store: LockboxStore = InMemoryLockboxStore(), clock: Clock, audit: AuditSink = RecordingAuditSink(),
                         pendingTTL: String = "1h", listener: ExpiryListener) throws -> Lockbox {
        let yaml = World.lockboxYAML.replacingOccurrences(of: "pendingTTL: 1h", with: "pendingTTL: \(pendingTTL)")
        let policy = try LockboxPolicy.load(text: yaml, file: "lockbox.yaml", roles: World.roles(of: World.snapshot()))
        return Lockbox(directory: try World.directory(), policy: policy, store: store,
                       audit: audit, clock: clock, notifier: listener)
    }

    private func submit(_ lockbox: Lockbox) throws -> LockboxRequest {
        try lockbox.submit(requester: World.alice, role: "MailboxAdmin", scope: "contoso", durationSeconds: 600,
                           reason: "quota", ticket: "INC-1")
    }

    /// Runs the sweeper on its own thread; the semaphore says it returned.
    private func startSweeper(_ lockbox: Lockbox) -> DispatchSemaphore {
        let returned = DispatchSemaphore(value: 0)
        let thread = Thread {
            lockbox.runSweeper()
            returned.signal()
        }
        thread.start()
        return returned
    }

    /// With a manual clock the sweeper's wait for the first request's
    /// deadline is an hour long; moving the clock past it wakes nobody. A
    /// new request (a change that sets a deadline) wakes the sweeper, which
    /// then records the lapse that happened meanwhile.
    func testAChangeWakesTheSweeperWhichRecordsWhatLapsedMeanwhile() throws {
        let clock = ManualClock(), listener = ExpiryListener()
        let lockbox = try lockbox(clock: clock, listener: listener)
        let returned = startSweeper(lockbox)
        defer {
            lockbox.stopSweeping()
            XCTAssertEqual(returned.wait(timeout: .now() + 10), .success, "stopSweeping ends the sweeper")
        }
        let first = try submit(lockbox)
        clock.advance(by: 3600)
        let second = try submit(lockbox)
        XCTAssertEqual(listener.announced.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(listener.expired.withLock { $0.map { $0.fields["requestID"] } }, [String(first.id)])
        XCTAssertEqual(try lockbox.store.request(id: first.id)?.state, .expired)
        XCTAssertEqual(try lockbox.store.request(id: second.id)?.state, .pendingManager)
        XCTAssertEqual(try lockbox.store.earliestDeadline(), second.deadline)
    }

    /// On the system clock, with nothing else happening: a one-second TTL
    /// is recorded as expired by the sweeper alone, and not before it lapsed.
    func testThePendingTTLIsRecordedAtItsDeadlineWithNoOneLooking() throws {
        let listener = ExpiryListener()
        let lockbox = try lockbox(clock: SystemClock(), pendingTTL: "1s", listener: listener)
        let returned = startSweeper(lockbox)
        defer {
            lockbox.stopSweeping()
            XCTAssertEqual(returned.wait(timeout: .now() + 10), .success)
        }
        let request = try submit(lockbox)
        XCTAssertEqual(listener.announced.wait(timeout: .now() + 10), .success, "the expiry was recorded")
        let event = try XCTUnwrap(listener.expired.withLock { $0.first })
        XCTAssertEqual(event.fields["requestID"], String(request.id))
        XCTAssertEqual(event.fields["reason"], "not approved within the pending TTL")
        XCTAssertGreaterThanOrEqual(event.time, try XCTUnwrap(request.deadline))
    }

    /// An expiry the audit log refuses stays due. The sweeper must not take
    /// that past deadline as "wake now" over and over: it backs off (1 s
    /// first), so in the window below it reads the store twice, not
    /// thousands of times; once the log works again the expiry is recorded.
    func testAFailingExpiryDoesNotSpinTheSweeper() throws {
        let clock = ManualClock(), listener = ExpiryListener(), audit = RecordingAuditSink()
        let store = CountingStore()
        let lockbox = try lockbox(store: store, clock: clock, audit: audit, listener: listener)
        let request = try submit(lockbox)
        clock.advance(by: 3600)
        audit.setFailing(true)
        let returned = startSweeper(lockbox)
        defer {
            lockbox.stopSweeping()
            XCTAssertEqual(returned.wait(timeout: .now() + 10), .success)
        }
        usleep(300_000)
        // Two looks: the first, and the one the submit's wake-up (still pending) asks for.
        XCTAssertLessThanOrEqual(store.dueReads.withLock { $0 }, 2, "the sweeper retried a failed expiry at once")
        XCTAssertEqual(try store.request(id: request.id)?.state, .pendingManager, "nothing changes unrecorded")
        audit.setFailing(false)
        XCTAssertEqual(listener.announced.wait(timeout: .now() + 10), .success, "the retry records it")
        XCTAssertEqual(try store.request(id: request.id)?.state, .expired)
    }

    /// `stopSweeping()` before the sweeper runs still ends it (shutdown can
    /// come first).
    func testStoppingFirstEndsTheSweeperAtOnce() throws {
        let lockbox = try lockbox(clock: ManualClock(), listener: ExpiryListener())
        lockbox.stopSweeping()
        let returned = startSweeper(lockbox)
        XCTAssertEqual(returned.wait(timeout: .now() + 10), .success)
    }
}
