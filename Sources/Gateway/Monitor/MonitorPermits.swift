import GatehouseCore

/// Which requests a connection may make of the monitor, in which state: the
/// session half of the request table (docs/architecture.md), after OpenSSH's
/// `monitor_permit`. Pure, so that every row is tested on its own; the
/// monitor asks it before it acts on anything.
struct MonitorPermits: Sendable {
    enum State: Equatable, Sendable {
        case new
        case inSession(user: UserName, session: SessionID, transcriptCreated: Bool)
        case ended
    }

    private(set) var state = State.new

    /// What the session's side may report to the audit log: what it observes
    /// itself (its commands as the interpreter judged them, its channels, its
    /// limits). Everything else is the monitor's to write: authentication,
    /// the session's end, every Lockbox change, checkpoints, policy loads.
    static let reportableKinds: Set<AuditEventKind> = [
        .sessionStart, .sessionRefused, .sessionWarning, .channelRefused, .commandAllowed, .commandDenied,
        .commandFinished, .transcriptFailed,
    ]

    enum Verdict: Equatable, Sendable {
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

    private mutating func judge(_ request: MonitorRequest) -> Verdict {
        switch (state, request) {
        case (.ended, _):
            return .refused("the connection's session has ended")
        case (.new, .openSession(let user, let session)):
            state = .inSession(user: user, session: session, transcriptCreated: false)
            return .allowed(user: user, session: session)
        case (.new, _):
            return .refused("no session is open on this connection")
        case (.inSession, .openSession):
            return .refused("a session is already open on this connection")
        case (.inSession(let user, let session, false), .createTranscript):
            state = .inSession(user: user, session: session, transcriptCreated: true)
            return .allowed(user: user, session: session)
        case (.inSession(_, _, true), .createTranscript):
            return .refused("the session's transcript exists already")
        case (.inSession, .audit(let kind, _)) where !Self.reportableKinds.contains(kind):
            return .refused("the session's side may not report \(kind.rawValue) events")
        case (.inSession(let user, let session, _), .end):
            state = .ended
            return .allowed(user: user, session: session)
        case (.inSession(let user, let session, _), .elevations), (.inSession(let user, let session, _), .audit),
             (.inSession(let user, let session, _), .lockbox), (.inSession(let user, let session, _), .redeem),
             (.inSession(let user, let session, _), .endElevations), (.inSession(let user, let session, _), .sweep),
             (.inSession(let user, let session, _), .ownRequest):
            return .allowed(user: user, session: session)
        }
    }
}
