import Foundation
import GatehouseCore

/// An exclusive `flock` on `<stateDir>/gatehoused.lock`, held for the
/// daemon's life. The kernel drops it when the process dies, even by
/// `kill -9`, so reviewer tools can tell a live session from one that was
/// cut off: no end event and nobody holding the lock means cut off.
public final class DaemonLock: Sendable {
    public static let fileName = "gatehoused.lock"
    /// Closing it (when the lock is released) drops the lock.
    private let file: OwnedFileDescriptor

    private init(file: consuming OwnedFileDescriptor) { self.file = file }

    /// Takes the lock; `nil` if it cannot be had (another daemon on this
    /// state directory, or no lock file): the daemon still runs.
    public static func acquire(stateDirectory: String) -> DaemonLock? {
        guard let file = try? OwnedFileDescriptor(opening: stateDirectory + "/" + fileName,
                                                  flags: O_RDWR | O_CREAT | O_CLOEXEC, permissions: 0o600),
              flock(file.rawValue, LOCK_EX | LOCK_NB) == 0 else { return nil }
        return DaemonLock(file: file)
    }

    /// Whether a daemon currently holds the lock for `stateDirectory`.
    public static func isHeld(stateDirectory: String) -> Bool {
        guard let file = try? OwnedFileDescriptor(opening: stateDirectory + "/" + fileName,
                                                  flags: O_RDONLY | O_CLOEXEC) else { return false }
        if flock(file.rawValue, LOCK_SH | LOCK_NB) == 0 {
            flock(file.rawValue, LOCK_UN)
            return false
        }
        return true
    }
}
