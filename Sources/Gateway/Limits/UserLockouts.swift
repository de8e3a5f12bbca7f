import Foundation
import GatehouseCore
import Synchronization

/// Per-user lockout: `failures` failed second factors within `window` lock the
/// user while that many remain inside the window (attempts while locked count
/// too, so an ongoing attack keeps it locked), or until an operator clears it
/// (`gatehouse users unlock`).
///
/// Only second-factor failures count: they need the user's private key
/// first, so a stranger who merely knows a user name cannot lock that user
/// out (the classic lockout denial of service). Guessing without the key is
/// handled per source by `PreAuthLimits` instead.
///
/// In a fleet (`store: postgres://…`) the failures live in the shared
/// database (`shared`), so a guesser cannot spread attempts over nodes: every
/// node counts every node's failures. If that database cannot be read, the
/// state is `unavailable` and the second factor is refused (fail closed)
/// with a message saying so, until it answers again.
public final class UserLockouts: Sendable {
    private let failures: Int
    private let window: TimeInterval
    /// Failure times per user, inside the window.
    private let recent = Mutex<[UserName: [Date]]>([:])
    private let shared: SharedLockoutStore?
    private let node: String
    private let onSharedError: @Sendable (String) -> Void

    public enum State: Sendable, Equatable { case open, locked, unavailable }

    public init(failures: Int, window: TimeInterval, shared: SharedLockoutStore? = nil, node: String = "",
                onSharedError: @escaping @Sendable (String) -> Void = { _ in }) {
        self.failures = failures
        self.window = window
        self.shared = shared
        self.node = node
        self.onSharedError = onSharedError
    }

    public func state(_ user: UserName, now: Date) -> State {
        guard let shared else { return isLocked(user, now: now) ? .locked : .open }
        do {
            return try shared.failureCount(user: user.rawValue, since: now.addingTimeInterval(-window)) >= failures
                ? .locked : .open
        } catch {
            onSharedError("user lockouts unreadable in the shared store; second factors are refused until it answers: \(error)")
            return .unavailable
        }
    }

    public func isLocked(_ user: UserName, now: Date) -> Bool {
        if shared != nil { return state(user, now: now) != .open }
        return recent.withLock { prune(&$0, user, now).count >= failures }
    }

    /// Records one failure; returns true when this one locked the user.
    @discardableResult
    public func recordFailure(_ user: UserName, now: Date) -> Bool {
        if let shared {
            do {
                let count = try shared.recordFailure(user: user.rawValue, at: now, since: now.addingTimeInterval(-window),
                                                     node: node)
                return count == failures
            } catch {
                onSharedError("a second-factor failure could not be recorded in the shared store: \(error)")
                return false
            }
        }
        return recent.withLock { recent in
            var times = prune(&recent, user, now)
            let before = times.count
            times.append(now)
            if times.count > failures { times.removeFirst(times.count - failures) }
            recent[user] = times
            return before < failures && times.count >= failures
        }
    }

    /// Clears a user's failures; returns whether they were locked.
    @discardableResult
    public func unlock(_ user: UserName, now: Date) -> Bool {
        if let shared {
            do {
                return try shared.clear(user: user.rawValue, since: now.addingTimeInterval(-window)) >= failures
            } catch {
                onSharedError("unlock could not reach the shared store: \(error)")
                return false
            }
        }
        return recent.withLock { recent in
            let was = prune(&recent, user, now).count >= failures
            recent[user] = nil
            return was
        }
    }

    public func lockedUsers(now: Date) -> [UserName] {
        if let shared {
            do {
                return try shared.users(since: now.addingTimeInterval(-window), atLeast: failures).compactMap(UserName.init)
            } catch {
                onSharedError("locked users unreadable in the shared store: \(error)")
                return []
            }
        }
        return recent.withLock { recent in
            recent.keys.filter { prune(&recent, $0, now).count >= failures }.sorted { $0.rawValue < $1.rawValue }
        }
    }

    private func prune(_ recent: inout [UserName: [Date]], _ user: UserName, _ now: Date) -> [Date] {
        guard let times = recent[user] else { return [] }
        let kept = times.filter { now.timeIntervalSince($0) < window }
        recent[user] = kept.isEmpty ? nil : kept
        return kept
    }
}

/// Second-factor failures kept where every node sees them (the fleet's
/// PostgreSQL, `PostgresStore.PostgresLockoutStore`).
public protocol SharedLockoutStore: Sendable {
    /// Records one failure of `user` at `at` by `node`, forgets that user's
    /// failures before `since`, and returns how many remain (this one included).
    func recordFailure(user: String, at: Date, since: Date, node: String) throws -> Int
    /// The user's failures after `since` (inside the window), on every node.
    func failureCount(user: String, since: Date) throws -> Int
    /// Forgets every failure of `user`; returns how many were after `since` (inside the window).
    func clear(user: String, since: Date) throws -> Int
    /// Users with at least `atLeast` failures after `since` (inside the window), by name.
    func users(since: Date, atLeast: Int) throws -> [String]
}
