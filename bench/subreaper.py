#!/usr/bin/env python3
"""Runs a server as the child of a PR_SET_CHILD_SUBREAPER parent.

Every process the server leaves behind (a double-forked session, a backend
whose parent exited first) is re-parented here and reaped here, so its CPU
time lands in this process's cutime/cstime and the bench's /proc walk counts
it. SIGTERM and SIGINT are passed on to the server; the wrapper exits with
the server's status once nothing is left to reap.

    python3 bench/subreaper.py COMMAND [ARG]...
"""
import ctypes
import os
import resource
import signal
import sys

PR_SET_CHILD_SUBREAPER = 36


def main():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit(f"subreaper: prctl failed: {os.strerror(ctypes.get_errno())}")
    # Thousands of held sessions need thousands of descriptors.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    child = os.fork()
    if child == 0:
        try:
            os.execvp(sys.argv[1], sys.argv[1:])
        finally:
            os._exit(127)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _f: os.kill(child, s))
    status = 0
    while True:
        try:
            pid, st = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == child:
            status = os.waitstatus_to_exitcode(st)
    sys.exit(status if status >= 0 else 128 - status)


if __name__ == "__main__":
    main()
