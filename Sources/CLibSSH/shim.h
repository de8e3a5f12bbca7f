// Shims for the parts of libssh 0.10 that Swift cannot call directly:
// function-like macros and deprecated accessors. Everything else is imported
// from the real headers unchanged. Keep this file to `static inline` helpers.
#ifndef GATEHOUSE_CLIBSSH_SHIM_H
#define GATEHOUSE_CLIBSSH_SHIM_H

#include <libssh/libssh.h>
#include <libssh/server.h>
#include <libssh/callbacks.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/// `ssh_callbacks_init` is a macro that stores `sizeof(*p)` into `p->size`;
/// libssh checks that size before calling any callback.
static inline void gh_server_callbacks_init(struct ssh_server_callbacks_struct *cb) {
    ssh_callbacks_init(cb);
}

static inline void gh_channel_callbacks_init(struct ssh_channel_callbacks_struct *cb) {
    ssh_callbacks_init(cb);
}

#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
/// `ssh_message_auth_pubkey` is marked deprecated in 0.10 (in favour of the
/// callback API), but keyboard-interactive has no callback there, so the
/// message loop and therefore this accessor are still needed.
static inline ssh_key gh_message_auth_pubkey(ssh_message msg) {
    return ssh_message_auth_pubkey(msg);
}

/// See `gh_message_auth_pubkey`.
static inline int gh_message_auth_publickey_state(ssh_message msg) {
    return (int)ssh_message_auth_publickey_state(msg);
}
#pragma clang diagnostic pop

/// `accept4(fd, NULL, NULL, SOCK_CLOEXEC)`: the Glibc module leaves
/// `accept4` out (it needs _GNU_SOURCE); libssh's own accept sets no
/// close-on-exec. Returns the socket, or -1 with errno set.
static inline int gh_accept_cloexec(int fd) {
    return (int)syscall(SYS_accept4, fd, NULL, NULL, SOCK_CLOEXEC);
}

/// libssh does not set TCP_NODELAY on accepted sockets; without it every
/// login waits on delayed ACKs (about 90 ms instead of 6 ms on loopback).
static inline int gh_set_tcp_nodelay(int fd) {
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

#endif
