import CmdletShell
import GatehouseCore
import TestSupport
import XCTest
@testable import Gateway

/// The pure parts of session limits and pre-auth defences; the end-to-end
/// tests (Tests/e2e/test_session_limits.py, test_hardening.py,
/// test_hostile.py) drive the same code through the real daemon.
final class SessionLimitsTests: XCTestCase {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    let alice = UserName("alice")!

    func testIssueDefaults() {
        let c = GatewayConfiguration()
        XCTAssertEqual(c.maxSessionsPerUser, 1)
        XCTAssertEqual(c.idleTimeoutSeconds, 30 * 60)
        XCTAssertEqual(c.maxSessionLifetimeSeconds, 24 * 3600)
    }

    func testDurationsAcceptSecondsAndUnits() {
        var c = GatewayConfiguration()
        XCTAssertNil(c.set("idleTimeout", to: "5m", source: "test"))
        XCTAssertEqual(c.idleTimeoutSeconds, 300)
        XCTAssertNil(c.set("idleTimeout", to: "42", source: "test"))
        XCTAssertEqual(c.idleTimeoutSeconds, 42)
        XCTAssertNotNil(c.set("idleTimeout", to: "0", source: "test"))
        XCTAssertNotNil(c.set("maxSessionLifetime", to: "-1h", source: "test"))
        XCTAssertNotNil(c.set("perSourcePenaltyExempt", to: "10.0.0.1, evil;rm", source: "test"))
        XCTAssertNil(c.set("perSourcePenaltyExempt", to: "10.0.0.1, ::1", source: "test"))
        XCTAssertEqual(c.perSourcePenaltyExempt, ["10.0.0.1", "::1"])
    }

    func testWarningOffsets() {
        XCTAssertEqual(SessionRunner.warningOffsets(for: 30 * 60), [300, 60])
        XCTAssertEqual(SessionRunner.warningOffsets(for: 24 * 3600), [300, 60])
        XCTAssertEqual(SessionRunner.warningOffsets(for: 5), [2, 1])
        XCTAssertEqual(SessionRunner.warningOffsets(for: 1), [])
    }

    func testRegistryAdmitsOnePerUserAndNamesTheExistingSession() {
        let registry = SessionRegistry()
        guard case .admitted = registry.admit(id: SessionID(rawValue: "a1"), user: alice, source: "10.0.0.1:5000",
                                              now: t0, limit: 1) else { return XCTFail() }
        guard case .refused(let existing) = registry.admit(id: SessionID(rawValue: "a2"), user: alice,
                                                           source: "10.0.0.2:6000", now: t0 + 5, limit: 1) else {
            return XCTFail("second session admitted")
        }
        XCTAssertEqual(existing.id, "a1")
        XCTAssertEqual(existing.source, "10.0.0.1:5000")
        XCTAssertEqual(existing.started, t0)
        XCTAssertEqual(registry.count, 1)
        registry.remove(SessionID(rawValue: "a1"))
        guard case .admitted = registry.admit(id: SessionID(rawValue: "a3"), user: alice, source: "x", now: t0,
                                              limit: 1) else { return XCTFail() }
    }

