#if os(Linux)
import Glibc
import GatehouseCore

/// Why confinement could not be set up. Every case is fatal for the network
/// side: a process that was meant to be confined and is not must not go on
/// to parse a single packet.
public enum SandboxError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The filter has no system call table for this machine.
    case unsupportedArchitecture(String)
    /// The account database has no such account.
    case unknownAccount(String)
    /// The target is uid or gid 0: dropping to it would drop nothing.
    case privilegedAccount(String)
    /// Threads besides the caller exist; the per-thread parts of the drop
    /// (capabilities, bounding set, keep-caps) would miss them.
    case otherThreads(count: Int)
    /// A system call of the set-up failed.
    case systemCall(String, Errno)
    /// A check after the drop found a privilege still held.
    case privilegeRemains(String)
    /// With `SECCOMP_FILTER_FLAG_TSYNC`, the thread that could not take the filter.
    case threadNotSynchronised(Int)
    /// The filter would exceed the kernel's `BPF_MAXINSNS`.
    case filterTooLong(instructions: Int)
    /// A filter rule that cannot be expressed (an errno out of range, an
    /// argument value wider than 32 bits, too many values for one call).
    case invalidRule(String)
    /// A systemd socket-activation variable is malformed or inconsistent.
    case activation(String)

    public var description: String {
        switch self {
        case .unsupportedArchitecture(let arch):
            "no seccomp system call table for \(arch) (only x86_64): refusing to build a filter"
        case .unknownAccount(let name): "no account named \(name)"
        case .privilegedAccount(let name): "account \(name) has uid or gid 0: it is no drop"
        case .otherThreads(let count):
            "\(count) threads exist: drop privileges before starting any thread (capabilities are per thread)"
        case .systemCall(let call, let error): "\(call): \(error)"
        case .privilegeRemains(let what): "privilege still held after the drop: \(what)"
        case .threadNotSynchronised(let tid): "thread \(tid) could not take the seccomp filter (TSYNC)"
        case .filterTooLong(let count): "seccomp filter of \(count) instructions exceeds BPF_MAXINSNS"
        case .invalidRule(let problem): "seccomp rule: \(problem)"
        case .activation(let problem): "socket activation: \(problem)"
        }
    }
}
#endif
