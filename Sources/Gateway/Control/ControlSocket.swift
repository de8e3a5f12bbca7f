import Foundation
import GatehouseCore

/// The operator's channel into the running daemon: a Unix domain socket,
/// `<stateDirectory>/control.sock`, mode 0600 in a 0700 directory, and the
/// peer's uid checked with `SO_PEERCRED` (the daemon's own uid or root).
///
/// Protocol (ControlProtocol.swift): the client sends one `ControlRequest`
/// as a JSON line of at most `ControlWire.maximumRequestBytes`, the daemon
/// answers one `ControlResponse` line and closes. Whatever arrives instead
/// is answered with `.refused`.
///
/// A socket rather than a file plus a signal: the answer (not found, done)
/// comes back to the operator synchronously, and no state file can go stale.
public final class ControlSocket: Sendable {
    /// Carries out one valid request for the peer `operatorUID`.
    public typealias Handler = @Sendable (_ request: ControlRequest, _ operatorUID: uid_t) -> ControlResponse

    public static func path(stateDirectory: String) -> String { stateDirectory + "/control.sock" }

    private let path: String
    private let fd: Int32
    private let handler: Handler

    /// The daemon's socket, answering with `GatewayControl`.
    public convenience init(context: GatewayContext) throws {
        let control = GatewayControl(context: context)
        try self.init(path: Self.path(stateDirectory: context.configuration.stateDirectory),
                      handler: { control.respond(to: $0, operatorUID: $1) })
    }

    /// Binds and listens on `path` (replacing a stale socket there).
    init(path: String, handler: @escaping Handler) throws {
        self.path = path
        self.handler = handler
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ControlError("socket: \(String(cString: strerror(errno)))") }
        var addr = try Self.address(path)
        let old = umask(0o177)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Foundation.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(old)
        guard rc == 0, chmod(path, 0o600) == 0, listen(fd, 16) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw ControlError("\(path): \(message)")
        }
        self.fd = fd
    }

    /// Serves requests on a dedicated thread until `remove()`.
    public func start() {
        let thread = Thread { [self] in serve() }
        thread.name = "gatehouse-control"
        thread.start()
    }

    /// Stops serving (`shutdown` wakes the thread blocked in `accept`, which
    /// then closes the socket) and removes the socket file.
    public func remove() {
        shutdown(fd, Int32(SHUT_RDWR))
        unlink(path)
    }

    private func serve() {
        defer { close(fd) }
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            handle(client)
            close(client)
        }
    }

    private func handle(_ client: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        _ = setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var cred = PeerCredentials()
        var len = socklen_t(MemoryLayout<PeerCredentials>.size)
        let response: ControlResponse
        if getsockopt(client, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || (cred.uid != geteuid() && cred.uid != 0) {
            response = .refused(reason: .permissionDenied, message: "permission denied")
        } else {
            switch Self.readRequestLine(client).flatMap(ControlWire.request(from:)) {
            case .success(let request): response = handler(request, cred.uid)
            case .failure(let refusal): response = refusal.response
            }
        }
        reply(client, response)
    }

    /// Reads up to the first newline, refusing a line longer than
    /// `ControlWire.maximumRequestBytes` or a peer that sends nothing in time.
    /// End of stream also ends the line.
    static func readRequestLine(_ client: Int32) -> Result<[UInt8], ControlWire.RefusedRequest> {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let n = read(client, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return .failure(.init(.malformed, "no complete request line: \(String(cString: strerror(errno)))")) }
            if n == 0 || byte == 0x0a { return .success(line) }
            guard line.count < ControlWire.maximumRequestBytes else {
                return .failure(.init(.tooLong, "request longer than \(ControlWire.maximumRequestBytes) bytes"))
            }
            line.append(byte)
        }
    }

    private func reply(_ client: Int32, _ response: ControlResponse) {
        // Every ControlResponse encodes; the fallback only keeps the answer a
        // refusal should that ever change.
        let bytes = (try? ControlWire.line(response))
            ?? Array("{\"refused\":{\"reason\":\"malformed\",\"message\":\"unencodable answer\"}}\n".utf8)
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = send(client, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                offset += n
            }
        }
    }

    static func address(_ path: String) throws -> sockaddr_un {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard bytes.count < capacity else { throw ControlError("socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
            raw[bytes.count] = 0
        }
        return addr
    }

    /// Sends one request to the daemon of `stateDirectory`; returns its answer.
    public static func request(stateDirectory: String, _ request: ControlRequest) throws -> ControlResponse {
        let path = Self.path(stateDirectory: stateDirectory)
        let answer = try exchange(path: path, try ControlWire.line(request))
        do {
            return try ControlWire.response(from: answer)
        } catch {
            throw ControlError("unreadable answer from the daemon at \(path)")
        }
    }

    /// Connects to `path`, sends `bytes` and returns everything the daemon
    /// writes back before it closes (at most 16 MiB).
    static func exchange(path: String, _ bytes: [UInt8]) throws -> [UInt8] {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ControlError("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var addr = try address(path)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            throw ControlError("cannot reach the daemon at \(path): \(String(cString: strerror(errno))) (is gatehoused running with this state directory?)")
        }
        // A refusal of an oversized request arrives while the rest is still
        // unsent: a failed send is not an error as long as an answer follows
        // (MSG_NOSIGNAL: EPIPE, not a SIGPIPE that kills the CLI).
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            offset += n
        }
        // The request is complete: the daemon sees end of stream rather than
        // waiting out its timeout for a newline that is not coming.
        shutdown(fd, Int32(SHUT_WR))
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while answer.count < 16 << 20 {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            answer += buffer[0..<n]
        }
        return answer
    }
}

/// Linux `struct ucred` (SO_PEERCRED), which Glibc only declares under _GNU_SOURCE.
private struct PeerCredentials {
    var pid: Int32 = 0
    var uid: uid_t = 0
    var gid: gid_t = 0
}

/// A control-socket failure, with a message an operator can act on.
public struct ControlError: Error, CustomStringConvertible {
    public let description: String
    init(_ message: String) { description = message }
}