    /// The session loop sleeps until the earliest of its deadlines and no
    /// longer: idle warnings and disconnect, lifetime warnings and logoff,
    /// the end of a grant it holds. Each warning given drops out.
    func testNextDeadlineIsTheEarliestOfIdleLifetimeAndGrants() {
        let clock = ManualClock(t0)
        var state = SessionLimitsState(started: clock.now(), lifetimeEnd: clock.now() + 3600, lastInput: clock.now())
        // idle 600 s: warnings at 300 and 120 s before (half and a fifth); lifetime 3600 s: 300 and 60 s before.
        XCTAssertEqual(state.nextDeadline(idleTimeout: 600, lifetime: 3600, grantExpiries: []), t0 + 300)
        state.idleWarned = [300]
        XCTAssertEqual(state.nextDeadline(idleTimeout: 600, lifetime: 3600, grantExpiries: []), t0 + 480)
        XCTAssertEqual(state.nextDeadline(idleTimeout: 600, lifetime: 3600, grantExpiries: [t0 + 90, t0 + 30]), t0 + 30,
                       "the earliest grant's end")
        state.idleWarned = [300, 120]
        XCTAssertEqual(state.nextDeadline(idleTimeout: 600, lifetime: 3600, grantExpiries: []), t0 + 600,
                       "the idle disconnect")
        // Input moves the idle deadlines; then the lifetime comes first.
        clock.advance(by: 3200)
        state.lastInput = clock.now()
        state.idleWarned = []
        XCTAssertEqual(state.nextDeadline(idleTimeout: 600, lifetime: 3600, grantExpiries: []), t0 + 3300)
        state.lifetimeWarned = [300, 60]
        XCTAssertEqual(state.nextDeadline(idleTimeout: 600, lifetime: 3600, grantExpiries: []), t0 + 3500,
                       "the idle warning, before the logoff")
        state.idleWarned = [300, 120]
        XCTAssertEqual(state.nextDeadline(idleTimeout: 600, lifetime: 3600, grantExpiries: []), t0 + 3600,
                       "the logoff")
    }

    /// The poll() timeout: rounded up (never wakes before the deadline),
    /// 0 for one that passed, none (-1) when nothing is due.
    func testPollTimeoutForADeadline() {
        let clock = ManualClock(t0)
        XCTAssertEqual(SessionRunner.milliseconds(until: nil, now: clock.now()), -1)
        XCTAssertEqual(SessionRunner.milliseconds(until: t0 + 1.5, now: clock.now()), 1500)
        XCTAssertEqual(SessionRunner.milliseconds(until: t0 + 0.0001, now: clock.now()), 1)
        XCTAssertEqual(SessionRunner.milliseconds(until: t0 - 5, now: clock.now()), 0)
        XCTAssertEqual(SessionRunner.milliseconds(until: t0 + 1e9, now: clock.now()), Int(Int32.max))
    }

    /// True when `wake` would end a poll() now.
    func isReadable(_ wake: SessionWake) -> Bool {
        var entry = pollfd(fd: wake.fd, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) == 1
    }

    /// Whatever reaches a session from another thread writes its wake
    /// descriptor; a revocation stops the backend that its grant allowed, and
    /// no other.
    func testRegistryWakesTheSession() throws {
        let registry = SessionRegistry()
        let id = SessionID(rawValue: "s1")
        let wake = try XCTUnwrap(SessionWake())
        _ = registry.admit(id: id, user: alice, source: "x", now: t0, limit: 1, wake: wake)
        XCTAssertFalse(isReadable(wake))

        // A revocation of a grant other than the running command's: woken, not stopped.
        let flag = CancellationFlag()
        registry.setRunning(id, flag)
        registry.setRunningGrant(id, requestID: 7, expires: t0 + 60)
        XCTAssertEqual(registry.runningGrantExpiry(id), t0 + 60)
        registry.grantEnded(session: id, requestID: 8)
        XCTAssertTrue(isReadable(wake))
        XCTAssertFalse(flag.isCancelled)
        wake.drain()
        XCTAssertFalse(isReadable(wake), "drained")

        registry.grantEnded(session: id, requestID: 7)
        XCTAssertTrue(isReadable(wake))
        XCTAssertTrue(flag.isCancelled)
        XCTAssertNil(registry.endRequest(id), "a revocation stops the backend, not the session")
        wake.drain()
        registry.setRunning(id, nil)
        XCTAssertNil(registry.runningGrantExpiry(id), "the grant goes with the command")

        registry.wakeAll()
        XCTAssertTrue(isReadable(wake), "a reload wakes every session")
        XCTAssertNil(registry.endRequest(id))
        wake.drain()

        XCTAssertTrue(registry.requestEnd(id, .init(reason: "killed", message: "Ended by an operator.")))
        XCTAssertTrue(isReadable(wake))
        XCTAssertEqual(registry.endRequest(id)?.reason, "killed")
    }

