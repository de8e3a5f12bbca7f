import Glibc
import GatehouseCore
import Sandbox

/// Plays systemd: a TCP listener on 127.0.0.1 and a Unix stream listener
/// moved to descriptors 3 and 4, the three variables set for this process,
/// then `SocketActivation.listeners()`.
func activation() {
    for fd: Int32 in [3, 4] where fcntl(fd, F_GETFD) != -1 {
        fail("descriptor \(fd) is already open in the helper")
    }
    let tcp = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(tcp, pointer, length) == 0 && listen(tcp, 4) == 0 && getsockname(tcp, pointer, &length) == 0
        }
    }
    guard tcp >= 0, bound else { fail("tcp listener: \(errno)") }
    let unix = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard unix >= 0 else { fail("unix socket: \(errno)") }
    // Either may have been given 3 or 4 itself: move both out of the way first.
    let tcpHigh = fcntl(tcp, F_DUPFD, 10), unixHigh = fcntl(unix, F_DUPFD, 10)
    close(tcp)
    close(unix)
    guard dup2(tcpHigh, 3) == 3, dup2(unixHigh, 4) == 4 else { fail("dup2: \(errno)") }
    close(tcpHigh)
    close(unixHigh)
    setenv("LISTEN_PID", String(getpid()), 1)
    setenv("LISTEN_FDS", "2", 1)
    setenv("LISTEN_FDNAMES", "ssh:control", 1)

    let listeners: [SocketActivation.Listener]
    do { listeners = try SocketActivation.listeners() } catch { fail("\(error)") }
    for listener in listeners {
        let cloexec = fcntl(listener.descriptor, F_GETFD) & FD_CLOEXEC != 0
        say("listener \(listener.name) \(listener.descriptor) cloexec \(cloexec)")
    }
    let left: [String] = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"].filter { getenv($0) != nil }
    say("environment left: \(left.isEmpty ? "none" : left.joined(separator: " "))")

    // The passed TCP socket is the real listener: a connection to its port is accepted on it.
    guard let first = listeners.first else { fail("no listener") }
    let owned = first.adopt()
    let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, length) == 0 }
    }
    guard connected else { fail("connect: \(errno)") }
    do {
        let accepted = try owned.accept()
        say("accepted on \(first.name): \(accepted.rawValue >= 0)")
    } catch {
        fail("accept: \(error)")
    }
    close(client)
}
