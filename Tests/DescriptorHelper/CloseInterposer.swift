#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// This executable's own `close(2)`. Calls from this program's code (the
/// GatehouseCore and Transcript objects linked into it) bind to this
/// definition rather than libc's, so a scenario can watch the closes it
/// causes. Unarmed it only forwards to libc.
///
/// Armed, the first successful close plays "another session opens a file
/// at that moment": the number just freed is given to a new descriptor at
/// once. A second close of the same number by the code under test then
/// shuts that descriptor, which `reusedDescriptorIsOpen()` reports.
@_cdecl("close")
func interposedClose(_ fd: Int32) -> Int32 {
    let rc = libcClose(fd)
    if rc == 0, CloseWatch.armed.compareExchange(expected: true, desired: false, ordering: .sequentiallyConsistent).exchanged {
        let other = open("/dev/null", O_RDONLY | O_CLOEXEC)
        if other != fd {
            dup2(other, fd)
            _ = libcClose(other)
        }
        CloseWatch.reused.store(fd, ordering: .sequentiallyConsistent)
    }
    return rc
}

enum CloseWatch {
    static let armed = Atomic<Bool>(false)
    static let reused = Atomic<Int32>(-1)

    /// Watches the next close.
    static func arm() {
        reused.store(-1, ordering: .sequentiallyConsistent)
        armed.store(true, ordering: .sequentiallyConsistent)
    }

    /// `reused N open`, `reused N closed`, or `reused none` when nothing was
    /// closed since `arm()`; then releases the stand-in descriptor.
    static func report() -> String {
        armed.store(false, ordering: .sequentiallyConsistent)
        let fd = reused.load(ordering: .sequentiallyConsistent)
        guard fd >= 0 else { return "reused none" }
        let open = fcntl(fd, F_GETFD) != -1
        if open { _ = libcClose(fd) }
        return "reused \(fd) \(open ? "open" : "closed")"
    }
}

/// libc's `close`, found past this executable's own definition.
private func libcClose(_ fd: Int32) -> Int32 {
    typealias CloseFunction = @convention(c) (Int32) -> Int32
    let next = UnsafeMutableRawPointer(bitPattern: -1)   // RTLD_NEXT
    return unsafeBitCast(dlsym(next, "close"), to: CloseFunction.self)(fd)
}
