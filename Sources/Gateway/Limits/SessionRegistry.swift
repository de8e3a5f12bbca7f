import CmdletShell
import Foundation
import GatehouseCore
import Synchronization

/// The live sessions of this node, shared by every session thread, the
/// watchdog and the control socket. Enforces `maxSessionsPerUser` at the one
/// moment that matters (right after authentication, before the session
/// starts), and carries operator kills and deadlines to the session threads.
///
/// One Mutex over all entries; nothing here blocks while holding it.
public final class SessionRegistry: Sendable {
    /// One live session, as held inside the registry's Mutex.
    struct Entry {
        let id: SessionID
        let user: UserName
        let source: String
        let started: Date
        var endRequest: EndRequest?
        var deadlines: [Deadline] = []
        var running: CancellationFlag?
        var lastInput: Date

        init(id: SessionID, user: UserName, source: String, started: Date) {
            self.id = id
            self.user = user
            self.source = source
            self.started = started
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

    /// A point in time after which the session's running backend is ended
    /// (and, if `endsSession`, the session too). The generic hook for
    /// lifetime limits and elevation expiry alike.
    public struct Deadline: Sendable {
        public let at: Date
        public let request: EndRequest
        /// false: only the running backend is stopped (e.g. an elevation ended); the session goes on.
        public let endsSession: Bool
        public init(at: Date, request: EndRequest, endsSession: Bool) {
            self.at = at
            self.request = request
            self.endsSession = endsSession
        }
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

    private let entries = Mutex<[SessionID: Entry]>([:])

    public init() {}

    /// Admits a session for `user` unless they already hold `limit` live ones.
    public func admit(id: SessionID, user: UserName, source: String, now: Date, limit: Int) -> Admission {
        entries.withLock { entries in
            let mine = entries.values.filter { $0.user == user }.sorted { $0.started < $1.started }
            if mine.count >= limit, let oldest = mine.first {
                return .refused(existing: Self.summary(oldest))
            }
            entries[id] = Entry(id: id, user: user, source: source, started: now)
            return .admitted
        }
    }

    public func remove(_ id: SessionID) { entries.withLock { _ = $0.removeValue(forKey: id) } }

    public func list() -> [Summary] {
        entries.withLock { $0.values.sorted { $0.started < $1.started }.map(Self.summary) }
    }

    public var count: Int { entries.withLock { $0.count } }

    /// Asks a session to end (operator kill): its running backend is stopped
    /// at once, and the session thread disconnects with `request.message`.
    /// false when no such live session exists.
    public func requestEnd(_ id: SessionID, _ request: EndRequest) -> Bool {
        entries.withLock { entries in
            guard entries[id] != nil else { return false }
            if entries[id]?.endRequest == nil { entries[id]?.endRequest = request }
            entries[id]?.running?.cancel(reason: request.stopReason)
            return true
        }
    }

    /// Adds a deadline for a session (lifetime, elevation expiry).
    public func addDeadline(_ id: SessionID, _ deadline: Deadline) {
        entries.withLock { $0[id]?.deadlines.append(deadline) }
    }

    /// Called by the session thread around a backend run, so a kill or a
    /// deadline can stop it from another thread.
    public func setRunning(_ id: SessionID, _ flag: CancellationFlag?) {
        entries.withLock { entries in
            guard entries[id] != nil else { return }
            entries[id]?.running = flag
            if let flag, let request = entries[id]?.endRequest { flag.cancel(reason: request.stopReason) }
        }
    }

    public func noteInput(_ id: SessionID, at now: Date) {
        entries.withLock { $0[id]?.lastInput = now }
    }

    /// The pending end request of a session, if any (polled by its thread).
    public func endRequest(_ id: SessionID) -> EndRequest? {
        entries.withLock { $0[id]?.endRequest }
    }

    /// The watchdog's tick: every deadline that has passed stops the running
    /// backend; one that ends the session becomes its end request. Returns
    /// the deadlines that fired, for logging.
    @discardableResult
    public func fireDeadlines(now: Date) -> [(SessionID, Deadline)] {
        entries.withLock { entries in
            var fired: [(SessionID, Deadline)] = []
            for id in entries.keys {
                guard var entry = entries[id] else { continue }
                let due = entry.deadlines.filter { $0.at <= now }
                guard !due.isEmpty else { continue }
                entry.deadlines.removeAll { $0.at <= now }
                for deadline in due {
                    fired.append((entry.id, deadline))
                    entry.running?.cancel(reason: deadline.request.stopReason)
                    if deadline.endsSession && entry.endRequest == nil { entry.endRequest = deadline.request }
                }
                entries[id] = entry
            }
            return fired
        }
    }

    private static func summary(_ e: Entry) -> Summary {
        Summary(id: e.id.rawValue, user: e.user.rawValue, source: e.source, started: e.started,
                lastInput: e.lastInput, commandRunning: e.running != nil)
    }
}
