import Directory
import GatehouseCore

/// What Lockbox needs to know about users: their baseline (standing) roles.
/// The Gateway adapts the policy directory to it; tests use a dictionary.
public protocol BaselineRoleSource: Sendable {
    /// The user's baseline roles, or `nil` when the user is not in the directory.
    func baselineRoles(of user: UserName) -> [String]?
}

/// The directory facts approvals depend on: managers, groups and tenants.
public protocol LockboxDirectory: BaselineRoleSource {
    func manager(of user: UserName) -> UserName?
    func groups(of user: UserName) -> [String]
    /// The tenant's Customer Lockbox setting and approvers; nil for an unknown tenant.
    func tenant(named name: String) -> (customerLockbox: Bool, approvers: [UserName])?
    var tenantNames: [String] { get }
}

extension DirectoryModel: LockboxDirectory {
    public func baselineRoles(of user: UserName) -> [String]? { self.user(named: user)?.roles }
    public func manager(of user: UserName) -> UserName? { self.user(named: user)?.manager }
    public func groups(of user: UserName) -> [String] { self.user(named: user)?.groups ?? [] }
    public func tenant(named name: String) -> (customerLockbox: Bool, approvers: [UserName])? {
        tenants.first { $0.name == name }.map { ($0.customerLockbox, $0.approvers) }
    }
    public var tenantNames: [String] { tenants.map(\.name) }
}

/// A fixed user → roles table, for unit tests and the offline policy tester.
public struct StaticBaselineRoles: BaselineRoleSource {
    public let table: [UserName: [String]]
    public init(_ table: [UserName: [String]]) { self.table = table }
    public func baselineRoles(of user: UserName) -> [String]? { table[user] }
}

/// Receives every Lockbox audit event after it was recorded, e.g. to run the
/// policy's notification hook. Must not block for long and must not throw:
/// a failed notification is logged, never fatal.
public protocol LockboxNotifier: Sendable {
    func notify(_ event: AuditEvent)
}
