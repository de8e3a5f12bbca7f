import Foundation
import GatehouseCore

/// A new request as the Lockbox validated it; the store assigns the id.
public struct NewRequest: Sendable, Equatable {
    public let requester: UserName
    public let role: String
    public let scope: String
    public let durationSeconds: Int
    public let reason: String
    public let ticket: String?
    public let needsCustomerApproval: Bool
    public let createdAt: Date
    public let pendingDeadline: Date

    public init(requester: UserName, role: String, scope: String, durationSeconds: Int, reason: String,
                ticket: String?, needsCustomerApproval: Bool, createdAt: Date, pendingDeadline: Date) {
        self.requester = requester
        self.role = role
        self.scope = scope
        self.durationSeconds = durationSeconds
        self.reason = reason
        self.ticket = ticket
        self.needsCustomerApproval = needsCustomerApproval
        self.createdAt = createdAt
        self.pendingDeadline = pendingDeadline
    }
}

/// The fields one transition sets besides the state. `nil` leaves a field as
/// it is; `clearDeadline` sets the deadline to NULL (terminal states).
public struct RequestChanges: Sendable, Equatable {
    public var deadline: Date?
    public var clearDeadline = false
    public var managerApprover: UserName?
    public var managerComment: String?
    public var customerApprover: UserName?
    public var customerComment: String?
    public var approvedAt: Date?
    public var session: SessionID?
    /// The node of `session` (redemption).
    public var node: String?
    public var activatedAt: Date?
    public var expiresAt: Date?
    public var endedAt: Date?
    public var endedBy: UserName?
    public var endReason: String?

    public init() {}
}

/// Which requests to list.
public struct RequestQuery: Sendable, Equatable {
    public var requester: UserName?
    public var states: Set<RequestState>?
    public var limit: Int

    public init(requester: UserName? = nil, states: Set<RequestState>? = nil, limit: Int = 200) {
        self.requester = requester
        self.states = states
        self.limit = limit
    }
}

/// Where requests live. Every change is a compare-and-set on the state: the
/// update happens only if the request is still in `from`, so concurrent
/// approvers, concurrent redeemers and two gateway processes on one database
/// can never both win. The in-memory store (tests) and the SQLite store pass
/// the same compliance suite.
///
/// Each change takes a `beforeCommit` closure, run inside the change's
/// transaction with the row as the change left it: the Lockbox writes the
/// change's audit event there, and if that throws the change is rolled back
/// and the error rethrown. So no transition is stored without its event.
public protocol LockboxStore: Sendable {
    /// Stores a new request in `pending-manager` and returns it with its id.
    func insert(_ request: NewRequest, beforeCommit: (LockboxRequest) throws -> Void) throws -> LockboxRequest

    func request(id: Int64) throws -> LockboxRequest?

    /// Newest first.
    func requests(_ query: RequestQuery) throws -> [LockboxRequest]

    /// Moves request `id` from `from` to `to`, applying `changes`, only if it
    /// is still in `from` (and, when `session` is given, bound to it).
    /// Returns the updated request, or nil when the condition did not hold
    /// (someone else won the race, or the request is elsewhere now).
    func transition(id: Int64, from: RequestState, to: RequestState, changes: RequestChanges,
                    onlyInSession session: SessionID?,
                    beforeCommit: (LockboxRequest) throws -> Void) throws -> LockboxRequest?

    /// Sets the one-time secret's salt and hash, only while the request is
    /// `approved` and has no secret yet: a credential is issued at most once.
    /// `beforeCommit` runs only when the secret was set.
    func setSecret(id: Int64, salt: [UInt8], hash: [UInt8], issuedAt: Date,
                   beforeCommit: () throws -> Void) throws -> Bool

    /// The active grants bound to `session` that have not expired at `now`.
    /// This is the claim's hot path: one indexed read.
    func activeGrants(session: SessionID, now: Date) throws -> [ActiveGrant]

    /// Non-terminal requests whose deadline is at or before `now`.
    func due(now: Date, limit: Int) throws -> [LockboxRequest]

    /// The earliest deadline of a non-terminal request (pending TTL, redeem
    /// window or grant expiry), or nil when none is live: the sweeper sleeps
    /// until then instead of looking on an interval.
    func earliestDeadline() throws -> Date?

    /// How many requests are in each state (states with none are absent):
    /// the metrics' `gatehouse_lockbox_requests`.
    func countsByState() throws -> [RequestState: Int]
}

extension LockboxStore {
    /// A change with nothing to write beside it (tests, tools).
    public func insert(_ request: NewRequest) throws -> LockboxRequest {
        try insert(request, beforeCommit: { _ in })
    }

    public func transition(id: Int64, from: RequestState, to: RequestState, changes: RequestChanges,
                           onlyInSession session: SessionID?) throws -> LockboxRequest? {
        try transition(id: id, from: from, to: to, changes: changes, onlyInSession: session, beforeCommit: { _ in })
    }

    public func setSecret(id: Int64, salt: [UInt8], hash: [UInt8], issuedAt: Date) throws -> Bool {
        try setSecret(id: id, salt: salt, hash: hash, issuedAt: issuedAt, beforeCommit: {})
    }
}
