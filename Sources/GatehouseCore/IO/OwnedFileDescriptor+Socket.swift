#if canImport(Glibc)
import Glibc

/// Unix-domain stream sockets, for the daemon's control socket and the CLI
/// that talks to it. Linux only: `accept4`, `SOCK_CLOEXEC` and
/// `MSG_NOSIGNAL` are what keep a spawned backend from inheriting a socket
/// and a vanished peer from killing the process with `SIGPIPE`.
extension OwnedFileDescriptor {
    /// `socket(2)` of `domain` and `type` (`SOCK_STREAM`), with `SOCK_CLOEXEC`.
    public init(socketDomain domain: Int32, type: Int32) throws(Errno) {
        let fd = try Self.retryingOnInterrupt { socket(domain, type | Int32(SOCK_CLOEXEC.rawValue), 0) }
        self.init(adopting: fd)
    }

    /// `bind(2)` to the Unix-domain address `path`; a path that does not fit
    /// `sun_path` throws `ENAMETOOLONG`.
    public func bind(unixPath path: String) throws(Errno) {
        _ = try Self.withUnixAddress(path) { address, length throws(Errno) in
            try Self.retryingOnInterrupt { Glibc.bind(rawValue, address, length) }
        }
    }

    /// `listen(2)` with room for `backlog` connections not yet accepted.
    public func listen(backlog: Int32) throws(Errno) {
        _ = try Self.retryingOnInterrupt { Glibc.listen(rawValue, backlog) }
    }

    /// `accept4(2)` with `SOCK_CLOEXEC`, repeated on `EINTR`: the next
    /// connection, owned by the caller. `ECONNABORTED` (a peer gone before it
    /// was accepted) and `EMFILE` are thrown for the caller to judge.
    public func accept() throws(Errno) -> OwnedFileDescriptor {
        let fd = try Self.retryingOnInterrupt { systemAccept4(rawValue, nil, nil, Int32(SOCK_CLOEXEC.rawValue)) }
        return OwnedFileDescriptor(adopting: fd)
    }

    /// `connect(2)` to the Unix-domain address `path`. Not repeated on
    /// `EINTR`: the kernel goes on connecting, and a second call would fail
    /// with `EALREADY`, so the interruption is thrown as it is.
    public func connect(unixPath path: String) throws(Errno) {
        let rc = try Self.withUnixAddress(path) { address, length in Glibc.connect(rawValue, address, length) }
        if rc != 0 { throw Errno.current }
    }

    /// `send(2)` with `MSG_NOSIGNAL` until every byte of `bytes` is sent: a
    /// peer that has closed is `EPIPE` thrown, not a `SIGPIPE` that ends
    /// the process; `EINTR` repeats, as in `writeAll`.
    public func sendAll(_ bytes: UnsafeRawBufferPointer) throws(Errno) {
        var done = 0
        while done < bytes.count {
            done += try Self.retryingOnInterrupt {
                send(rawValue, bytes.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL))
            }
        }
    }

    /// `shutdown(2)` of the directions `how` (`SHUT_WR`, `SHUT_RDWR`) while
    /// the descriptor stays open: the peer sees end of stream, and a thread
    /// blocked in `accept` on a listening socket wakes up with `EINVAL`.
    public func shutdown(_ how: Int32) throws(Errno) {
        _ = try Self.retryingOnInterrupt { Glibc.shutdown(rawValue, how) }
    }

    /// Calls `body` with `path` as a `sockaddr_un`.
    private static func withUnixAddress(
        _ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) throws(Errno) -> Int32
    ) throws(Errno) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        // Room for the terminating NUL; a NUL inside would cut the path short.
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path), !bytes.contains(0) else {
            throw Errno(rawValue: bytes.contains(0) ? EINVAL : ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        var failure: Errno?
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
                do throws(Errno) {
                    return try body(pointer, socklen_t(MemoryLayout<sockaddr_un>.size))
                } catch {
                    failure = error
                    return -1
                }
            }
        }
        if let failure { throw failure }
        return rc
    }
}

/// `accept4(2)`, which Swift's Glibc module does not import (it sits behind
/// `_GNU_SOURCE`), found with `dlsym`; glibc has had it since 2.10.
private let systemAccept4 = unsafeBitCast(
    dlsym(dlopen(nil, RTLD_NOW), "accept4")!,
    to: (@convention(c) (Int32, UnsafeMutablePointer<sockaddr>?, UnsafeMutablePointer<socklen_t>?, Int32) -> Int32).self)
#endif
