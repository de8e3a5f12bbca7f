import Foundation
import Synchronization

/// Everything the accept loop decides before a connection costs more than an
/// `accept(2)`: how many unauthenticated connections exist (in total and per
/// source), and which sources are serving a penalty for failed logins (like
/// OpenSSH's `PerSourcePenalties`). Refusal is a `close(2)` before key
/// exchange, so a flood from one source costs almost nothing and can never
/// take the slots good clients need: each source has its own cap.
///
/// Shared by the accept thread and every session thread; one Mutex, never
/// held across anything that blocks.
public final class PreAuthLimits: Sendable {
    public struct Settings: Sendable {
        public var maxUnauthenticated: Int
        public var maxUnauthenticatedPerSource: Int
        public var penalties: Bool
        public var authFailPenalty: TimeInterval
        public var noAuthPenalty: TimeInterval
        public var penaltyMin: TimeInterval
        public var penaltyMax: TimeInterval
        public var exempt: Set<String>
    }

    public enum Verdict: Equatable {
        case admit
        case tooManyUnauthenticated
        case tooManyFromSource
        /// The source is penalized for this many more seconds.
        case penalized(remaining: Int)
    }

    /// How an unauthenticated connection ended, for the penalty.
    public enum Outcome { case authenticated, authFailed, noAuth }

    private struct Counts {
        var unauthenticated = 0
        var perSource: [String: Int] = [:]
        /// Penalty expiry per source, and whether it has reached `penaltyMin` (is active).
        var penalties: [String: (until: Date, active: Bool)] = [:]
    }

    private let settings: Settings
    private let counts = Mutex(Counts())

    public init(_ settings: Settings) { self.settings = settings }

    /// Decides at accept. On `.admit` the connection is counted until `release`.
    public func admit(source: String, now: Date) -> Verdict {
        counts.withLock { c in
            if settings.penalties, let p = c.penalties[source] {
                if p.until <= now {
                    c.penalties[source] = nil
                } else if p.active {
                    return .penalized(remaining: Int(p.until.timeIntervalSince(now).rounded(.up)))
                }
            }
            guard c.unauthenticated < settings.maxUnauthenticated else { return .tooManyUnauthenticated }
            guard c.perSource[source, default: 0] < settings.maxUnauthenticatedPerSource else { return .tooManyFromSource }
            c.unauthenticated += 1
            c.perSource[source, default: 0] += 1
            return .admit
        }
    }

    /// The connection has left the unauthenticated state (logged in or gone).
    /// Returns true when this outcome put the source into an active penalty.
    @discardableResult
    public func release(source: String, outcome: Outcome, now: Date) -> Bool {
        counts.withLock { c in
            c.unauthenticated -= 1
            let left = c.perSource[source, default: 1] - 1
            c.perSource[source] = left > 0 ? left : nil
            guard settings.penalties, !settings.exempt.contains(source) else { return false }
            let amount: TimeInterval
            switch outcome {
            case .authenticated: return false
            case .authFailed: amount = settings.authFailPenalty
            case .noAuth: amount = settings.noAuthPenalty
            }
            guard amount > 0 else { return false }
            let current = c.penalties[source].map { max(0, $0.until.timeIntervalSince(now)) } ?? 0
            let total = min(settings.penaltyMax, current + amount)
            let wasActive = c.penalties[source]?.active ?? false
            let active = wasActive || total >= settings.penaltyMin
            c.penalties[source] = (now.addingTimeInterval(total), active)
            // Bound the table: forget expired entries when it grows.
            if c.penalties.count > 10_000 { c.penalties = c.penalties.filter { $0.value.until > now } }
            return active && !wasActive
        }
    }

    /// Current counts, for tests and `sessions list --live`.
    public var unauthenticatedCount: Int { counts.withLock { $0.unauthenticated } }

    /// Source address without the port: "127.0.0.2:51234" → "127.0.0.2", "[::1]:22" → "::1".
    public static func host(of peer: String) -> String {
        if peer.hasPrefix("["), let close = peer.firstIndex(of: "]") {
            return String(peer[peer.index(after: peer.startIndex)..<close])
        }
        if let colon = peer.lastIndex(of: ":"), peer.firstIndex(of: ":") == colon { return String(peer[..<colon]) }
        return peer
    }
}
