import CmdletShell
import Foundation
import GatehouseCore
import Synchronization

/// The live sessions of this node, in the network process: shared by every
/// session thread and the monitor's notices (an operator's kill or listing,
/// an ended grant, a reload). Enforces `maxSessionsPerUser` at the one moment that
/// matters (right after authentication, before the session starts), and
/// carries whatever must reach a session from outside (an operator kill, the
/// shutdown, a revoked grant) to it as an event: each session's `SessionWake`
/// is written and, when a backend must stop, its `CancellationFlag` set.
/// Nothing here is polled; time-based limits are the session's own
/// deadlines (see `SessionLimitsState.nextDeadline`).
///
/// One Mutex over all entries; nothing here blocks while holding it.
public final class SessionRegistry: Sendable {
    /// One live session, as held inside the registry's Mutex.
    struct Entry {
        let id: SessionID
        let user: UserName
        let source: String
        let started: Date
        let wake: SessionWake?
        var endRequest: EndRequest?
        var running: CancellationFlag?
        /// The elevation that allowed the running command (its Lockbox
        /// request id and end), so its revocation stops that backend and no other.
        var runningGrant: (requestID: Int64, expires: Date?)?
        var lastInput: Date

        init(id: SessionID, user: UserName, source: String, started: Date, wake: SessionWake?) {
            self.id = id
            self.user = user
            self.source = source
            self.started = started
            self.wake = wake
            lastInput = started
        }
    }

    /// Why a session must end now, and what the user is told.
    public struct EndRequest: Sendable, Equatable {
        /// Audit `session.end` reason: "lifetime", "killed", "idle", "elevation-expired"...
        public let reason: String
        public let message: String
        public init(reason: String, message: String) {
            self.reason = reason
            self.message = message
        }
        /// For "<cmdlet> was stopped: <this>.".
        var stopReason: String { message.hasSuffix(".") ? String(message.dropLast()) : message }
    }

    /// A snapshot row for `gatehouse sessions list --live`.
    public struct Summary: Sendable, Codable, Equatable {
        public let id: String
        public let user: String
        public let source: String
        public let started: Date
        public let lastInput: Date
        public let commandRunning: Bool
    }

    public enum Admission {
        case admitted
        /// The user already holds `maxSessionsPerUser` sessions; the oldest is named.
        case refused(existing: Summary)
    }

    private struct State {
        var entries: [SessionID: Entry] = [:]
        /// Set by `requestEndAll` (shutdown): a session admitted after it
        /// starts with this end request, so none slips past the shutdown.
        var closing: EndRequest?
    }

    private let state = Mutex(State())

    public init() {}

    /// Admits a session for `user` unless they already hold `limit` live ones.
    /// `wake` is written whenever something must reach the session.
    public func admit(id: SessionID, user: UserName, source: String, now: Date, limit: Int,
                      wake: SessionWake? = nil) -> Admission {
        state.withLock { state in
            let mine = state.entries.values.filter { $0.user == user }.sorted { $0.started < $1.started }
            if mine.count >= limit, let oldest = mine.first {
                return .refused(existing: Self.summary(oldest))
            }
            var entry = Entry(id: id, user: user, source: source, started: now, wake: wake)
            entry.endRequest = state.closing
            state.entries[id] = entry
            return .admitted
        }
    }

    public func remove(_ id: SessionID) { state.withLock { _ = $0.entries.removeValue(forKey: id) } }

    public func list() -> [Summary] {
        state.withLock { $0.entries.values.sorted { $0.started < $1.started }.map(Self.summary) }
    }

    public var count: Int { state.withLock { $0.entries.count } }

    /// Asks a session to end (operator kill, lifetime, I/O timeout): its
    /// running backend is stopped at once, and its thread is woken to
    /// disconnect with `request.message`. false when no such live session exists.
    public func requestEnd(_ id: SessionID, _ request: EndRequest) -> Bool {
        state.withLock { state in
            guard var entry = state.entries[id] else { return false }
            Self.end(&entry, request)
            state.entries[id] = entry
            return true
        }
    }

    /// Ends every live session, and every one admitted from now on (shutdown).
    public func requestEndAll(_ request: EndRequest) {
        state.withLock { state in
            state.closing = request
            for id in state.entries.keys {
                guard var entry = state.entries[id] else { continue }
                Self.end(&entry, request)
                state.entries[id] = entry
            }
        }
    }

    private static func end(_ entry: inout Entry, _ request: EndRequest) {
        if entry.endRequest == nil { entry.endRequest = request }
        entry.running?.cancel(reason: request.stopReason)
        entry.wake?.signal()
    }

    /// An elevation of `session` ended (revoked, cancelled) while another
    /// thread looked on: a backend running under that very grant is stopped
    /// now, and the session is woken to tell its user. A command that runs
    /// under other rights goes on.
    public func grantEnded(session: SessionID, requestID: Int64) {
        state.withLock { state in
            guard let entry = state.entries[session] else { return }
            if entry.runningGrant?.requestID == requestID { entry.running?.cancel() }
            entry.wake?.signal()
        }
    }

    /// Wakes every session to look at its state again (after a reload);
    /// nothing is stopped.
    public func wakeAll() {
        state.withLock { state in
            for entry in state.entries.values { entry.wake?.signal() }
        }
    }

    /// Called by the session thread around a backend run, so a kill or a
    /// revocation can stop it from another thread.
    public func setRunning(_ id: SessionID, _ flag: CancellationFlag?) {
        state.withLock { state in
            guard state.entries[id] != nil else { return }
            state.entries[id]?.running = flag
            state.entries[id]?.runningGrant = nil
            if let flag, let request = state.entries[id]?.endRequest { flag.cancel(reason: request.stopReason) }
        }
    }

    /// The elevation that allowed the command now running, once the
    /// interpreter has decided it; see `grantEnded`.
    public func setRunningGrant(_ id: SessionID, requestID: Int64, expires: Date?) {
        state.withLock { $0.entries[id]?.runningGrant = (requestID, expires) }
    }

    /// When the grant of the running command ends by time, if one allowed it:
    /// one of the session's deadlines while the backend runs.
    public func runningGrantExpiry(_ id: SessionID) -> Date? {
        state.withLock { $0.entries[id]?.runningGrant?.expires }
    }

    public func noteInput(_ id: SessionID, at now: Date) {
        state.withLock { $0.entries[id]?.lastInput = now }
    }

    /// The pending end request of a session, if any (read by its thread
    /// after each wake-up).
    public func endRequest(_ id: SessionID) -> EndRequest? {
        state.withLock { $0.entries[id]?.endRequest }
    }

    private static func summary(_ e: Entry) -> Summary {
        Summary(id: e.id.rawValue, user: e.user.rawValue, source: e.source, started: e.started,
                lastInput: e.lastInput, commandRunning: e.running != nil)
    }
}
