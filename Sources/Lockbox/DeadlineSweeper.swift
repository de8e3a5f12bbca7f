import Foundation

extension Lockbox {
    /// Records each lapse (pending TTL, redeem window, grant expiry) when it
    /// happens, even with no session open, and sleeps in between: until the
    /// earliest deadline the store holds, or until a change here sets an
    /// earlier one (a new request, an approval, a redemption). Nothing wakes
    /// it on an interval. Runs on the caller's thread until `stopSweeping()`.
    ///
    /// Changes made through this Lockbox wake it; on a store shared by
    /// several nodes, the others' changes arrive through `deadlinesChanged()`
    /// (PostgreSQL's notifications). The CLI only reads the store.
    public func runSweeper() {
        var retry: TimeInterval = 0
        while true {
            let now = clock.now()
            var settled = sweep(at: now).settled
            var next: Date?
            do {
                next = try store.earliestDeadline()
            } catch {
                logger?.error("Lockbox store unreadable; the sweeper retries: \(error)")
                settled = false
            }
            if settled {
                retry = 0
            } else {
                // A failed expiry is still due, so waiting for its deadline
                // would not wait at all. Nothing announces that the audit log
                // or the store works again: retry after a bounded, growing
                // pause (1 s to 60 s). A change here still wakes it sooner.
                retry = min(max(retry * 2, 1), 60)
                next = now + retry
            }
            // The store's times are the Lockbox clock's; the wait is on the system's.
            guard sweeperWake.wait(until: next.map { Date() + $0.timeIntervalSince(clock.now()) }) else { return }
        }
    }

    /// A deadline may have moved elsewhere: another node changed the shared
    /// store (its notification), so the sweeper looks again now.
    public func deadlinesChanged() {
        sweeperWake.signal()
    }

    /// Ends `runSweeper()` (at its next wake-up, which this causes) and any
    /// later call of it: the daemon is shutting down and the audit log is
    /// about to close.
    public func stopSweeping() {
        sweeperWake.stop()
    }
}

/// The sweeper's sleep: a deadline, a wake-up, or the end.
// unchecked: `pending` and `stopped` are read and written only with `condition`
// locked; Mutex cannot be waited on, so an NSCondition is both lock and condition.
final class SweeperWake: @unchecked Sendable {
    private let condition = NSCondition()
    /// A deadline moved since the sweeper last woke: it must look again.
    private var pending = false
    private var stopped = false

    /// A change set a deadline. Safe from any thread; never blocks on the sweeper's work.
    func signal() {
        condition.lock()
        pending = true
        condition.signal()
        condition.unlock()
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    /// Sleeps until `deadline` (nil: none), a `signal()` since the last
    /// return, or `stop()`. A signal that came while the caller was sweeping
    /// is not lost: it ends the next wait at once. False once stopped.
    func wait(until deadline: Date?) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !pending && !stopped {
            if let deadline {
                // `wait(until:)` is `pthread_cond_timedwait` on the system clock, as the deadlines are.
                if !condition.wait(until: deadline) { break }
            } else {
                condition.wait()
            }
        }
        pending = false
        return !stopped
    }
}
