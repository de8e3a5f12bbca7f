import Foundation
import GatehouseCore
import Logging

/// Carries out control requests against the running gateway: the handler
/// behind the daemon's `ControlSocket`. Requests reach it decoded and
/// checked (`ControlWire.request(from:)`).
struct GatewayControl: Sendable {
    let context: GatewayContext
    /// The sessions live in the network process; the monitor lists and ends
    /// only sessions it holds open itself.
    let network: LiveSessionsSource
    /// How long a listing waits for the network side's answer.
    static let listingTimeout = DispatchTimeInterval.seconds(5)

    func respond(to request: ControlRequest, operatorUID uid: uid_t) -> ControlResponse {
        let now = context.clock.now()
        switch request {
        case .list:
            guard let live = network.liveSessions(timeout: Self.listingTimeout) else {
                return .refused(reason: .unavailable, message: "the network side did not answer; try again")
            }
            let sessions = live.sessions.map {
                LiveSession(id: $0.id, user: $0.user, source: $0.source, started: $0.started,
                            idleSeconds: max(0, Int(now.timeIntervalSince($0.lastInput))), commandRunning: $0.commandRunning)
            }
            return .sessions(LiveSessionListing(node: context.configuration.nodeName, sessions: sessions,
                                                lockedUsers: context.lockouts.lockedUsers(now: now).map(\.rawValue),
                                                unauthenticated: live.unauthenticated))
        case .kill(let session, let text):
            let reason = TerminalText.sanitize(String(text.prefix(ControlRequest.maximumReasonLength)), keepLineBreaks: false)
            let id = SessionID(rawValue: session)
            let message = "Your session was ended by an operator: \(reason)"
            guard let user = network.endSession(id, message: message) else {
                return .refused(reason: .notFound, message: "no live session \(session) on this node")
            }
            try? context.audit.record(AuditEvent(time: now, kind: .sessionKill, user: user.rawValue, session: id,
                                                 fields: ["reason": reason, "operatorUID": String(uid)]))
            context.logger.notice("session killed by operator", metadata: ["session": "\(id)", "reason": "\(reason)"])
            return .killed(session: session)
        case .unlock(let name):
            // Checked by ControlRequest.problem before the request got here.
            guard let user = UserName(name) else {
                return .refused(reason: .invalidArgument, message: "'\(name)' is not a user name")
            }
            let was = context.lockouts.unlock(user, now: now)
            try? context.audit.record(AuditEvent(time: now, kind: .userUnlock, user: user.rawValue,
                                                 fields: ["wasLocked": String(was), "operatorUID": String(uid)]))
            return .unlocked(user: user.rawValue, wasLocked: was)
        case .mfaChanged(let name, let reset):
            guard let user = UserName(name) else {
                return .refused(reason: .invalidArgument, message: "'\(name)' is not a user name")
            }
            let kind: AuditEventKind = reset ? .mfaReset : .mfaEnrolled
            do {
                try context.audit.record(AuditEvent(time: now, kind: kind, user: user.rawValue,
                                                    fields: ["operatorUID": String(uid)]))
            } catch {
                return .refused(reason: .auditFailed, message: "the audit log could not record \(kind.rawValue): \(error)")
            }
            return .audited(kind: kind.rawValue)
        case .apiTokenChanged(let name, let tenants, let revoked):
            let kind: AuditEventKind = revoked ? .apiTokenRevoked : .apiTokenCreated
            var fields = ["client": name, "operatorUID": String(uid)]
            if !revoked { fields["tenants"] = tenants.joined(separator: ",") }
            do {
                try context.audit.record(AuditEvent(time: now, kind: kind, fields: fields))
            } catch {
                return .refused(reason: .auditFailed, message: "the audit log could not record \(kind.rawValue): \(error)")
            }
            return .audited(kind: kind.rawValue)
        }
    }
}