    /// The shutdown reaches every session, including one admitted after it began.
    func testShutdownEndsSessionsAdmittedAfterIt() throws {
        let registry = SessionRegistry()
        let first = try XCTUnwrap(SessionWake())
        _ = registry.admit(id: SessionID(rawValue: "a"), user: alice, source: "x", now: t0, limit: 5, wake: first)
        registry.requestEndAll(.init(reason: "shutdown", message: "The gateway is shutting down."))
        XCTAssertTrue(isReadable(first))
        _ = registry.admit(id: SessionID(rawValue: "b"), user: alice, source: "x", now: t0, limit: 5)
        XCTAssertEqual(registry.endRequest(SessionID(rawValue: "b"))?.reason, "shutdown")
    }

    func testKillCancelsACommandStartedLater() {
        let registry = SessionRegistry()
        let id = SessionID(rawValue: "s1")
        _ = registry.admit(id: id, user: alice, source: "x", now: t0, limit: 1)
        XCTAssertTrue(registry.requestEnd(id, .init(reason: "killed", message: "Ended by an operator: test.")))
        let flag = CancellationFlag()
        registry.setRunning(id, flag)
        XCTAssertTrue(flag.isCancelled)
        XCTAssertFalse(registry.requestEnd(SessionID(rawValue: "nope"), .init(reason: "killed", message: "")))
    }

    func settings(exempt: Set<String> = []) -> PreAuthLimits.Settings {
        .init(maxUnauthenticated: 3, maxUnauthenticatedPerSource: 2, penalties: true, authFailPenalty: 5,
              noAuthPenalty: 1, penaltyMin: 15, penaltyMax: 60, exempt: exempt)
    }

    func testUnauthenticatedCapsAreGlobalAndPerSource() {
        let limits = PreAuthLimits(settings())
        XCTAssertEqual(limits.admit(source: "a", now: t0), .admit)
        XCTAssertEqual(limits.admit(source: "a", now: t0), .admit)
        XCTAssertEqual(limits.admit(source: "a", now: t0), .tooManyFromSource)
        XCTAssertEqual(limits.admit(source: "b", now: t0), .admit)
        XCTAssertEqual(limits.admit(source: "c", now: t0), .tooManyUnauthenticated)
        limits.release(source: "a", outcome: .authenticated, now: t0)
        XCTAssertEqual(limits.admit(source: "c", now: t0), .admit)
    }

    func testPenaltyStartsAtTheMinimumAndRunsOut() {
        let limits = PreAuthLimits(settings())
        for i in 0..<3 {
            XCTAssertEqual(limits.admit(source: "bad", now: t0), .admit)
            let started = limits.release(source: "bad", outcome: .authFailed, now: t0)
            XCTAssertEqual(started, i == 2, "active once 15s accumulated")
        }
        XCTAssertEqual(limits.admit(source: "bad", now: t0 + 1), .penalized(remaining: 14))
        XCTAssertEqual(limits.admit(source: "good", now: t0 + 1), .admit)
        XCTAssertEqual(limits.admit(source: "bad", now: t0 + 16), .admit)
    }

    func testExemptSourcesAreNeverPenalized() {
        let limits = PreAuthLimits(settings(exempt: ["lb"]))
        for _ in 0..<10 {
            XCTAssertEqual(limits.admit(source: "lb", now: t0), .admit)
            limits.release(source: "lb", outcome: .authFailed, now: t0)
        }
        XCTAssertEqual(limits.admit(source: "lb", now: t0), .admit)
    }

