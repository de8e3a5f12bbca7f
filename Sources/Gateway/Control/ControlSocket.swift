import Foundation
import GatehouseCore
import Synchronization

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
    /// Closed when this object goes (the serving thread keeps it alive until
    /// `serve` returns), never by `serve`: `remove()` must shut this socket
    /// whenever it is called, not a socket that has since been given its number.
    private let listener: OwnedFileDescriptor
    private let handler: Handler
    /// A descriptor on /dev/null held only to be given up when `accept`
    /// finds the process out of descriptors (the reserve-descriptor trick):
    /// closing it frees one number, which the next `accept` takes before it
    /// blocks for a client, so the operator is served even then. Opened
    /// here, while descriptors are surely free; only the serving thread
    /// takes and refills it.
    private let reserve: Mutex<OwnedFileDescriptor?>

    /// The daemon's socket, answering with `GatewayControl`: the monitor's
    /// own state, and the network side's sessions through `network`.
    public convenience init(context: GatewayContext, network: NetworkSide) throws {
        let control = GatewayControl(context: context, network: network)
        try self.init(path: Self.path(stateDirectory: context.configuration.stateDirectory),
                      handler: { control.respond(to: $0, operatorUID: $1) })
    }

    /// Binds and listens on `path` (replacing a stale socket there).
    init(path: String, handler: @escaping Handler) throws {
        self.path = path
        self.handler = handler
        reserve = Mutex(Self.openReserve())
        unlink(path)
        do throws(Errno) {
            let socket = try OwnedFileDescriptor(socketDomain: AF_UNIX, type: Int32(SOCK_STREAM.rawValue))
            let old = umask(0o177)
            defer { umask(old) }
            try socket.bind(unixPath: path)
            guard chmod(path, 0o600) == 0 else { throw Errno(rawValue: errno) }
            try socket.listen(backlog: 16)
            listener = socket
        } catch {
            throw ControlError("\(path): \(error)")
        }
    }

    /// Serves requests on a dedicated thread until `remove()`.
    public func start() {
        let thread = Thread { [self] in serve() }
        thread.name = "gatehouse-control"
        thread.start()
    }

    /// Stops serving (`shutdown` wakes the thread blocked in `accept`) and
    /// removes the socket file.
    public func remove() {
        try? listener.shutdown(Int32(SHUT_RDWR))
        unlink(path)
    }

    /// Accepts until `remove()`. Running out of descriptors (a flood of
    /// sessions) does not end the loop: the operator's channel is most
    /// needed exactly then, and the reserve descriptor serves it.
    private func serve() {
        while true {
            do throws(Errno) {
                handle(try listener.accept())
                refillReserve()
            } catch {
                switch Self.afterAcceptFailure(error) {
                case .next: continue
                case .useReserve:
                    // Linux's accept takes its descriptor number before it
                    // waits for a client, so with the table full it fails at
                    // once, client or not. The next accept gets the reserve's
                    // number and blocks on it as usual.
                    if releaseReserve() { continue }
                    // No reserve: its number went elsewhere between the last
                    // close and the refill, and nothing announces a freed
                    // descriptor. Look again after a pause (this thread only).
                    usleep(100_000)
                    refillReserve()
                case .waitForMemory:
                    // The kernel is short of memory; nothing to wait on but time.
                    usleep(100_000)
                case .stop: return
                }
            }
        }
    }

    /// What the accept loop does after `accept` fails.
    enum AcceptFailureAction: Equatable {
        /// That one connection went away before it was accepted.
        case next
        /// The process or the system is out of descriptors: give up the
        /// reserve descriptor, so the next `accept` has a number.
        case useReserve
        /// Out of memory or socket buffers: pause, off every session's path.
        case waitForMemory
        /// The socket was shut down by `remove()` (EINVAL), or worse.
        case stop
    }

    static func afterAcceptFailure(_ error: Errno) -> AcceptFailureAction {
        switch error.rawValue {
        case ECONNABORTED, EPROTO: return .next
        case EMFILE, ENFILE: return .useReserve
        case ENOBUFS, ENOMEM: return .waitForMemory
        default: return .stop
        }
    }

    private static func openReserve() -> OwnedFileDescriptor? {
        try? OwnedFileDescriptor(opening: "/dev/null", flags: O_RDONLY | O_CLOEXEC)
    }

    /// Closes the reserve; false when there was none to close.
    private func releaseReserve() -> Bool {
        reserve.withLock { held in
            guard let descriptor = held.take() else { return false }
            try? descriptor.close()
            return true
        }
    }

    /// Reopens the reserve after it was given up (the client that used its
    /// number has been closed by now).
    private func refillReserve() {
        reserve.withLock { held in
            if let descriptor = held.take() {
                held = .some(descriptor)
            } else {
                held = Self.openReserve()
            }
        }
    }

    private func handle(_ client: consuming OwnedFileDescriptor) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        _ = setsockopt(client.rawValue, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(client.rawValue, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var cred = PeerCredentials()
        var len = socklen_t(MemoryLayout<PeerCredentials>.size)
        let response: ControlResponse
        if getsockopt(client.rawValue, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || (cred.uid != geteuid() && cred.uid != 0) {
            response = .refused(reason: .permissionDenied, message: "permission denied")
        } else {
            switch Self.readRequestLine(client).flatMap(ControlWire.request(from:)) {
            case .success(let request): response = handler(request, cred.uid)
            case .failure(let refusal): response = refusal.response
            }
        }
        // Every ControlResponse encodes; the fallback only keeps the answer a
        // refusal should that ever change. A peer gone by now gets nothing.
        let bytes = (try? ControlWire.line(response))
            ?? Array("{\"refused\":{\"reason\":\"malformed\",\"message\":\"unencodable answer\"}}\n".utf8)
        bytes.withUnsafeBytes { raw in try? client.sendAll(raw) }
    }

    /// Reads up to the first newline, refusing a line longer than
    /// `ControlWire.maximumRequestBytes` or a peer that sends nothing in time.
    /// End of stream also ends the line.
    static func readRequestLine(_ client: borrowing OwnedFileDescriptor) -> Result<[UInt8], ControlWire.RefusedRequest> {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let n: Int
            do throws(Errno) {
                n = try withUnsafeMutableBytes(of: &byte) { raw throws(Errno) in try client.read(into: raw) }
            } catch {
                return .failure(.init(.malformed, "no complete request line: \(error)"))
            }
            if n == 0 || byte == 0x0a { return .success(line) }
            guard line.count < ControlWire.maximumRequestBytes else {
                return .failure(.init(.tooLong, "request longer than \(ControlWire.maximumRequestBytes) bytes"))
            }
            line.append(byte)
        }
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
        let socket = try connect(path)
        // A refusal of an oversized request arrives while the rest is still
        // unsent: a failed send (EPIPE, ECONNRESET) is not an error as long
        // as an answer follows.
        bytes.withUnsafeBytes { raw in try? socket.sendAll(raw) }
        // The request is complete: the daemon sees end of stream rather than
        // waiting out its timeout for a newline that is not coming.
        try? socket.shutdown(Int32(SHUT_WR))
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while answer.count < 16 << 20 {
            let n = (try? buffer.withUnsafeMutableBytes { try socket.read(into: $0) }) ?? 0
            if n == 0 { break }
            answer += buffer[0..<n]
        }
        return answer
    }

    /// A socket connected to the daemon at `path`.
    private static func connect(_ path: String) throws(ControlError) -> OwnedFileDescriptor {
        let socket = try unixSocket()
        do {
            try socket.connect(unixPath: path)
        } catch {
            throw ControlError("cannot reach the daemon at \(path): \(error) (is gatehoused running with this state directory?)")
        }
        return socket
    }

    private static func unixSocket() throws(ControlError) -> OwnedFileDescriptor {
        do {
            return try OwnedFileDescriptor(socketDomain: AF_UNIX, type: Int32(SOCK_STREAM.rawValue))
        } catch {
            throw ControlError("socket: \(error)")
        }
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
