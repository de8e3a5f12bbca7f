import Foundation

extension GatewayContext {
    /// Expires lapsed Lockbox requests (pending TTL, redeem window, grant
    /// expiry) once a second even when no session is open, so each expiry is
    /// recorded (and notified) when it happens, not when someone next looks.
    /// Sessions sweep too; the store's compare-and-set records each once.
    public func startLockboxSweeper() {
        let thread = Thread { [self] in
            while !isShuttingDown {
                lockbox.sweepIfDue(interval: 1)
                Thread.sleep(forTimeInterval: 1)
            }
        }
        thread.name = "gatehouse-lockbox-sweeper"
        thread.start()
    }
}
