#if os(Linux)
import Glibc
import GatehouseCore

/// systemd's socket-activation protocol (`sd_listen_fds_with_names(3)`):
/// the service manager binds port 22 and passes the listening sockets from
/// descriptor 3 on, so no process of the daemon ever needs to be root to bind.
public enum SocketActivation {
    /// `SD_LISTEN_FDS_START`: the first passed descriptor.
    public static let firstDescriptor: Int32 = 3

    /// One passed listening socket. Copyable, because an array of
    /// `OwnedFileDescriptor` cannot be; `adopt()` makes its one owner.
    public struct Listener: Equatable, Sendable {
        /// The socket unit's `FileDescriptorName=`, `"unknown"` when systemd passed none.
        public let name: String
        /// The descriptor number; pass it to `adopt()` once and use that.
        public let descriptor: Int32

        /// Takes ownership: the one `OwnedFileDescriptor` of this socket.
        public func adopt() -> OwnedFileDescriptor { OwnedFileDescriptor(adopting: descriptor) }
    }

    /// The sockets systemd passed to this process, read from the process's
    /// environment, which then loses `LISTEN_PID`, `LISTEN_FDS` and
    /// `LISTEN_FDNAMES` so that no child mistakes them for its own. Empty
    /// when the process was not socket-activated. Call it at start-up,
    /// before other threads: `unsetenv` is not thread-safe.
    public static func listeners() throws(SandboxError) -> [Listener] {
        var environment: [String: String] = [:]
        for key in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            if let value = getenv(key) { environment[key] = String(cString: value) }
        }
        defer {
            for key in environment.keys { unsetenv(key) }
        }
        return try listeners(environment: environment, processID: getpid())
    }

    /// The protocol on a given environment: `LISTEN_PID` must be
    /// `processID` (otherwise the variables were meant for a parent and
    /// nothing is ours), `LISTEN_FDS` counts descriptors from 3, and
    /// `LISTEN_FDNAMES`, when present, names each one, colon-separated.
    /// Each descriptor must be an open socket; it is marked close-on-exec,
    /// so a spawned backend never inherits the listener.
    public static func listeners(environment: [String: String], processID: pid_t) throws(SandboxError) -> [Listener] {
        guard let pidText = environment["LISTEN_PID"] else { return [] }
        guard let pid = pid_t(pidText), pid > 0 else { throw .activation("LISTEN_PID is not a process id: \(pidText)") }
        guard pid == processID else { return [] }
        guard let countText = environment["LISTEN_FDS"] else { throw .activation("LISTEN_PID is set without LISTEN_FDS") }
        // At most what fits above descriptor 3 in an Int32 (systemd itself
        // rejects counts past INT_MAX - SD_LISTEN_FDS_START).
        guard let count = Int32(countText), count >= 0, count <= Int32.max - firstDescriptor else {
            throw .activation("LISTEN_FDS is not a descriptor count: \(countText)")
        }
        let names: [String]
        if let nameText = environment["LISTEN_FDNAMES"] {
            names = nameText.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard names.count == Int(count) else {
                throw .activation("LISTEN_FDNAMES names \(names.count) descriptors, LISTEN_FDS says \(count)")
            }
        } else {
            names = Array(repeating: "unknown", count: Int(count))
        }
        var listeners: [Listener] = []
        for (offset, name) in names.enumerated() {
            let fd = firstDescriptor + Int32(offset)
            var status = stat()
            guard fstat(fd, &status) == 0 else {
                throw .systemCall("fstat of passed descriptor \(fd)", Errno(rawValue: errno))
            }
            guard status.st_mode & S_IFMT == S_IFSOCK else { throw .activation("passed descriptor \(fd) is not a socket") }
            let flags = fcntl(fd, F_GETFD)
            guard flags >= 0, fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == 0 else {
                throw .systemCall("fcntl(F_SETFD, FD_CLOEXEC) of passed descriptor \(fd)", Errno(rawValue: errno))
            }
            listeners.append(Listener(name: name, descriptor: fd))
        }
        return listeners
    }
}
#endif
