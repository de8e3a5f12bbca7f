import Foundation

/// Every way a Lockbox operation can be refused or fail. `message` is short
/// and safe to show the client: it names limits and states, never a secret.
public enum LockboxError: Error, Sendable, Equatable, Codable, CustomStringConvertible {
    /// The request is malformed or breaks the role's rules (the message says which limit).
    case invalidRequest(String)
    /// The actor may not do this (self-approval, wrong stage, not the requester...).
    case notAuthorized(String)
    case notFound(id: Int64)
    /// The state machine refused the event; nothing changed.
    case illegalTransition(from: RequestState, event: String)
    /// Another actor changed the request first (lost a race); nothing changed.
    case conflict(id: Int64)
    /// The one-time secret was wrong, already used or already shown.
    case secretRejected(String)
    /// The store failed; the detail is for the log, not the client.
    case storage(String)
    /// A stored row does not decode: `column` of row `id` (nil when the id
    /// itself is unreadable) holds something this code never writes. The
    /// row is refused, never read with a default in its place.
    case corruptRow(id: Int64?, column: String, problem: String)
    /// The audit log did not take the change's event, so the change was
    /// rolled back: nothing happens unrecorded.
    case auditUnavailable

    public var message: String {
        switch self {
        case .invalidRequest(let m), .notAuthorized(let m), .secretRejected(let m): return m
        case .notFound(let id): return "There is no Lockbox request \(id) you can see."
        case .illegalTransition(let from, let event):
            return "A request that is \(from.rawValue) cannot be changed by '\(event)'."
        case .conflict(let id): return "Request \(id) was changed by someone else at the same moment; nothing was done."
        case .storage, .corruptRow: return "The Lockbox store is unavailable; nothing was changed."
        case .auditUnavailable: return "The audit log is unavailable; nothing was changed."
        }
    }

    public var description: String {
        switch self {
        case .storage(let detail): return "Lockbox store error: \(detail)"
        case .corruptRow(let id, let column, let problem):
            return "Lockbox store error: request \(id.map(String.init) ?? "?") column '\(column)' \(problem)"
        default: return message
        }
    }
}
