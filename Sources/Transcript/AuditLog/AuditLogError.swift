import Foundation

/// Every failure of the Transcript module: audit log, signing key,
/// transcripts and the index. Callers of `AuditSink.record` fail closed on it.
public enum AuditLogError: Error, CustomStringConvertible, Sendable {
    case io(path: String, errno: Int32)
    case badKey(path: String, reason: String)
    /// An earlier write failed; the chain cannot be continued safely, so every
    /// later event is refused until the daemon restarts.
    case failedEarlier(path: String, first: String)
    case malformed(path: String, line: Int, reason: String)
    case index(String)
    case notFound(String)

    public var description: String {
        switch self {
        case .io(let path, let errno): return "\(path): \(String(cString: strerror(errno)))"
        case .badKey(let path, let reason): return "\(path): \(reason)"
        case .failedEarlier(let path, let first): return "audit log \(path) failed earlier (\(first)); refusing further events"
        case .malformed(let path, let line, let reason): return "\(path):\(line): \(reason)"
        case .index(let message): return "audit index: \(message)"
        case .notFound(let what): return "\(what) not found"
        }
    }
}