    /// Through a balancer: the balancer's connections count in the total
    /// only, until the header names the client, whose own cap and penalty
    /// then apply; a bad header penalizes the balancer's address; a health
    /// check costs nothing.
    func testConnectionsThroughABalancerAreLimitedByTheirClient() {
        let limits = PreAuthLimits(settings())
        // Two clients behind one balancer: the balancer's address is not
        // capped per source (2 here), the total (3) is.
        for _ in 0..<3 { XCTAssertEqual(limits.admitFromBalancer("lb", now: t0), .admit) }
        XCTAssertEqual(limits.admitFromBalancer("lb", now: t0), .tooManyUnauthenticated)
        XCTAssertEqual(limits.admitForwarded(source: "a", now: t0), .admit)
        XCTAssertEqual(limits.admitForwarded(source: "a", now: t0), .admit)
        XCTAssertEqual(limits.admitForwarded(source: "a", now: t0), .tooManyFromSource, "the client's own cap")
        XCTAssertEqual(limits.unauthenticatedCount, 2, "a refused forward is no longer counted")
        XCTAssertEqual(limits.admit(source: "a", now: t0), .tooManyFromSource, "direct and forwarded count together")
        limits.release(source: "a", outcome: .authenticated, now: t0)
        limits.release(source: "a", outcome: .authenticated, now: t0)
        XCTAssertEqual(limits.unauthenticatedCount, 0)
        // The client's failures penalize the client, not the balancer.
        for _ in 0..<3 {
            XCTAssertEqual(limits.admitFromBalancer("lb", now: t0), .admit)
            XCTAssertEqual(limits.admitForwarded(source: "bad", now: t0), .admit)
            limits.release(source: "bad", outcome: .authFailed, now: t0)
        }
        XCTAssertEqual(limits.admitFromBalancer("lb", now: t0 + 1), .admit)
        XCTAssertEqual(limits.admitForwarded(source: "bad", now: t0 + 1), .penalized(remaining: 14))
        XCTAssertEqual(limits.admitFromBalancer("lb", now: t0 + 1), .admit)
        XCTAssertEqual(limits.admitForwarded(source: "good", now: t0 + 1), .admit)
        limits.release(source: "good", outcome: .authenticated, now: t0 + 1)
        // Health checks: nothing.
        for _ in 0..<50 {
            XCTAssertEqual(limits.admitFromBalancer("lb", now: t0 + 2), .admit)
            XCTAssertFalse(limits.releaseFromBalancer("lb", outcome: nil, now: t0 + 2))
        }
        XCTAssertEqual(limits.unauthenticatedCount, 0)
        // Bad headers: the balancer's own address, like a failed login.
        var started = [Bool]()
        for _ in 0..<3 {
            XCTAssertEqual(limits.admitFromBalancer("lb", now: t0 + 3), .admit)
            started.append(limits.releaseFromBalancer("lb", outcome: .authFailed, now: t0 + 3))
        }
        XCTAssertEqual(started, [false, false, true])
        XCTAssertEqual(limits.admitFromBalancer("lb", now: t0 + 4), .penalized(remaining: 14))
        XCTAssertEqual(limits.unauthenticatedCount, 0)
    }

    func testHostOfPeer() {
        XCTAssertEqual(PreAuthLimits.host(of: "127.0.0.2:5555"), "127.0.0.2")
        XCTAssertEqual(PreAuthLimits.host(of: "[::1]:22"), "::1")
    }

    func testUserLockoutWindowAndUnlock() {
        let lockouts = UserLockouts(failures: 3, window: 600)
        XCTAssertFalse(lockouts.recordFailure(alice, now: t0))
        XCTAssertFalse(lockouts.recordFailure(alice, now: t0 + 1))
        XCTAssertTrue(lockouts.recordFailure(alice, now: t0 + 2))
        XCTAssertTrue(lockouts.isLocked(alice, now: t0 + 3))
        XCTAssertEqual(lockouts.lockedUsers(now: t0 + 3), [alice])
        XCTAssertFalse(lockouts.isLocked(alice, now: t0 + 601), "the window passed")
        lockouts.recordFailure(alice, now: t0 + 700)
        lockouts.recordFailure(alice, now: t0 + 701)
        lockouts.recordFailure(alice, now: t0 + 702)
        XCTAssertTrue(lockouts.unlock(alice, now: t0 + 703))
        XCTAssertFalse(lockouts.isLocked(alice, now: t0 + 703))
    }
}
