#ifdef __linux__
#define _GNU_SOURCE
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "CSandbox.h"

int gh_prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5) {
    return prctl(option, arg2, arg3, arg4, arg5);
}

long gh_seccomp_set_mode_filter(unsigned int flags, const struct sock_filter *instructions, unsigned short count) {
    struct sock_fprog program = { .len = count, .filter = (struct sock_filter *)instructions };
    return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &program);
}

int gh_setresuid(uid_t ruid, uid_t euid, uid_t suid) { return setresuid(ruid, euid, suid); }
int gh_setresgid(gid_t rgid, gid_t egid, gid_t sgid) { return setresgid(rgid, egid, sgid); }
int gh_getresuid(uid_t *ruid, uid_t *euid, uid_t *suid) { return getresuid(ruid, euid, suid); }
int gh_getresgid(gid_t *rgid, gid_t *egid, gid_t *sgid) { return getresgid(rgid, egid, sgid); }

int gh_capset_clear(void) {
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof data);
    return (int)syscall(SYS_capset, &header, data);
}

int gh_capget(uint64_t *effective, uint64_t *permitted, uint64_t *inheritable) {
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capget, &header, data) != 0) return -1;
    *effective = (uint64_t)data[1].effective << 32 | data[0].effective;
    *permitted = (uint64_t)data[1].permitted << 32 | data[0].permitted;
    *inheritable = (uint64_t)data[1].inheritable << 32 | data[0].inheritable;
    return 0;
}
#endif
