import Foundation
import GatehouseCore
import Lockbox
import NIOCore
import PostgresNIO

/// The fleet's `LockboxStore`: one PostgreSQL database shared by every node.
///
/// - Every transition is ONE conditional
///   `UPDATE … WHERE id = $1 AND state = $2 [AND session = $3] RETURNING *`
///   inside a transaction, and `beforeCommit` (the audit event) runs before
///   COMMIT; if it throws, the transaction rolls back. Under READ COMMITTED a
///   second updater of the same row waits for the first's row lock and then
///   re-checks the WHERE clause against the committed row, so when two
///   nodes race, the loser's condition no longer holds and it changes
///   nothing: one winner, with no lock held in any process.
/// - The credential is set the same way (`… AND secret_hash IS NULL`).
/// - Times are seconds since 1970 (double precision), as in the SQLite
///   store, so range conditions are plain comparisons the indexes serve.
/// - Rows are decoded strictly: a value this code did not write throws
///   `LockboxError.corruptRow` naming row and column.
/// - A database that cannot be reached throws `LockboxError.storage` with
///   the server's address (never the password): `claim` is then baseline
///   only and every Lockbox command is refused, until it answers again.
public final class PostgresLockboxStore: LockboxStore {
    let database: FleetDatabase

    /// Serves requests from the shared schema (`FleetSchema`). With
    /// `migrateNow` the schema is migrated here and a database that cannot be
    /// reached is an error; without it (the daemon, which must start and
    /// refuse elevation while the database is away) the first use migrates.
    public init(database: FleetDatabase, migrateNow: Bool = true) throws {
        self.database = database
        if migrateNow {
            do { try database.ensureSchema() } catch { throw LockboxError.storage("\(error)") }
        }
    }

