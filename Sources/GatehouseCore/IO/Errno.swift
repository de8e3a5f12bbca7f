#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The `errno` of a failed system call, copied out at once because the next
/// call may overwrite it (swift-system's `Errno` is the model).
public struct Errno: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32

    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The calling thread's `errno` now.
    static var current: Errno { Errno(rawValue: errno) }

    /// `strerror(rawValue)`.
    public var description: String { String(cString: strerror(rawValue)) }

    /// `EINTR`: a signal arrived before the call did anything; the call is
    /// repeated, and only `OwnedFileDescriptor` does that.
    public static let interrupted = Errno(rawValue: EINTR)
}
