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
    /// Where failures are counted: this process's memory, or a fleet's
    /// shared database.
    private let store: LockoutStore
    private let node: String
    private let onStoreError: @Sendable (String) -> Void

    public enum State: Sendable, Equatable { case open, locked, unavailable }

    /// `shared`: a fleet's store (every node's failures); nil counts in this
    /// process's memory. `onSharedError` hears why the store failed.
    public init(failures: Int, window: TimeInterval, shared: LockoutStore? = nil, node: String = "",
                onSharedError: @escaping @Sendable (String) -> Void = { _ in }) {
        self.failures = failures
        self.window = window
        // The newest `failures + 1` are enough: the lock needs `failures`, and
        // the one more tells a failure that locks from one while locked.
        self.store = shared ?? InMemoryLockoutStore(keep: failures + 1)
        self.node = node
        self.onStoreError = onSharedError
    }

    private func since(_ now: Date) -> Date { now.addingTimeInterval(-window) }

    public func state(_ user: UserName, now: Date) -> State {
        do {
            return try store.failureCount(user: user.rawValue, since: since(now)) >= failures ? .locked : .open
        } catch {
            onStoreError("user lockouts unreadable in the shared store; second factors are refused until it answers: \(error)")
            return .unavailable
        }
    }

    public func isLocked(_ user: UserName, now: Date) -> Bool {
        state(user, now: now) != .open
    }

    /// Records one failure; returns true when this one locked the user.
    @discardableResult
    public func recordFailure(_ user: UserName, now: Date) -> Bool {
        do {
            return try store.recordFailure(user: user.rawValue, at: now, since: since(now), node: node) == failures
        } catch {
            onStoreError("a second-factor failure could not be recorded in the shared store: \(error)")
            return false
        }
    }

    /// Clears a user's failures; returns whether they were locked.
    @discardableResult
    public func unlock(_ user: UserName, now: Date) -> Bool {
        do {
            return try store.clear(user: user.rawValue, since: since(now)) >= failures
        } catch {
            onStoreError("unlock could not reach the shared store: \(error)")
            return false
        }
    }

    public func lockedUsers(now: Date) -> [UserName] {
        do {
            return try store.users(since: since(now), atLeast: failures).compactMap(UserName.init)
                .sorted { $0.rawValue < $1.rawValue }
        } catch {
            onStoreError("locked users unreadable in the shared store: \(error)")
            return []
        }
    }
}

/// Where second-factor failures are counted: this process's memory
/// (`InMemoryLockoutStore`, one node) or where every node sees them (the
/// fleet's PostgreSQL, `PostgresStore.PostgresLockoutStore`).
public protocol LockoutStore: Sendable {
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

/// One node's failures, in memory: each user's newest `keep` failure times
/// inside the window, so an ongoing attack cannot grow the table.
final class InMemoryLockoutStore: LockoutStore {
    private let keep: Int
    private let recent = Mutex<[String: [Date]]>([:])

    init(keep: Int) { self.keep = keep }

    func recordFailure(user: String, at: Date, since: Date, node: String) -> Int {
        recent.withLock { recent in
            var times = Self.prune(&recent, user, since)
            times.append(at)
            if times.count > keep { times.removeFirst(times.count - keep) }
            recent[user] = times
            return times.count
        }
    }

    func failureCount(user: String, since: Date) -> Int {
        recent.withLock { Self.prune(&$0, user, since).count }
    }

    func clear(user: String, since: Date) -> Int {
        recent.withLock { recent in
            defer { recent[user] = nil }
            return Self.prune(&recent, user, since).count
        }
    }

    func users(since: Date, atLeast: Int) -> [String] {
        recent.withLock { recent in recent.keys.filter { Self.prune(&recent, $0, since).count >= atLeast } }
    }

    private static func prune(_ recent: inout [String: [Date]], _ user: String, _ since: Date) -> [Date] {
        guard let times = recent[user] else { return [] }
        let kept = times.filter { $0 > since }
        recent[user] = kept.isEmpty ? nil : kept
        return kept
    }
}
