import Foundation
import GatehouseCore

/// What Lockbox needs to know about users: their baseline (standing) roles.
/// The Gateway adapts the policy directory to it; tests use a dictionary.
/// Later, managers, groups and tenants join here for approvals.
public protocol BaselineRoleSource: Sendable {
    /// The user's baseline roles, or `nil` when the user is not in the directory.
    func baselineRoles(of user: UserName) -> [String]?
}

/// The access-claim authority. Today a claim is the user's baseline roles;
/// the elevation workflow (requests, approvals, one-time secrets, grants bound
/// to a session) plugs in behind `claim(user:session:now:)` without changing
/// its callers.
public final class Lockbox: Sendable {
    private let directory: BaselineRoleSource

    public init(directory: BaselineRoleSource) {
        self.directory = directory
    }

    /// The caller's claim at `now`. A user missing from the directory gets an
    /// empty claim: default deny, every cmdlet refused.
    public func claim(user: UserName, session: SessionID, now: Date) -> AccessClaim {
        let roles = directory.baselineRoles(of: user) ?? []
        let grants = roles.map { RoleGrant(role: $0, scope: nil, expires: nil, source: .baseline) }
        return AccessClaim(user: user, session: session, issuedAt: now, grants: grants)
    }
}

/// A fixed user → roles table, for unit tests and the offline policy tester.
public struct StaticBaselineRoles: BaselineRoleSource {
    public let table: [UserName: [String]]
    public init(_ table: [UserName: [String]]) { self.table = table }
    public func baselineRoles(of user: UserName) -> [String]? { table[user] }
}
