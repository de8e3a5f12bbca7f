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
public final class UserLockouts: Sendable {
    private let failures: Int
    private let window: TimeInterval
    /// Failure times per user, inside the window.
    private let recent = Mutex<[UserName: [Date]]>([:])

    public init(failures: Int, window: TimeInterval) {
        self.failures = failures
        self.window = window
    }

    public func isLocked(_ user: UserName, now: Date) -> Bool {
        recent.withLock { prune(&$0, user, now).count >= failures }
    }

    /// Records one failure; returns true when this one locked the user.
    @discardableResult
    public func recordFailure(_ user: UserName, now: Date) -> Bool {
        recent.withLock { recent in
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
        recent.withLock { recent in
            let was = prune(&recent, user, now).count >= failures
            recent[user] = nil
            return was
        }
    }

    public func lockedUsers(now: Date) -> [UserName] {
        recent.withLock { recent in
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
