import Foundation

/// Where a Lockbox request stands. The raw values are stored in the database
/// and shown to users, so they are frozen once shipped.
public enum RequestState: String, Sendable, Codable, CaseIterable {
    /// Waiting for the requester's manager.
    case pendingManager = "pending-manager"
    /// The manager approved; waiting for the tenant's Customer Lockbox approver.
    case pendingCustomer = "pending-customer"
    /// Fully approved; the one-time secret may be fetched and redeemed.
    case approved
    /// Redeemed in one session; the grant's clock is running.
    case active
    case denied
    case expired
    case revoked
    case cancelled

    /// Terminal states never change again.
    public var isTerminal: Bool {
        switch self {
        case .pendingManager, .pendingCustomer, .approved, .active: return false
        case .denied, .expired, .revoked, .cancelled: return true
        }
    }

    /// The states still waiting for an approver.
    public var isPending: Bool { self == .pendingManager || self == .pendingCustomer }
}

/// Something that happens to a request. The state machine decides, from the
/// state alone, whether it may happen and what follows.
public enum RequestEvent: Sendable, Equatable {
    /// The manager approves. `customerLockbox` says whether the tenant's
    /// approver must act next (the tenant has Customer Lockbox on).
    case managerApprove(customerLockbox: Bool)
    /// The tenant's Customer Lockbox approver approves.
    case customerApprove
    /// An approver denies at their stage.
    case deny
    /// The requester redeems the one-time secret in a session.
    case redeem
    /// A deadline passed: pending TTL, redeem window or grant expiry.
    case expire
    /// An approver or admin withdraws the request or the running grant.
    case revoke
    /// The requester withdraws a request, leaves the elevation, or the session ends.
    case cancel

    var name: String {
        switch self {
        case .managerApprove: return "approve"
        case .customerApprove: return "approve"
        case .deny: return "deny"
        case .redeem: return "redeem"
        case .expire: return "expire"
        case .revoke: return "revoke"
        case .cancel: return "cancel"
        }
    }
}

/// The request lifecycle as one exhaustive function over (state, event).
///
/// Every combination is spelled out, so adding a state or an event does not
/// compile until someone decides what it means everywhere (the habit of
/// swift-nio-ssh's `UserAuthenticationStateMachine`). A refused combination
/// throws `LockboxError.illegalTransition`; the caller then changes nothing.
public enum RequestStateMachine {
    public static func next(_ state: RequestState, on event: RequestEvent) throws -> RequestState {
        switch (state, event) {
        // Waiting for the manager.
        case (.pendingManager, .managerApprove(let customerLockbox)):
            return customerLockbox ? .pendingCustomer : .approved
        case (.pendingManager, .deny): return .denied
        case (.pendingManager, .expire): return .expired
        case (.pendingManager, .revoke): return .revoked
        case (.pendingManager, .cancel): return .cancelled
        case (.pendingManager, .customerApprove), (.pendingManager, .redeem):
            throw illegal(state, event)

        // Waiting for the tenant's approver.
        case (.pendingCustomer, .customerApprove): return .approved
        case (.pendingCustomer, .deny): return .denied
        case (.pendingCustomer, .expire): return .expired
        case (.pendingCustomer, .revoke): return .revoked
        case (.pendingCustomer, .cancel): return .cancelled
        case (.pendingCustomer, .managerApprove), (.pendingCustomer, .redeem):
            throw illegal(state, event)

        // Approved, not yet redeemed: the redeem window runs.
        case (.approved, .redeem): return .active
        case (.approved, .expire): return .expired
        case (.approved, .revoke): return .revoked
        case (.approved, .cancel): return .cancelled
        case (.approved, .managerApprove), (.approved, .customerApprove), (.approved, .deny):
            throw illegal(state, event)

        // Redeemed: the grant's clock runs.
        case (.active, .expire): return .expired
        case (.active, .revoke): return .revoked
        case (.active, .cancel): return .cancelled
        case (.active, .managerApprove), (.active, .customerApprove), (.active, .deny), (.active, .redeem):
            throw illegal(state, event)

        // Terminal: nothing moves them.
        case (.denied, _), (.expired, _), (.revoked, _), (.cancelled, _):
            throw illegal(state, event)
        }
    }

    static func illegal(_ state: RequestState, _ event: RequestEvent) -> LockboxError {
        .illegalTransition(from: state, event: event.name)
    }
}
