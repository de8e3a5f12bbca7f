#if os(Linux)
/// The system calls the unprivileged network side may make. Provisional:
/// replaced by the measured list below.
public enum NetworkSideSyscalls {
    public static let allowed: [Syscall] = [
        .read, .write, .close, .fstat, .newfstatat, .openat, .lseek, .mmap, .munmap, .mprotect, .madvise, .brk,
        .futex, .exit, .exit_group, .getpid, .gettid, .socketpair, .clone, .clone3, .rt_sigprocmask,
        .rt_sigaction, .rt_sigreturn, .set_robust_list, .rseq, .getrandom, .pread64, .getdents64,
    ]
}
#endif
