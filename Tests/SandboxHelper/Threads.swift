import CSandbox
import Glibc

// Thread bodies for pthread_create. Defined here, not as closures in
// main.swift's top-level code, which would make them main-actor isolated:
// the runtime's isolation check on a foreign thread would abort the helper.

/// Waits for ever: a second thread that exists during the drop.
func sleepingThread(_ argument: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    pause()
    return nil
}

/// Waits for a byte on the pipe whose read end `argument` carries, then
/// reports its own confinement and makes a forbidden call.
func waitingThread(_ argument: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    let readEnd = Int32(Int(bitPattern: argument))
    var byte: UInt8 = 0
    _ = read(readEnd, &byte, 1)
    statusLines("/proc/thread-self/status", ["NoNewPrivs", "Seccomp"]).map { "thread \($0)" }.forEach(say)
    forbiddenCall("mount")
    return nil
}

/// Names itself (prctl PR_SET_NAME, which the filter allows) and ends.
func namingThread(_ argument: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    let rc = "confined".withCString { gh_prctl(PR_SET_NAME, UInt(bitPattern: $0), 0, 0, 0) }
    if rc != 0 { fail("prctl(PR_SET_NAME): \(errno)") }
    return nil
}
