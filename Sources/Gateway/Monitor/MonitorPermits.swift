import CmdletShell
import GatehouseCore

/// Which requests a connection may make of the monitor, in which state: the
/// request table of docs/architecture.md, after OpenSSH's `monitor_permit`.
/// Pure, so that every row is tested on its own; the monitor asks it before
/// it acts on anything.
///
/// new ─publicKey(yes)→ keyAccepted(u) ─keyboardInteractive(u)→ conversing(u)
///   ─PAM success→ authenticated(u) ─openSession(u)→ inSession(u) ─end→ ended
/// A PAM failure goes back to keyAccepted(u); a refusal ends the connection.
struct MonitorPermits: Sendable {
    enum State: Equatable, Sendable {
        case new
        case keyAccepted(user: UserName)
        case conversing(user: UserName)
        case authenticated(user: UserName)
        /// `audited`: the argv (as the audit writes it) of the last
        /// `command.allowed` event the monitor wrote for this session and no
        /// backend has started for yet.
        case inSession(user: UserName, session: SessionID, transcriptCreated: Bool, audited: String?)
        case ended
    }

    private(set) var state = State.new

    /// What the session's side may report to the audit log before a
    /// session is open: its view of the SSH authentication and of the
    /// connection limits, which only it sees.
    static let reportablePreAuthKinds: Set<AuditEventKind> = [.authSuccess, .authFailure, .connectionRefused,
                                                              .sourcePenalty]

    /// What it may report in a session: what it observes itself (its
    /// commands as the interpreter judged them, its channels, its limits).
    /// Everything else is the monitor's to write: the session's end, every
    /// Lockbox change, lockouts, checkpoints, policy loads.
    static let reportableKinds: Set<AuditEventKind> = [
        .sessionStart, .sessionRefused, .sessionWarning, .channelRefused, .commandAllowed, .commandDenied,
        .commandFinished, .transcriptFailed,
    ]

    enum Verdict: Equatable, Sendable {
        /// Allowed before authentication.
        case allowedPreAuth
        /// Allowed, for the connection's session.
        case allowed(user: UserName, session: SessionID)
        case refused(String)
    }

    /// Judges `request` in the current state and moves the state on. A
    /// refused connection is ended: nothing else it asks is answered.
    mutating func admit(_ request: MonitorRequest) -> Verdict {
        let verdict = judge(request)
        if case .refused = verdict { state = .ended }
        return verdict
    }

    /// Refuses a request the monitor judged itself (a form the table never
    /// allows): the connection is ended, as for any refusal.
    mutating func refuse(_ reason: String) -> Verdict {
        state = .ended
        return .refused(reason)
    }

    /// The monitor's own authentication results move the state, never a request.
    mutating func keyChecked(user: UserName, authorized: Bool) {
        if authorized, state == .new || Self.isKeyAccepted(state) { state = .keyAccepted(user: user) }
    }

    /// The monitor wrote (durably) a `command.allowed` event with this argv.
    mutating func commandAudited(argv: String) {
        guard case .inSession(let user, let session, let transcript, _) = state else { return }
        state = .inSession(user: user, session: session, transcriptCreated: transcript, audited: argv)
    }

    mutating func conversationEnded(user: UserName, success: Bool) {
        guard state == .conversing(user: user) else { return }
        state = success ? .authenticated(user: user) : .keyAccepted(user: user)
    }

    private static func isKeyAccepted(_ state: State) -> Bool {
        if case .keyAccepted = state { return true }
        return false
    }

    private mutating func judge(_ request: MonitorRequest) -> Verdict {
        switch (state, request) {
        case (.ended, _):
            return .refused("the connection has ended")
        case (_, .sessionListing), (_, .ready):
            return .refused("the network side's own reports come on connection 0 only")

        // Before authentication.
        case (.new, .publicKey), (.keyAccepted, .publicKey):
            return .allowedPreAuth
        case (.keyAccepted(let user), .keyboardInteractive(let name, _, _)) where user.rawValue == name:
            state = .conversing(user: user)
            return .allowedPreAuth
        case (_, .keyboardInteractive):
            return .refused("keyboard-interactive before that user's key was accepted")
        case (.conversing, .pamAnswers):
            return .allowedPreAuth
        case (_, .pamAnswers):
            return .refused("answers with no PAM conversation running")
        case (.new, .closeConnection), (.keyAccepted, .closeConnection), (.conversing, .closeConnection),
             (.authenticated, .closeConnection):
            state = .ended
            return .allowedPreAuth
        case (.inSession, .closeConnection):
            return .refused("a session ends with end, not closeConnection")
        case (.new, .preAuthAudit(let kind, _, _, _)), (.keyAccepted, .preAuthAudit(let kind, _, _, _)),
             (.conversing, .preAuthAudit(let kind, _, _, _)), (.authenticated, .preAuthAudit(let kind, _, _, _)):
            return Self.reportablePreAuthKinds.contains(kind)
                ? .allowedPreAuth : .refused("\(kind.rawValue) cannot be reported before a session")
        case (.inSession, .preAuthAudit):
            return .refused("in a session, events carry the session's user")
        case (.authenticated(let user), .openSession(let name, let session)) where user == name:
            state = .inSession(user: user, session: session, transcriptCreated: false, audited: nil)
            return .allowed(user: user, session: session)
        case (_, .openSession):
            return .refused("a session opens only for the user who passed both factors, once")
        case (.new, _), (.keyAccepted, _), (.conversing, _), (.authenticated, _):
            return .refused("no session is open on this connection")

        // In a session.
        case (.inSession, .publicKey):
            return .refused("authentication is over on this connection")
        case (.inSession(let user, let session, false, let audited), .createTranscript):
            state = .inSession(user: user, session: session, transcriptCreated: true, audited: audited)
            return .allowed(user: user, session: session)
        case (.inSession(_, _, true, _), .createTranscript):
            return .refused("the session's transcript exists already")
        case (.inSession, .audit(let kind, _)) where !Self.reportableKinds.contains(kind):
            return .refused("the session's side may not report \(kind.rawValue) events")
        case (.inSession(let user, let session, _, _), .end):
            state = .ended
            return .allowed(user: user, session: session)
        case (.inSession(let user, let session, let transcript, let audited), .spawn(let request)):
            // One start per durable command.allowed event naming this argv.
            guard let audited, audited == AuditText.jsonArray(request.argv) else {
                return .refused("a backend starts only after its command.allowed event")
            }
            state = .inSession(user: user, session: session, transcriptCreated: transcript, audited: nil)
            return .allowed(user: user, session: session)
        case (.inSession(let user, let session, _, _), .elevations), (.inSession(let user, let session, _, _), .audit),
             (.inSession(let user, let session, _, _), .lockbox), (.inSession(let user, let session, _, _), .redeem),
             (.inSession(let user, let session, _, _), .endElevations), (.inSession(let user, let session, _, _), .sweep),
             (.inSession(let user, let session, _, _), .ownRequest), (.inSession(let user, let session, _, _), .signalBackend),
             (.inSession(let user, let session, _, _), .reapBackend):
            return .allowed(user: user, session: session)
        }
    }
}
