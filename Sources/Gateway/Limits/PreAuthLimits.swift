import Foundation

/// Everything the accept loop decides before a connection costs more than an
/// `accept(2)`: how many unauthenticated connections exist (in total and per
/// source), and which sources are serving a penalty for failed logins (like
/// OpenSSH's `PerSourcePenalties`). Refusal is a `close(2)` before key
/// exchange, so a flood from one source costs almost nothing and can never
/// take the slots good clients need: each source has its own cap.
///
/// Shared by the accept thread and every session thread; one lock, never
/// held across anything that blocks.
public final class PreAuthLimits: @unchecked Sendable {
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

    private let settings: Settings
    private let lock = NSLock()
    private var unauthenticated = 0
    private var perSource: [String: Int] = [:]
    /// Penalty expiry per source, and whether it has reached `penaltyMin` (is active).
    private var penalties: [String: (until: Date, active: Bool)] = [:]

    public init(_ settings: Settings) { self.settings = settings }

    /// Decides at accept. On `.admit` the connection is counted until `release`.
    public func admit(source: String, now: Date) -> Verdict {
        lock.withLock {
            if settings.penalties, let p = penalties[source] {
                if p.until <= now {
                    penalties[source] = nil
                } else if p.active {
                    return .penalized(remaining: Int(p.until.timeIntervalSince(now).rounded(.up)))
                }
            }
            guard unauthenticated < settings.maxUnauthenticated else { return .tooManyUnauthenticated }
            guard perSource[source, default: 0] < settings.maxUnauthenticatedPerSource else { return .tooManyFromSource }
            unauthenticated += 1
            perSource[source, default: 0] += 1
            return .admit
        }
    }

    /// The connection has left the unauthenticated state (logged in or gone).
    /// Returns true when this outcome put the source into an active penalty.
    @discardableResult
    public func release(source: String, outcome: Outcome, now: Date) -> Bool {
        lock.withLock {
            unauthenticated -= 1
            let left = perSource[source, default: 1] - 1
            perSource[source] = left > 0 ? left : nil
            guard settings.penalties, !settings.exempt.contains(source) else { return false }
            let amount: TimeInterval
            switch outcome {
            case .authenticated: return false
            case .authFailed: amount = settings.authFailPenalty
            case .noAuth: amount = settings.noAuthPenalty
            }
            guard amount > 0 else { return false }
            let current = penalties[source].map { max(0, $0.until.timeIntervalSince(now)) } ?? 0
            let total = min(settings.penaltyMax, current + amount)
            let wasActive = penalties[source]?.active ?? false
            let active = wasActive || total >= settings.penaltyMin
            penalties[source] = (now.addingTimeInterval(total), active)
            // Bound the table: forget expired entries when it grows.
            if penalties.count > 10_000 { penalties = penalties.filter { $0.value.until > now } }
            return active && !wasActive
        }
    }

    /// Current counts, for tests and `sessions list --live`.
    public var unauthenticatedCount: Int { lock.withLock { unauthenticated } }

    /// Source address without the port: "127.0.0.2:51234" → "127.0.0.2", "[::1]:22" → "::1".
    public static func host(of peer: String) -> String {
        if peer.hasPrefix("["), let close = peer.firstIndex(of: "]") {
            return String(peer[peer.index(after: peer.startIndex)..<close])
        }
        if let colon = peer.lastIndex(of: ":"), peer.firstIndex(of: ":") == colon { return String(peer[..<colon]) }
        return peer
    }
}
