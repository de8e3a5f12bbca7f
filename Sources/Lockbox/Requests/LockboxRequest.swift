import Foundation
import GatehouseCore

/// One elevation request and everything that happened to it. The store keeps
/// one row per request; every field is set by exactly one transition.
///
/// The one-time secret itself is never part of this value: the store keeps
/// only its salt and SHA-256 hash (`secretSalt`, `secretHash`).
public struct LockboxRequest: Sendable, Equatable, Codable {
    public var id: Int64
    public var requester: UserName
    public var role: String
    /// The tenant the grant will be limited to.
    public var scope: String
    public var durationSeconds: Int
    public var reason: String
    public var ticket: String?
    public var state: RequestState
    /// Whether the tenant's Customer Lockbox approver must approve after the manager.
    public var needsCustomerApproval: Bool
    public var createdAt: Date
    /// When the current state lapses: the pending TTL, the redeem window or the
    /// grant's expiry. `nil` in terminal states.
    public var deadline: Date?
    public var managerApprover: UserName?
    public var managerComment: String?
    public var customerApprover: UserName?
    public var customerComment: String?
    public var approvedAt: Date?
    public var secretSalt: [UInt8]?
    public var secretHash: [UInt8]?
    public var credentialIssuedAt: Date?
    /// The session the grant is bound to once redeemed.
    public var session: SessionID?
    /// The gateway node that session lives on (set at redemption): a node's
    /// start-up sweep ends only its own orphaned grants.
    public var node: String?
    public var activatedAt: Date?
    /// The grant's end: redemption time + duration (the clock starts at redemption).
    public var expiresAt: Date?
    public var endedAt: Date?
    /// Who ended it (denier, revoker, requester) or nil for an expiry.
    public var endedBy: UserName?
    public var endReason: String?

    public init(id: Int64, requester: UserName, role: String, scope: String, durationSeconds: Int, reason: String,
                ticket: String?, state: RequestState, needsCustomerApproval: Bool, createdAt: Date, deadline: Date?) {
        self.id = id
        self.requester = requester
        self.role = role
        self.scope = scope
        self.durationSeconds = durationSeconds
        self.reason = reason
        self.ticket = ticket
        self.state = state
        self.needsCustomerApproval = needsCustomerApproval
        self.createdAt = createdAt
        self.deadline = deadline
    }

    /// The grant this request gives while active, as the claim carries it.
    public var grant: RoleGrant? {
        guard state == .active, let expiresAt else { return nil }
        return RoleGrant(role: role, scope: scope, expires: expiresAt, source: .elevation(requestID: id))
    }
}

/// What a session's active elevation looks like to `claim`: only what the
/// authorizer needs, read with one indexed query.
public struct ActiveGrant: Sendable, Equatable {
    public let requestID: Int64
    public let role: String
    public let scope: String
    public let expiresAt: Date

    public init(requestID: Int64, role: String, scope: String, expiresAt: Date) {
        self.requestID = requestID
        self.role = role
        self.scope = scope
        self.expiresAt = expiresAt
    }
}
