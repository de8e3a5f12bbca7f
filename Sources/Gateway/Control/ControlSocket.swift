import Foundation
import GatehouseCore
import Logging

/// The operator's channel into the running daemon: a Unix domain socket,
/// `<stateDirectory>/control.sock`, mode 0600 in a 0700 directory, and the
/// peer's uid checked with `SO_PEERCRED` (the daemon's own uid or root).
///
/// Protocol: the client sends one line, the daemon answers one JSON line and
/// closes. Requests:
/// - `list`: live sessions and locked users;
/// - `kill <session-id> <reason…>`: end a session with a message to its user;
/// - `unlock <user>`: clear a per-user lockout.
///
/// A socket rather than a file plus a signal: the answer (not found, done)
/// comes back to the operator synchronously, and no state file can go stale.
public final class ControlSocket: @unchecked Sendable {
    public static func path(stateDirectory: String) -> String { stateDirectory + "/control.sock" }

    private let context: GatewayContext
    private let path: String
    private var fd: Int32 = -1

    public init(context: GatewayContext) throws {
        self.context = context
        path = Self.path(stateDirectory: context.configuration.stateDirectory)
        unlink(path)
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
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
    }

    /// Serves requests on a dedicated thread until the daemon exits.
    public func start() {
        let thread = Thread { [self] in serve() }
        thread.name = "gatehouse-control"
        thread.start()
    }

    public func remove() { unlink(path) }

    private func serve() {
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
        guard getsockopt(client, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0,
              cred.uid == geteuid() || cred.uid == 0 else {
            reply(client, ["ok": false, "error": "permission denied"])
            return
        }
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while line.count < 4096 {
            let n = read(client, &byte, 1)
            if n <= 0 || byte == 0x0a { break }
            line.append(byte)
        }
        let text = String(decoding: line, as: UTF8.self)
        reply(client, respond(to: text, uid: cred.uid))
    }

    /// The request → answer mapping; internal for tests.
    func respond(to text: String, uid: uid_t) -> [String: Any] {
        let parts = text.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true).map(String.init)
        let now = context.clock.now()
        let iso = ISO8601DateFormatter()
        switch parts.first {
        case "list":
            let sessions = context.sessions.list().map { s -> [String: Any] in
                ["id": s.id, "user": s.user, "source": s.source, "started": iso.string(from: s.started),
                 "idleSeconds": Int(now.timeIntervalSince(s.lastInput)), "commandRunning": s.commandRunning]
            }
            return ["ok": true, "node": context.configuration.nodeName, "sessions": sessions,
                    "lockedUsers": context.lockouts.lockedUsers(now: now).map(\.rawValue),
                    "unauthenticated": context.preAuth.unauthenticatedCount]
        case "kill":
            guard parts.count == 3 else { return ["ok": false, "error": "usage: kill SESSION-ID REASON"] }
            let reason = TerminalText.sanitize(String(parts[2].prefix(200)), keepLineBreaks: false)
            let id = SessionID(rawValue: parts[1])
            let user = context.sessions.list().first { $0.id == id.rawValue }?.user
            let message = "Your session was ended by an operator: \(reason)"
            guard context.sessions.requestEnd(id, .init(reason: "killed", message: message)) else {
                return ["ok": false, "error": "no live session \(parts[1]) on this node"]
            }
            try? context.audit.record(AuditEvent(time: now, kind: .sessionKill, user: user, session: id,
                                                 fields: ["reason": reason, "operatorUID": String(uid)]))
            context.logger.notice("session killed by operator", metadata: ["session": "\(id)", "reason": "\(reason)"])
            return ["ok": true, "session": id.rawValue]
        case "unlock":
            guard parts.count == 2, let user = UserName(parts[1]) else {
                return ["ok": false, "error": "usage: unlock USER"]
            }
            let was = context.lockouts.unlock(user, now: now)
            try? context.audit.record(AuditEvent(time: now, kind: .userUnlock, user: user.rawValue,
                                                 fields: ["wasLocked": String(was), "operatorUID": String(uid)]))
            return ["ok": true, "user": user.rawValue, "wasLocked": was]
        default:
            return ["ok": false, "error": "unknown request; expected list, kill or unlock"]
        }
    }

    private func reply(_ client: Int32, _ object: [String: Any]) {
        var data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        data.append(0x0a)
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(client, raw.baseAddress! + offset, raw.count - offset)
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

    /// Sends one request to the daemon of `stateDirectory`; returns its JSON answer.
    public static func request(stateDirectory: String, _ line: String) throws -> [String: Any] {
        let path = Self.path(stateDirectory: stateDirectory)
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
        let out = Array((line + "\n").utf8)
        guard out.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == out.count else {
            throw ControlError("write to \(path) failed")
        }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            data.append(contentsOf: buffer[0..<n])
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ControlError("unreadable answer from the daemon")
        }
        return object
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
