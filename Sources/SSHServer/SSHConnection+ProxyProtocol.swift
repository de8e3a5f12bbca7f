import CLibSSH
import Foundation

extension SSHConnection {
    /// Reads the PROXY protocol v2 header a balancer sends before anything
    /// else, on the connection's own thread and before `handshake()` (libssh
    /// has read nothing yet, and reads nothing until key exchange), so other
    /// connections never wait on it. Reads exactly the header's bytes and
    /// not one more: the fixed 16 bytes, then the length they declare;
    /// libssh gets the stream from the client's SSH banner on. Each wait is a
    /// poll() bounded by one deadline `seconds` from now.
    ///
    /// For `.proxied` the connection takes the client's address as its
    /// `peerAddress` (the balancer's goes to `balancerAddress`); for
    /// `.local` (the balancer's own connection, a health check) both stay.
    /// Throws for anything that is not a complete, valid header in time;
    /// the caller closes the connection.
    public func readProxyHeader(within seconds: Int) throws(ProxyHeaderError) -> ProxyHeader {
        guard let s = session else { throw .io("connection closed") }
        let fd = ssh_get_fd(s)
        guard fd >= 0 else { throw .io("no socket") }
        let deadline = Date().addingTimeInterval(TimeInterval(seconds))
        var header = [UInt8]()
        header.reserveCapacity(ProxyProtocolV2.fixedLength)
        var wanted = ProxyProtocolV2.fixedLength
        var buffer = [UInt8](repeating: 0, count: ProxyProtocolV2.fixedLength + ProxyProtocolV2.maxPayloadLength)
        while header.count < wanted {
            guard try Self.waitReadable(fd, until: deadline) else { throw .timeout(seconds: seconds) }
            let asked = wanted - header.count
            let got = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, asked) }
            if got < 0 {
                let error = errno
                if error == EINTR || error == EAGAIN || error == EWOULDBLOCK { continue }
                throw .io(String(cString: strerror(error)))
            }
            if got == 0 { throw .truncated(have: header.count) }
            header += buffer.prefix(got)
            if header.count <= ProxyProtocolV2.fixedLength, let total = try ProxyProtocolV2.headerLength(prefix: header) {
                wanted = total
            }
        }
        let parsed = try ProxyProtocolV2.parse(header)
        if case .proxied(let source, _) = parsed {
            balancerAddress = peerAddress
            peerAddress = source.description
            logger[metadataKey: "peer"] = "\(peerAddress)"
            logger[metadataKey: "balancer"] = "\(balancerAddress ?? "")"
        }
        return parsed
    }

    /// After a LOCAL header: whether the peer closed the connection without
    /// sending anything more within `seconds` (a balancer's health check,
    /// which connects, sends its header and goes). Peeks, so a byte that did
    /// arrive stays for libssh. false: it sent something, or the time ran
    /// out (then key exchange decides, under its own grace time).
    public func peerClosedQuietly(within seconds: Int) -> Bool {
        guard let s = session else { return true }
        let fd = ssh_get_fd(s)
        guard fd >= 0 else { return true }
        let deadline = Date().addingTimeInterval(TimeInterval(seconds))
        while true {
            guard (try? Self.waitReadable(fd, until: deadline)) ?? true else { return false }
            var byte: UInt8 = 0
            let got = recv(fd, &byte, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT))
            if got == 0 { return true }
            if got > 0 { return false }
            let error = errno
            if error == EINTR || error == EAGAIN || error == EWOULDBLOCK { continue }
            return true   // reset: gone
        }
    }

    /// One poll() for input (or the peer's end) until `deadline`; false when
    /// the deadline passed first.
    private static func waitReadable(_ fd: Int32, until deadline: Date) throws(ProxyHeaderError) -> Bool {
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { return false }
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ms = Int32(min((left * 1000).rounded(.up), Double(Int32.max)))
            let rc = poll(&entry, 1, ms)
            if rc > 0 { return true }
            if rc == 0 { continue }   // the deadline is checked above
            let error = errno
            if error == EINTR { continue }
            throw .io(String(cString: strerror(error)))
        }
    }
}
