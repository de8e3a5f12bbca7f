import Foundation
import GatehouseCore
import Synchronization

/// A `LockboxStore` in a dictionary behind a lock: for unit tests and the
/// offline policy tester. It honours the same compare-and-set contract as
/// the SQLite store (the compliance suite runs against both).
public final class InMemoryLockboxStore: LockboxStore {
    private struct Rows {
        var byID: [Int64: LockboxRequest] = [:]
        var nextID: Int64 = 1
    }

    private let table = Mutex(Rows())

    public init() {}

    public func insert(_ r: NewRequest, beforeCommit: (LockboxRequest) throws -> Void) throws -> LockboxRequest {
        try table.withLock { s in
            let row = LockboxRequest(id: s.nextID, requester: r.requester, role: r.role, scope: r.scope,
                                     durationSeconds: r.durationSeconds, reason: r.reason, ticket: r.ticket,
                                     state: .pendingManager, needsCustomerApproval: r.needsCustomerApproval,
                                     createdAt: r.createdAt, deadline: r.pendingDeadline)
            try beforeCommit(row)
            s.byID[s.nextID] = row
            s.nextID += 1
            return row
        }
    }

    public func request(id: Int64) throws -> LockboxRequest? { table.withLock { s in s.byID[id] } }

    public func requests(_ query: RequestQuery) throws -> [LockboxRequest] {
        table.withLock { s in
            s.byID.values
                .filter { query.requester == nil || $0.requester == query.requester }
                .filter { query.states?.contains($0.state) ?? true }
                .sorted { $0.id > $1.id }
                .prefix(query.limit)
                .map { $0 }
        }
    }

    public func transition(id: Int64, from: RequestState, to: RequestState, changes c: RequestChanges,
                           onlyInSession session: SessionID?,
                           beforeCommit: (LockboxRequest) throws -> Void) throws -> LockboxRequest? {
        try table.withLock { s in
            guard var row = s.byID[id], row.state == from else { return nil }
            if let session, row.session != session { return nil }
            row.state = to
            if c.clearDeadline { row.deadline = nil } else if let d = c.deadline { row.deadline = d }
            if let v = c.managerApprover { row.managerApprover = v }
            if let v = c.managerComment { row.managerComment = v }
            if let v = c.customerApprover { row.customerApprover = v }
            if let v = c.customerComment { row.customerComment = v }
            if let v = c.approvedAt { row.approvedAt = v }
            if let v = c.session { row.session = v }
            if let v = c.node { row.node = v }
            if let v = c.activatedAt { row.activatedAt = v }
            if let v = c.expiresAt { row.expiresAt = v }
            if let v = c.endedAt { row.endedAt = v }
            if let v = c.endedBy { row.endedBy = v }
            if let v = c.endReason { row.endReason = v }
            try beforeCommit(row)
            s.byID[id] = row
            return row
        }
    }

    public func setSecret(id: Int64, salt: [UInt8], hash: [UInt8], issuedAt: Date,
                          beforeCommit: () throws -> Void) throws -> Bool {
        try table.withLock { s in
            guard var row = s.byID[id], row.state == .approved, row.secretHash == nil else { return false }
            row.secretSalt = salt
            row.secretHash = hash
            row.credentialIssuedAt = issuedAt
            try beforeCommit()
            s.byID[id] = row
            return true
        }
    }

    public func activeGrants(session: SessionID, now: Date) throws -> [ActiveGrant] {
        table.withLock { s in
            s.byID.values.compactMap { row in
                guard row.state == .active, row.session == session, let e = row.expiresAt, now < e else { return nil }
                return ActiveGrant(requestID: row.id, role: row.role, scope: row.scope, expiresAt: e)
            }.sorted { $0.requestID < $1.requestID }
        }
    }

    public func due(now: Date, limit: Int) throws -> [LockboxRequest] {
        table.withLock { s in
            s.byID.values.filter { !$0.state.isTerminal && ($0.deadline.map { $0 <= now } ?? false) }
                .sorted { $0.id < $1.id }.prefix(limit).map { $0 }
        }
    }

    public func countsByState() throws -> [RequestState: Int] {
        table.withLock { s in s.byID.values.reduce(into: [:]) { $0[$1.state, default: 0] += 1 } }
    }

    public func earliestDeadline() throws -> Date? {
        table.withLock { s in s.byID.values.filter { !$0.state.isTerminal }.compactMap(\.deadline).min() }
    }
}
