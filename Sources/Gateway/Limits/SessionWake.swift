#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one descriptor that reaches a session's thread from outside: it sits
/// in the same poll() as the session's SSH socket, so a kill, a shutdown or
/// a revocation wakes the session at once instead of at its next look.
///
/// An eventfd, non-blocking and close-on-exec: `signal` never blocks (a
/// counter at its limit already holds a wake-up), one `read` empties it, and
/// a spawn on another thread cannot inherit it.
public final class SessionWake: Sendable {
    /// Readable while a wake-up is pending; the session's poll() watches it.
    public let fd: Int32

    public init?() {
        guard let eventfd = Self.eventfd else { return nil }
        let fd = eventfd(0, Self.closeOnExec | Self.nonBlocking)
        guard fd >= 0 else { return nil }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Makes `fd` readable (adds 1 to the eventfd's counter); safe from any thread.
    public func signal() {
        var one: UInt64 = 1
        _ = write(fd, &one, 8)
    }

    /// Empties it (one `read` resets the counter), so the next poll()
    /// sleeps until the next `signal`.
    public func drain() {
        var count: UInt64 = 0
        _ = read(fd, &count, 8)
    }

    private typealias EventFD = @convention(c) (UInt32, Int32) -> Int32
    /// `eventfd(2)`; Swift's Glibc module does not export it, hence the lookup.
    private static let eventfd: EventFD? = dlsym(dlopen(nil, RTLD_NOW), "eventfd")
        .map { unsafeBitCast($0, to: EventFD.self) }
    /// EFD_CLOEXEC and EFD_NONBLOCK, which Linux defines as O_CLOEXEC and O_NONBLOCK.
    private static let closeOnExec = Int32(O_CLOEXEC)
    private static let nonBlocking = Int32(O_NONBLOCK)
}
