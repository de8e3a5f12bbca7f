import Foundation
import GatehouseCore

extension GatewayContext {
    /// Records Lockbox expiries (pending TTL, redeem window, grant expiry)
    /// when they happen, even when no session is open: a thread that sleeps
    /// until the next deadline (`Lockbox.runSweeper`). Sessions sweep too;
    /// the store's compare-and-set records each expiry once.
    /// `beginShutdown()` stops it.
    public func startLockboxSweeper() {
        let thread = Thread { [lockbox] in
            // The kernel's name for this thread (at most 15 bytes), which
            // /proc and top show; Foundation's Thread.name never reaches it
            // on Linux.
            if let comm = try? OwnedFileDescriptor(opening: "/proc/thread-self/comm", flags: O_WRONLY | O_CLOEXEC) {
                try? comm.writeAll(Array("lockbox-sweeper".utf8))
            }
            lockbox.runSweeper()
        }
        thread.start()
    }
}
