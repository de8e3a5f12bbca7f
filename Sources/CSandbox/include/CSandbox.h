// The kernel interfaces of the network side's confinement that Swift's Glibc
// module does not give: seccomp and classic BPF (linux/seccomp.h,
// linux/filter.h), the audit architecture numbers (linux/audit.h), the
// capability syscalls (linux/capability.h) and prctl, which is variadic.
// Macros built from other macros (AUDIT_ARCH_X86_64, offsetof) are not
// imported by Swift, so each is a `static inline` function here.
#ifndef GATEHOUSE_CSANDBOX_H
#define GATEHOUSE_CSANDBOX_H
#ifdef __linux__

#include <stddef.h>
#include <stdint.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/types.h>

/// `AUDIT_ARCH_X86_64`: `seccomp_data.arch` of a 64-bit x86 system call
/// (the x32 ABI reports the same value and sets `__X32_SYSCALL_BIT` in `nr`).
static inline uint32_t gh_audit_arch_x86_64(void) { return AUDIT_ARCH_X86_64; }

/// `AUDIT_ARCH_AARCH64`.
static inline uint32_t gh_audit_arch_aarch64(void) { return AUDIT_ARCH_AARCH64; }

/// `__X32_SYSCALL_BIT`: set in `seccomp_data.nr` by x32 system calls, which
/// share x86_64's arch value but not its numbers' meaning.
static inline uint32_t gh_x32_syscall_bit(void) { return 0x40000000U; }

/// `offsetof(struct seccomp_data, nr)`.
static inline uint32_t gh_seccomp_data_nr_offset(void) { return offsetof(struct seccomp_data, nr); }

/// `offsetof(struct seccomp_data, arch)`.
static inline uint32_t gh_seccomp_data_arch_offset(void) { return offsetof(struct seccomp_data, arch); }

/// `offsetof(struct seccomp_data, args)`: six 64-bit arguments, each read
/// as two 32-bit words (low word first on a little-endian machine).
static inline uint32_t gh_seccomp_data_args_offset(void) { return offsetof(struct seccomp_data, args); }

/// `prctl(2)` with its five arguments spelled out (Swift cannot call the
/// variadic declaration). Returns -1 and sets errno on failure.
int gh_prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5);

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, &{count, instructions})`
/// through syscall(2) (glibc 2.36 has no wrapper). With
/// SECCOMP_FILTER_FLAG_TSYNC a positive result is the id of a thread that
/// could not be synchronised.
long gh_seccomp_set_mode_filter(unsigned int flags, const struct sock_filter *instructions, unsigned short count);

/// `capset(2)` of version 3 for the calling thread with every set
/// (effective, permitted, inheritable) empty.
int gh_capset_clear(void);

/// `capget(2)` of version 3 for the calling thread: the three sets, 64 bits
/// each. Returns -1 and sets errno on failure.
int gh_capget(uint64_t *effective, uint64_t *permitted, uint64_t *inheritable);

/// `setresuid(2)`, `setresgid(2)`, `getresuid(2)`, `getresgid(2)`: glibc
/// declares them only under _GNU_SOURCE, which Swift's Glibc module lacks.
/// The set calls keep glibc's setxid broadcast to every thread.
int gh_setresuid(uid_t ruid, uid_t euid, uid_t suid);
int gh_setresgid(gid_t rgid, gid_t egid, gid_t sgid);
int gh_getresuid(uid_t *ruid, uid_t *euid, uid_t *suid);
int gh_getresgid(gid_t *rgid, gid_t *egid, gid_t *sgid);

#endif /* __linux__ */
#endif
