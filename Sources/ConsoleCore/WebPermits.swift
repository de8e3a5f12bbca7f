import Foundation

/// Which web requests the monitor answers, in which state: the web
/// channel's request table, pure so that every row is tested on its own.
///
/// The channel: unready ─ready→ serving. Nothing but `ready` is answered
/// before the web process said it is confined and listening, and `ready`
/// only once.
/// A request: sign-in and API calls carry their own proof (the PAM
/// conversation, the bearer token) and are judged by their handlers; every
/// other request names a web session, which must be one the monitor created
/// after PAM succeeded and which has not expired; a change needs that
/// session's CSRF token; a review needs a member of `reviewers`.
public struct WebPermits: Sendable {
    public enum Verdict: Equatable, Sendable {
        /// Judged by its handler (sign-in, API, ready).
        case open
        /// For this session's user.
        case session(WebSessionTable.Entry)
        /// No valid session (expired, or never issued): sign in again.
        /// `audit`: a cookie the monitor never issued is audited.
        case unauthenticated(audit: Bool)
        /// Refused and audited; the reason is for the audit.
        case refused(String)
    }

    public private(set) var ready = false

    public init() {}

    /// Judges `request` at `now`, against the monitor's session table.
    public mutating func judge(_ request: WebRequest, sessions: inout WebSessionTable, now: Date,
                               isReviewer: (String) -> Bool) -> Verdict {
        if case .ready = request {
            guard !ready else { return .refused("the web process said ready twice") }
            ready = true
            return .open
        }
        guard ready else { return .refused("a request before the web process was ready") }
        let session: String
        switch request {
        case .ready: return .refused("unreachable")
        case .signInStart, .signInAnswers, .api: return .open
        case .signOut(let s, _), .whoAmI(let s), .pending(let s), .decide(let s, _, _, _, _), .search(let s, _),
             .sessionDetail(let s, _), .transcript(let s, _, _), .verifyChain(let s):
            session = s
        }
        let entry: WebSessionTable.Entry
        switch sessions.lookup(session, now: now) {
        case .unknown: return .unauthenticated(audit: !session.isEmpty)
        case .expired: return .unauthenticated(audit: false)
        case .valid(let e): entry = e
        }
        switch request {
        case .decide(_, let csrf, _, _, _), .signOut(_, let csrf):
            guard WebSessionTable.csrfMatches(entry, csrf) else {
                return .refused("a change without this session's CSRF token")
            }
        case .whoAmI, .pending:
            break
        case .search, .sessionDetail, .transcript, .verifyChain:
            guard isReviewer(entry.user) else { return .refused("\(entry.user) is not in the reviewers group") }
        case .ready, .signInStart, .signInAnswers, .api:
            break
        }
        return .session(entry)
    }
}
