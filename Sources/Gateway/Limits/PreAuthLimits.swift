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
            if let verdict = activePenalty(&c, source, now) { return verdict }
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
            return penalize(&c, source, outcome, now)
        }
    }

    // MARK: - Connections through a balancer (PROXY protocol)

    /// A connection from a configured balancer, before its PROXY header names
    /// the client: counted in the total only (per source, the balancer's
    /// address would hold every client's slots), and refused while the
    /// balancer's own address serves a penalty (for headers that failed).
    /// On `.admit` it is counted until `admitForwarded` refuses it,
    /// `releaseFromBalancer`, or (once forwarded) `release(source:)`.
    public func admitFromBalancer(_ balancer: String, now: Date) -> Verdict {
        counts.withLock { c in
            if let verdict = activePenalty(&c, balancer, now) { return verdict }
            guard c.unauthenticated < settings.maxUnauthenticated else { return .tooManyUnauthenticated }
            c.unauthenticated += 1
            return .admit
        }
    }

    /// The header named `source`: that client's penalty and per-source cap
    /// apply as if it had connected directly. On `.admit` the connection is
    /// counted under `source` until `release(source:)`; on a refusal it is
    /// no longer counted at all.
    public func admitForwarded(source: String, now: Date) -> Verdict {
        counts.withLock { c in
            var verdict = activePenalty(&c, source, now)
            if verdict == nil, c.perSource[source, default: 0] >= settings.maxUnauthenticatedPerSource {
                verdict = .tooManyFromSource
            }
            if let verdict {
                c.unauthenticated -= 1
                return verdict
            }
            c.perSource[source, default: 0] += 1
            return .admit
        }
    }

    /// A connection from a balancer ended before it was forwarded: its
    /// header failed (`outcome` says what the balancer's address earns, as a
    /// failed pre-auth connection of its own), or it was the balancer's
    /// health check (`outcome` nil: nothing). Returns true when this put the
    /// balancer's address into an active penalty.
    @discardableResult
    public func releaseFromBalancer(_ balancer: String, outcome: Outcome?, now: Date) -> Bool {
        counts.withLock { c in
            c.unauthenticated -= 1
            guard let outcome else { return false }
            return penalize(&c, balancer, outcome, now)
        }
    }

    /// `.penalized` while `source` serves an active penalty; forgets one that ran out.
    private func activePenalty(_ c: inout Counts, _ source: String, _ now: Date) -> Verdict? {
        guard settings.penalties, let p = c.penalties[source] else { return nil }
        if p.until <= now {
            c.penalties[source] = nil
            return nil
        }
        return p.active ? .penalized(remaining: Int(p.until.timeIntervalSince(now).rounded(.up))) : nil
    }

    /// Adds what `outcome` earns to `source`'s penalty; true when that made it active.
    private func penalize(_ c: inout Counts, _ source: String, _ outcome: Outcome, _ now: Date) -> Bool {
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
