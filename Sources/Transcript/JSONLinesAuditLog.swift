import Foundation
import GatehouseCore

/// The audit log as JSON lines, one event per line, appended with `O_APPEND`
/// and `fdatasync`ed before `record` returns: when `record` returns, the event
/// is on disk, so a command's event is durable before its backend starts.
///
/// The hash chain and signed checkpoints come with the transcript work; they
/// replace what sits behind `AuditSink`, not its callers.
public final class JSONLinesAuditLog: AuditSink, @unchecked Sendable {
    /// Why an event could not be written; callers fail closed on it.
    public struct WriteError: Error, CustomStringConvertible {
        public let path: String
        public let errno: Int32
        public var description: String { "audit log \(path): \(String(cString: strerror(errno)))" }
    }

    public let path: String
    private let fd: Int32
    private let lock = NSLock()
    private let synchronous: Bool

    /// Opens (creating with mode 0600) the log at `path`. `synchronous: false`
    /// skips the per-event `fdatasync` (tests and benchmarks only).
    public init(path: String, synchronous: Bool = true) throws {
        self.path = path
        self.synchronous = synchronous
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw WriteError(path: path, errno: errno) }
    }

    deinit { close(fd) }

    public func record(_ event: AuditEvent) throws {
        var line = Self.encode(event)
        line.append(0x0a)
        try lock.withLock {
            var offset = 0
            while offset < line.count {
                let n = line.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw WriteError(path: path, errno: errno)
                }
                offset += n
            }
            if synchronous && fdatasync(fd) != 0 { throw WriteError(path: path, errno: errno) }
        }
    }

    /// One event as a single JSON object with sorted keys (stable for hashing later).
    public static func encode(_ event: AuditEvent) -> [UInt8] {
        var object: [String: Any] = [
            "time": timestamp(event.time),
            "kind": event.kind.rawValue,
        ]
        if let user = event.user { object["user"] = user }
        if let session = event.session { object["session"] = session.rawValue }
        if !event.fields.isEmpty { object["fields"] = event.fields }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return Array(data)
    }

    private static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }
}
