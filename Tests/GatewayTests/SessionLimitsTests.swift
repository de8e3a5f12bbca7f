import CmdletShell
import GatehouseCore
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

    func testDeadlineCancelsTheRunningBackendAndEndsTheSession() {
        let registry = SessionRegistry()
        let id = SessionID(rawValue: "s1")
        _ = registry.admit(id: id, user: alice, source: "x", now: t0, limit: 1)
        let flag = CancellationFlag()
        registry.setRunning(id, flag)
        registry.addDeadline(id, .init(at: t0 + 60, request: .init(reason: "elevation-expired",
                                                                   message: "Your elevation ended."),
                                       endsSession: false))
        registry.addDeadline(id, .init(at: t0 + 120, request: .init(reason: "lifetime", message: "Bye."),
                                       endsSession: true))
        XCTAssertTrue(registry.fireDeadlines(now: t0 + 59).isEmpty)
        XCTAssertFalse(flag.isCancelled)
        XCTAssertEqual(registry.fireDeadlines(now: t0 + 60).count, 1)
        XCTAssertTrue(flag.isCancelled)
        XCTAssertEqual(flag.reason, "Your elevation ended")
        XCTAssertNil(registry.endRequest(id), "an elevation deadline stops the backend, not the session")
        registry.fireDeadlines(now: t0 + 121)
        XCTAssertEqual(registry.endRequest(id)?.reason, "lifetime")
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
