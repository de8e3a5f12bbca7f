import Foundation

/// The kinds of audit event. Frozen once shipped: add new cases, never rename.
public enum AuditEventKind: String, Sendable, Codable, CaseIterable {
    case authSuccess = "auth.success"
    case authFailure = "auth.failure"
    case sessionStart = "session.start"
    case sessionEnd = "session.end"
    case channelRefused = "channel.refused"
    case commandAllowed = "command.allowed"
    case commandDenied = "command.denied"
    case commandFinished = "command.finished"
    case policyLoad = "policy.load"
    // Lockbox (issue 4): one event per request transition, then the grant's life in a session.
    case lockboxRequested = "lockbox.requested"
    case lockboxRefused = "lockbox.refused"
    case lockboxApproved = "lockbox.approved"
    case lockboxDenied = "lockbox.denied"
    case lockboxCredentialIssued = "lockbox.credential"
    case lockboxRevoked = "lockbox.revoked"
    case lockboxCancelled = "lockbox.cancelled"
    case lockboxExpired = "lockbox.expired"
    case elevationStart = "elevation.start"
    case elevationEnd = "elevation.end"
    case elevationFailed = "elevation.failed"
    // Session controls and hardening (issue 6).
    case sessionRefused = "session.refused"
    case sessionWarning = "session.warning"
    case sessionKill = "session.kill"
    case connectionRefused = "connection.refused"
    case sourcePenalty = "auth.source-penalty"
    case userLockout = "auth.user-lockout"
    case userUnlock = "auth.user-unlock"
    case policyReloadFailed = "policy.reload-failed"
    /// A session's transcript could not be created or written; the session ends.
    case transcriptFailed = "transcript.failed"
    /// A signed checkpoint of the audit chain (Transcript's ChainedAuditLog).
    case auditCheckpoint = "audit.checkpoint"
    /// The monitor refused a request of the session's side (privilege
    /// separation): malformed, too large, or not allowed in its state.
    case monitorRefused = "monitor.refused"
    /// An operator enrolled or replaced a user's TOTP secret (`gatehouse
    /// mfa`, issue 12), reported through the control socket: the user and
    /// the operator's uid, never the secret.
    case mfaEnrolled = "mfa.enrolled"
    case mfaReset = "mfa.reset"
    /// An activity API client's token was created or revoked (`gatehouse api-token`): name and tenants, never the token.
    case apiTokenCreated = "api.token-created"
    case apiTokenRevoked = "api.token-revoked"
    /// Someone read recorded activity: a reviewer in the console (a search,
    /// a session's page, a transcript's replay, a chain check) or an
    /// activity API client (any call its token was accepted for). Who, what
    /// and the query; never what was read.
    case recordingAccess = "review.access"
}

extension AuditEventKind {
    /// Whether the event gates an action: its record must be durable before
    /// the action takes effect (a backend starts, a shell opens, a Lockbox
    /// request changes state), so `AuditSink.record` returns only once an
    /// `fdatasync` covers it and every event before it. The other kinds only
    /// describe what happened (a login, a refusal, a command's end): they are
    /// chained and written in order at once, and become durable with the next
    /// sync, at most a short bounded delay later (`ChainedAuditLog`). Because
    /// a sync covers the whole file, everything that led up to an action is
    /// durable before the action. The one place this is decided; the switch is
    /// exhaustive so that a new kind has to choose.
    public var gatesAnAction: Bool {
        switch self {
        case .sessionStart, .commandAllowed, .sessionKill, .userUnlock,
             .lockboxRequested, .lockboxApproved, .lockboxDenied, .lockboxCredentialIssued,
             .lockboxRevoked, .lockboxCancelled, .elevationStart, .mfaEnrolled, .mfaReset, .apiTokenCreated,
             .apiTokenRevoked:
            return true
        case .authSuccess, .authFailure, .sessionEnd, .channelRefused, .commandDenied, .commandFinished,
             .policyLoad, .policyReloadFailed, .lockboxRefused, .lockboxExpired, .elevationEnd, .elevationFailed,
             .sessionRefused, .sessionWarning, .connectionRefused, .sourcePenalty, .userLockout,
             .transcriptFailed, .auditCheckpoint, .monitorRefused, .recordingAccess:
            return false
        }
    }
}

/// One decision, tied to a user and a session where there is one.
///
/// `fields` carries the event's details as strings. Callers must never put a
/// secret (TOTP code, one-time elevation secret, password) into an event.
public struct AuditEvent: Sendable, Equatable {
    public let time: Date
    public let kind: AuditEventKind
    public let user: String?
    public let session: SessionID?
    public let fields: [String: String]

    public init(time: Date, kind: AuditEventKind, user: String? = nil, session: SessionID? = nil,
                fields: [String: String] = [:]) {
        self.time = time
        self.kind = kind
        self.user = user
        self.session = session
        self.fields = fields
    }
}

/// The single interface every decision goes through. `record` returns only
/// once the event is durable if its kind gates an action
/// (`AuditEventKind.gatesAnAction`), and once it is chained and written
/// otherwise; if it throws, the caller fails closed (the command does not run).
public protocol AuditSink: Sendable {
    func record(_ event: AuditEvent) throws
}