    private func guarded<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as LockboxError { throw error } catch {
            throw LockboxError.storage(String(describing: error))
        }
    }

    static let columns = """
        id, requester, role, scope, duration_s, reason, ticket, state, needs_customer, created_at, deadline,
        manager_approver, manager_comment, customer_approver, customer_comment, approved_at, secret_salt,
        secret_hash, credential_issued_at, session, node, activated_at, expires_at, ended_at, ended_by, end_reason
        """

    public func insert(_ r: NewRequest, beforeCommit: (LockboxRequest) throws -> Void) throws -> LockboxRequest {
        try guarded {
            try database.transaction { s in
                var b = PostgresBindings()
                b.append(r.requester.rawValue); b.append(r.role); b.append(r.scope); b.append(r.durationSeconds)
                b.append(r.reason); b.append(r.ticket); b.append(RequestState.pendingManager.rawValue)
                b.append(r.needsCustomerApproval); b.append(r.createdAt.timeIntervalSince1970)
                b.append(r.pendingDeadline.timeIntervalSince1970)
                let rows = try s.query("""
                    INSERT INTO lockbox_request (requester, role, scope, duration_s, reason, ticket, state, needs_customer,
                                                 created_at, deadline)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING \(Self.columns)
                    """, b)
                guard let first = rows.first else { throw LockboxError.storage("INSERT returned no row") }
                let row = try Self.request(first)
                try beforeCommit(row)
                return row
            }
        }
    }

    public func request(id: Int64) throws -> LockboxRequest? {
        try guarded {
            try database.withConnection { s in
                var b = PostgresBindings()
                b.append(id)
                return try s.query("SELECT \(Self.columns) FROM lockbox_request WHERE id = $1", b).first.map(Self.request)
            }
        }
    }

    public func requests(_ query: RequestQuery) throws -> [LockboxRequest] {
        try guarded {
            var conditions: [String] = []
            var b = PostgresBindings()
            if let requester = query.requester {
                b.append(requester.rawValue)
                conditions.append("requester = $\(b.count)")
            }
            if let states = query.states {
                guard !states.isEmpty else { return [] }
                var marks: [String] = []
                for state in states.map(\.rawValue).sorted() {
                    b.append(state)
                    marks.append("$\(b.count)")
                }
                conditions.append("state IN (\(marks.joined(separator: ",")))")
            }
            b.append(query.limit)
            let whereClause = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
            return try database.withConnection { s in
                try s.query("SELECT \(Self.columns) FROM lockbox_request\(whereClause) ORDER BY id DESC LIMIT $\(b.count)", b)
                    .map(Self.request)
            }
        }
    }

    public func transition(id: Int64, from: RequestState, to: RequestState, changes c: RequestChanges,
                           onlyInSession session: SessionID?,
                           beforeCommit: (LockboxRequest) throws -> Void) throws -> LockboxRequest? {
        try guarded {
            var b = PostgresBindings()
            var sets: [String] = []
            func set(_ column: String, _ value: String?) {
                guard let value else { return }
                b.append(value); sets.append("\(column) = $\(b.count)")
            }
            func set(_ column: String, _ value: Date?) {
                guard let value else { return }
                b.append(value.timeIntervalSince1970); sets.append("\(column) = $\(b.count)")
            }
            b.append(to.rawValue); sets.append("state = $1")
            if c.clearDeadline { sets.append("deadline = NULL") } else { set("deadline", c.deadline) }
            set("manager_approver", c.managerApprover?.rawValue)
            set("manager_comment", c.managerComment)
            set("customer_approver", c.customerApprover?.rawValue)
            set("customer_comment", c.customerComment)
            set("approved_at", c.approvedAt)
            set("session", c.session?.rawValue)
            set("node", c.node)
            set("activated_at", c.activatedAt)
            set("expires_at", c.expiresAt)
            set("ended_at", c.endedAt)
            set("ended_by", c.endedBy?.rawValue)
            set("end_reason", c.endReason)
            b.append(id)
            var sql = "UPDATE lockbox_request SET \(sets.joined(separator: ", ")) WHERE id = $\(b.count)"
            b.append(from.rawValue)
            sql += " AND state = $\(b.count)"
            if let session {
                b.append(session.rawValue)
                sql += " AND session = $\(b.count)"
            }
            sql += " RETURNING \(Self.columns)"
            return try database.transaction { s in
                guard let first = try s.query(sql, b).first else { return nil }
                let row = try Self.request(first)
                try beforeCommit(row)
                return row
            }
        }
    }

    public func setSecret(id: Int64, salt: [UInt8], hash: [UInt8], issuedAt: Date,
                          beforeCommit: () throws -> Void) throws -> Bool {
        try guarded {
            try database.transaction { s in
                var b = PostgresBindings()
                b.append(ByteBuffer(bytes: salt)); b.append(ByteBuffer(bytes: hash)); b.append(issuedAt.timeIntervalSince1970); b.append(id)
                b.append(RequestState.approved.rawValue)
                let changed = try s.execute("""
                    UPDATE lockbox_request SET secret_salt = $1, secret_hash = $2, credential_issued_at = $3
                    WHERE id = $4 AND state = $5 AND secret_hash IS NULL
                    """, b)
                guard changed == 1 else { return false }
                try beforeCommit()
                return true
            }
        }
    }

    public func activeGrants(session: SessionID, now: Date) throws -> [ActiveGrant] {
        try guarded {
            try database.withConnection { s in
                var b = PostgresBindings()
                b.append(session.rawValue); b.append(now.timeIntervalSince1970)
                return try s.query("""
                    SELECT id, role, scope, expires_at FROM lockbox_request
                    WHERE session = $1 AND state = 'active' AND expires_at > $2 ORDER BY id
                    """, b).map { row in
                    let r = row.makeRandomAccess()
                    let id: Int64 = try Self.value(r, "id", id: nil)
                    guard let expires = try Self.date(r, "expires_at", id: id) else {
                        throw LockboxError.corruptRow(id: id, column: "expires_at", problem: "is NULL")
                    }
                    return ActiveGrant(requestID: id, role: try Self.value(r, "role", id: id),
                                       scope: try Self.value(r, "scope", id: id), expiresAt: expires)
                }
            }
        }
    }

    public func due(now: Date, limit: Int) throws -> [LockboxRequest] {
        try guarded {
            try database.withConnection { s in
                var b = PostgresBindings()
                b.append(now.timeIntervalSince1970); b.append(limit)
                return try s.query("""
                    SELECT \(Self.columns) FROM lockbox_request
                    WHERE state IN ('pending-manager', 'pending-customer', 'approved', 'active') AND deadline <= $1
                    ORDER BY id LIMIT $2
                    """, b).map(Self.request)
            }
        }
    }

    public func earliestDeadline() throws -> Date? {
        try guarded {
            try database.withConnection { s in
                let rows = try s.query("""
                    SELECT MIN(deadline) AS deadline FROM lockbox_request
                    WHERE state IN ('pending-manager', 'pending-customer', 'approved', 'active')
                    """)
                guard let row = rows.first else { return nil }
                return try Self.date(row.makeRandomAccess(), "deadline", id: nil)
            }
        }
    }

    public func countsByState() throws -> [RequestState: Int] {
        try guarded {
            try database.withConnection { s in
                var counts: [RequestState: Int] = [:]
                for row in try s.query("SELECT state, COUNT(*) AS n FROM lockbox_request GROUP BY state") {
                    let (text, n) = try row.decode((String, Int).self)
                    guard let state = RequestState(rawValue: text) else {
                        throw LockboxError.corruptRow(id: nil, column: "state", problem: "unknown state '\(text)'")
                    }
                    counts[state] = n
                }
                return counts
            }
        }
    }

    // MARK: - Strict decoding

    static func value<T: PostgresDecodable>(_ row: PostgresRandomAccessRow, _ column: String, id: Int64?,
                                            _ type: T.Type = T.self) throws -> T {
        guard row.contains(column) else {
            throw LockboxError.corruptRow(id: id, column: column, problem: "is missing")
        }
        do { return try row[column].decode(T.self) } catch {
            throw LockboxError.corruptRow(id: id, column: column, problem: "holds the wrong type or is NULL")
        }
    }

    static func date(_ row: PostgresRandomAccessRow, _ column: String, id: Int64?) throws -> Date? {
        guard let seconds: Double = try value(row, column, id: id) else { return nil }
        guard seconds.isFinite else { throw LockboxError.corruptRow(id: id, column: column, problem: "not a finite time") }
        return Date(timeIntervalSince1970: seconds)
    }

    static func request(_ postgresRow: PostgresRow) throws -> LockboxRequest {
        let row = postgresRow.makeRandomAccess()
        let id: Int64 = try value(row, "id", id: nil)
        func user(_ column: String) throws -> UserName? {
            guard let raw: String = try value(row, column, id: id) else { return nil }
            guard let name = UserName(raw) else { throw LockboxError.corruptRow(id: id, column: column, problem: "not a user name") }
            return name
        }
        func required<T>(_ column: String, _ decoded: T?) throws -> T {
            guard let decoded else { throw LockboxError.corruptRow(id: id, column: column, problem: "is NULL") }
            return decoded
        }
        let rawState: String = try value(row, "state", id: id)
        guard let state = RequestState(rawValue: rawState) else {
            throw LockboxError.corruptRow(id: id, column: "state", problem: "not a request state")
        }
        let duration: Int = try value(row, "duration_s", id: id)
        guard duration > 0 else { throw LockboxError.corruptRow(id: id, column: "duration_s", problem: "not a positive duration") }
        var r = LockboxRequest(
            id: id, requester: try required("requester", user("requester")),
            role: try value(row, "role", id: id), scope: try value(row, "scope", id: id),
            durationSeconds: duration, reason: try value(row, "reason", id: id),
            ticket: try value(row, "ticket", id: id), state: state,
            needsCustomerApproval: try value(row, "needs_customer", id: id),
            createdAt: try required("created_at", date(row, "created_at", id: id)),
            deadline: try date(row, "deadline", id: id))
        r.managerApprover = try user("manager_approver")
        r.managerComment = try value(row, "manager_comment", id: id)
        r.customerApprover = try user("customer_approver")
        r.customerComment = try value(row, "customer_comment", id: id)
        r.approvedAt = try date(row, "approved_at", id: id)
        r.secretSalt = try (value(row, "secret_salt", id: id) as Data?).map { Array($0) }
        r.secretHash = try (value(row, "secret_hash", id: id) as Data?).map { Array($0) }
        r.credentialIssuedAt = try date(row, "credential_issued_at", id: id)
        r.session = try (value(row, "session", id: id) as String?).map { SessionID(rawValue: $0) }
        r.node = try value(row, "node", id: id)
        r.activatedAt = try date(row, "activated_at", id: id)
        r.expiresAt = try date(row, "expires_at", id: id)
        r.endedAt = try date(row, "ended_at", id: id)
        r.endedBy = try user("ended_by")
        r.endReason = try value(row, "end_reason", id: id)
        return r
    }
}
