#if os(Linux)
import CSandbox
import Glibc

/// What the unprivileged network side (libssh, channels, the interpreter)
/// may ask of the kernel once it is confined.
///
/// Derived by measurement, 2026-12-04, on the single-process daemon before
/// the split (debug build, Debian 12, glibc 2.36, Swift 6.3), with
/// `.venv/bin/python scripts/measure-syscalls.py`, which runs the e2e
/// suite's daemon as
///
///     exec strace -D -ff -qq -o "$dir/t" .build/debug/gatehoused "$@"
///
/// (one trace file per thread; `-D` keeps the daemon's pid, so the tests'
/// SIGHUP and SIGTERM reach it) through: key + TOTP login, a wrong code, the
/// PAM prompt, every test of test_commands.py (exec, output, status,
/// denials) and test_channels.py (refused requests), a recorded shell
/// session and an exec session (test_transcripts.py), the full Lockbox path
/// and a revocation (test_lockbox.py), an operator kill mid-command
/// (test_session_limits.py), the window-change flood (test_hostile.py),
/// SIGHUP reload and SIGTERM (test_hardening.py), and a shell typing tab
/// completion, Ctrl-C (on a line and during a command), Ctrl-U and window
/// changes. Trace files of spawned backends (an execve of anything but
/// gatehoused) are dropped; the union of the daemon's own threads was
/// kept, then:
///
/// - removed, because only the monitor does them after the split: `execve`,
///   `kill`, `wait4`, `waitid`, `pidfd_open` (spawning, signalling and
///   reaping backends as their run-as accounts); `chmod`, `fchmod`,
///   `fchown`, `umask`, `mkdir`, `rename`, `unlink`, `unlinkat`, `flock`,
///   `ftruncate`, `pwrite64`, `fstatfs` (the audit log, the Lockbox SQLite
///   database, the host and signing keys, creating transcripts, the control
///   socket); `socket`, `bind`, `listen` (port 22 arrives by socket
///   activation or from the monitor). PAM's own calls were file reads
///   (`openat`, `read`), which the list keeps: its files are kept from the
///   network side by their owner and mode, not by the filter;
/// - removed, because only start-up made them, before `Sandbox.enter`:
///   `arch_prctl`, `set_tid_address`, `ioctl` (`TCGETS` on stdout);
/// - narrowed by argument: `prctl` to `PR_SET_NAME`/`PR_GET_NAME` (thread
///   names; `PR_SET_DUMPABLE` 1 would undo the sandbox's 0), `clone` to
///   glibc's thread-creation flags (no fork, no vfork, no namespaces),
///   `prlimit64` to the calling process (pid 0); `clone3`, whose flags sit
///   in memory a filter cannot read, fails with `ENOSYS` and glibc falls
///   back to `clone`;
/// - added, unmeasured: `clock_gettime`, `gettimeofday` (the vDSO falls back
///   to the system call on a clock source it cannot read), `recvmsg`,
///   `sendmsg` (descriptors passed over the monitor's socketpair),
///   `mremap` (realloc of large blocks), `sched_yield`, `readv`, `writev`.
///
/// The script prints what was measured and not listed, and the reverse
/// (`clone` shows there: glibc only reaches it after `clone3`'s ENOSYS).
///
/// Remeasured on the network process alone after the split (2026-12-06,
/// same script, which now keeps only that process's threads and only the
/// calls after its `seccomp` call): 50 distinct calls, every one listed
/// (`socket` among them: the `EACCES` of `failing`, NSS probing nscd). Listed
/// and not reached by that selection: `accept4`, `clock_gettime`,
/// `clock_nanosleep` (the accept loop's back-off after a failed accept),
/// `fdatasync`, `getcwd`, `getegid`, `getsockname`, `getsockopt`,
/// `gettimeofday`, `lseek`, `mremap`, `pread64`, `prlimit64`, `readv`,
/// `restart_syscall`, `sched_getaffinity`, `sched_yield`, `sigaltstack`,
/// `uname`, `writev`. They stay: each is harmless to a confined process, and
/// a call missing from the list kills every session of the node at once, on
/// whatever rare path first makes it.
public enum NetworkSideSyscalls {
    /// Allowed with any arguments.
    public static let allowed: [Syscall] = [
        // memory
        .brk, .mmap, .munmap, .mprotect, .madvise, .mremap,
        // threads, locks, time
        .futex, .set_robust_list, .rseq, .gettid, .getpid, .exit, .exit_group, .sched_yield,
        .sched_getaffinity, .restart_syscall, .clock_nanosleep, .clock_gettime, .gettimeofday, .setpriority,
        // signals
        .rt_sigaction, .rt_sigprocmask, .rt_sigreturn, .sigaltstack, .tgkill, .signalfd4,
        // descriptors and event loops
        .read, .readv, .write, .writev, .pread64, .close, .fcntl, .lseek, .pipe2, .eventfd2, .poll,
        .epoll_create1, .epoll_ctl, .epoll_wait, .timerfd_create, .timerfd_settime, .fsync, .fdatasync,
        // the connections
        .accept, .accept4, .recvfrom, .sendto, .recvmsg, .sendmsg, .shutdown, .getsockopt, .setsockopt,
        .getsockname, .getpeername,
        // reading what the account may read
        .openat, .newfstatat, .getdents64, .readlink, .access, .getcwd, .uname, .getrandom,
        .geteuid, .getegid,
        // Added with the split (2026-12-06): a reload puts the policy
        // descriptors the monitor sends in the places the configuration
        // reads (/proc/self/fd/7 and 8).
        .dup2,
    ]

    /// Allowed only with one of these first arguments.
    public static let restricted: [Syscall: [UInt64]] = [
        .prctl: [UInt64(PR_SET_NAME), UInt64(PR_GET_NAME)],
        // glibc 2.36 pthread_create: CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND |
        // CLONE_THREAD | CLONE_SYSVSEM | CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID.
        .clone: [0x3d_0f00],
        .prlimit64: [0],
    ]

    /// Not run: the caller sees this errno.
    public static let failing: [Syscall: Int32] = [
        .clone3: ENOSYS,
        // Added with the split: a reload's account lookups (a policy's
        // runAs) go through glibc's NSS, which first tries nscd's and
        // systemd-userdb's Unix sockets; refused, it reads /etc/passwd. The
        // network side never needs a socket of its own.
        .socket: EACCES,
    ]

    /// The filter `Sandbox.enter` installs in the network process.
    public static func filter() throws(SandboxError) -> SeccompFilter {
        try SeccompFilter(allowing: allowed, restricting: restricted, failing: failing)
    }
}
#endif
