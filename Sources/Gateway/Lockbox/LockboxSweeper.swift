import Foundation

extension GatewayContext {
    /// Records Lockbox expiries (pending TTL, redeem window, grant expiry)
    /// when they happen, even when no session is open: a thread that sleeps
    /// until the next deadline (`Lockbox.runSweeper`). Sessions sweep too;
    /// the store's compare-and-set records each expiry once.
    /// `beginShutdown()` stops it.
    public func startLockboxSweeper() {
        let thread = Thread { [lockbox] in lockbox.runSweeper() }
        thread.name = "gatehouse-lockbox-sweeper"
        thread.start()
    }
}
