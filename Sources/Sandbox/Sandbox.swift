#if os(Linux)
import CSandbox
import Glibc
import GatehouseCore

/// The confinement the network side (and the console process, with its own
/// list) enters once it has dropped its
/// privileges (`PrivilegeDrop.drop`) and before it reads a byte from the
/// network. Irreversible: nothing in the process can leave it.
public enum Sandbox {
    /// In order:
    /// - `PR_SET_NO_NEW_PRIVS`: no execve can ever raise privileges again
    ///   (set-uid files, file capabilities), and an unprivileged process may
    ///   install a seccomp filter;
    /// - `PR_SET_DUMPABLE` 0: no process of the same uid may ptrace this one
    ///   or read its memory through `/proc`, and it leaves no core file
    ///   holding session keys;
    /// - `seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC)`: the
    ///   filter on every thread of the process at once (the kernel also sets
    ///   no-new-privs on each), or on none: a thread that cannot take it
    ///   fails the call, and so `enter`.
    public static func enter(filter: SeccompFilter) throws(SandboxError) {
        try PrivilegeDrop.prctl("PR_SET_NO_NEW_PRIVS", PR_SET_NO_NEW_PRIVS, 1)
        try PrivilegeDrop.prctl("PR_SET_DUMPABLE", PR_SET_DUMPABLE, 0)
        let rc = filter.instructions.withUnsafeBufferPointer { program in
            gh_seccomp_set_mode_filter(UInt32(SECCOMP_FILTER_FLAG_TSYNC), program.baseAddress, UInt16(program.count))
        }
        if rc > 0 { throw .threadNotSynchronised(rc) }
        if rc < 0 { throw .systemCall("seccomp(SECCOMP_SET_MODE_FILTER, TSYNC)", Errno(rawValue: errno)) }
    }
}
#endif
