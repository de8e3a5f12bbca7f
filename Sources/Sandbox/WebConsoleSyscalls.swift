#if os(Linux)
import CSandbox
import Glibc

/// What the console process (`gatehouse-web`: SwiftNIO, Hummingbird, TLS)
/// may ask of the kernel once it is confined. Like the network side, it
/// parses what strangers send, so it gets the same kind of filter: these
/// calls and nothing else, and the process is killed on any other (the
/// monitor starts it again, as after any death).
///
/// Measured 2026-12-07 on the debug build (Debian 12, glibc 2.36, Swift 6.3,
/// swift-nio 2.x, Hummingbird 2) with
/// `.venv/bin/python scripts/measure-syscalls.py --web`, which runs the
/// console's e2e tests (test_console_browser.py with Chromium,
/// test_activity_api.py with schemathesis, test_console_hostile.py,
/// test_console_process.py, HTTPS included) with `gatehouse-web` under
/// `strace -ff` and keeps the calls its threads made after
/// `PR_SET_NO_NEW_PRIVS`: 46 distinct calls, every one listed here. What
/// they are for:
/// - binding the listener after the drop: `socket`, `bind`, `listen`,
///   `setsockopt`, and glibc's `getaddrinfo` for the configured host, which
///   asks the kernel's routing table over a netlink socket;
/// - glibc's own tries that fail harmlessly: the nscd socket (NSS) and
///   `/dev/log` (syslog), both `connect`s to Unix sockets that do not exist;
/// - Foundation and Dispatch reading the time zone, ICU data and the
///   cgroup CPU quota: `openat`, `newfstatat`, `readlink`, `statfs`, `lseek`;
/// - `setpriority` (Dispatch's quality-of-service threads; raising the
///   priority fails with EACCES, as it should).
///
/// Listed and not measured, as for the network side because a missing call
/// kills the process on whatever rare path first makes it: `brk`, `fstat`,
/// `mremap`, `sched_yield`, `sched_getaffinity`, `restart_syscall`,
/// `clock_nanosleep`, `clock_gettime`, `gettimeofday`, `rt_sigreturn`,
/// `sigaltstack`, `tgkill`, `getpid`, `readv`, `pread64`, `fcntl`, `pipe2`,
/// `poll`, `epoll_pwait`, `accept`, `recvfrom`, `getsockopt`, `getdents64`,
/// `access`, `getcwd`, `uname`, `geteuid`, `getegid`, `getuid`, `getgid`.
///
/// Not here, so fatal: `execve` and every other way to start a program,
/// `ptrace`, `kill` of another process, `mount`, `setuid` and the other
/// credential calls, `unlink`, `rename`, `mkdir`, `chmod`, writing to files
/// it opens by path (it has no writable path anyway: its account owns none).
public enum WebConsoleSyscalls {
    /// Allowed with any arguments.
    public static let allowed: [Syscall] = [
        // memory
        .brk, .mmap, .munmap, .mprotect, .madvise, .mremap,
        // threads, locks, time
        .futex, .set_robust_list, .rseq, .gettid, .getpid, .exit, .exit_group, .sched_yield,
        .sched_getaffinity, .restart_syscall, .clock_nanosleep, .clock_gettime, .gettimeofday, .setpriority,
        // signals
        .rt_sigaction, .rt_sigprocmask, .rt_sigreturn, .rt_sigsuspend, .sigaltstack, .tgkill, .signalfd4,
        // descriptors and event loops
        .read, .readv, .write, .writev, .pread64, .close, .fcntl, .lseek, .pipe2, .eventfd2, .poll,
        .epoll_create, .epoll_create1, .epoll_ctl, .epoll_wait, .epoll_pwait, .timerfd_create, .timerfd_settime,
        // the listener, its connections, the monitor's channel
        .bind, .listen, .connect, .accept, .accept4, .recvfrom, .sendto, .recvmsg, .sendmsg, .shutdown,
        .getsockopt, .setsockopt, .getsockname, .getpeername,
        // reading what the account may read
        .openat, .newfstatat, .fstat, .statfs, .readlink, .getdents64, .access, .getcwd, .uname, .getrandom,
        .getuid, .geteuid, .getgid, .getegid,
    ]

    /// Allowed only with one of these first arguments.
    public static let restricted: [Syscall: [UInt64]] = [
        .prctl: [UInt64(PR_SET_NAME), UInt64(PR_GET_NAME)],
        // glibc 2.36 pthread_create's flags, as for the network side.
        .clone: [0x3d_0f00],
        // The listener (IPv4 or IPv6), getaddrinfo's netlink query, and
        // glibc's Unix-socket tries (nscd, syslog); no raw or packet sockets.
        .socket: [UInt64(AF_INET), UInt64(AF_INET6), UInt64(AF_UNIX), UInt64(AF_NETLINK)],
    ]

    /// Not run: the caller sees this errno (glibc then uses `clone`).
    public static let failing: [Syscall: Int32] = [.clone3: ENOSYS]

    /// The filter `gatehouse-web` enters before it starts a thread.
    public static func filter() throws(SandboxError) -> SeccompFilter {
        try SeccompFilter(allowing: allowed, restricting: restricted, failing: failing)
    }
}
#endif
