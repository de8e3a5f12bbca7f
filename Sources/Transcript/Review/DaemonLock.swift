import Foundation

/// An exclusive `flock` on `<stateDir>/gatehoused.lock`, held for the
/// daemon's life. The kernel drops it when the process dies, even by
/// `kill -9`, so reviewer tools can tell a live session from one that was
/// cut off: no end event and nobody holding the lock means cut off.
public final class DaemonLock: @unchecked Sendable {
    public static let fileName = "gatehoused.lock"
    private let fd: Int32

    private init(fd: Int32) { self.fd = fd }
    deinit { close(fd) }

    /// Takes the lock; `nil` if it cannot be had (another daemon on this
    /// state directory, or no lock file): the daemon still runs.
    public static func acquire(stateDirectory: String) -> DaemonLock? {
        let fd = open(stateDirectory + "/" + fileName, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return nil }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { close(fd); return nil }
        return DaemonLock(fd: fd)
    }

    /// Whether a daemon currently holds the lock for `stateDirectory`.
    public static func isHeld(stateDirectory: String) -> Bool {
        let fd = open(stateDirectory + "/" + fileName, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return false
        }
        return true
    }
}
