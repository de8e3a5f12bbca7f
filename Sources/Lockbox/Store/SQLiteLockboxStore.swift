import Foundation
import GatehouseCore
import GRDB

/// The embedded `LockboxStore`: one SQLite file in WAL mode, through GRDB.
///
/// - Migrations are named and ordered and never edited once shipped
///   (`DatabaseMigrator`); add a new one to change the schema.
/// - Every state change is ONE conditional `UPDATE … WHERE id = ? AND state = ?`
///   inside a write transaction, so concurrent approvers or redeemers in one
///   process or in two processes on the same file cannot both win: SQLite
///   serialises writers, and the loser's `WHERE` matches no row.
/// - Writers wait up to `busyTimeout` for another process's write lock.
/// - Times are stored as seconds since 1970 (REAL), so range conditions are
///   plain numeric comparisons that the indexes serve.
public final class SQLiteLockboxStore: LockboxStore {
    private let pool: DatabasePool

    /// Opens (creating if needed) the database at `path` and migrates it.
    public init(path: String, busyTimeout: TimeInterval = 5) throws {
        var config = Configuration()
        config.busyMode = .timeout(busyTimeout)
        config.journalMode = .wal
        // Statement arguments stay out of error messages (GRDB's default); a
        // salt or hash must never reach a log.
        config.publicStatementArguments = false
        do {
            // The requests' secret hashes are the monitor's alone: the file
            // is created 0600 whatever the umask, and SQLite gives its -wal
            // and -shm files the database file's mode.
            let fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0o600)
            if fd >= 0 {
                fchmod(fd, 0o600)
                close(fd)
            }
            for suffix in ["-wal", "-shm"] { chmod(path + suffix, 0o600) }
            pool = try DatabasePool(path: path, configuration: config)
            try Self.migrator.migrate(pool)
        } catch {
            throw LockboxError.storage("cannot open \(path): \(error)")
        }
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("2026-11-29-requests") { db in
            try db.execute(sql: """
                CREATE TABLE request (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    requester TEXT NOT NULL,
                    role TEXT NOT NULL,
                    scope TEXT NOT NULL,
                    duration_s INTEGER NOT NULL,
                    reason TEXT NOT NULL,
                    ticket TEXT,
                    state TEXT NOT NULL,
                    needs_customer INTEGER NOT NULL,
                    created_at REAL NOT NULL,
                    deadline REAL,
                    manager_approver TEXT,
                    manager_comment TEXT,
                    customer_approver TEXT,
                    customer_comment TEXT,
                    approved_at REAL,
                    secret_salt BLOB,
                    secret_hash BLOB,
                    credential_issued_at REAL,
                    session TEXT,
                    activated_at REAL,
                    expires_at REAL,
                    ended_at REAL,
                    ended_by TEXT,
                    end_reason TEXT
                );
                CREATE INDEX request_session_state ON request(session, state);
                CREATE INDEX request_state_deadline ON request(state, deadline);
                CREATE INDEX request_requester ON request(requester, id);
                """)
        }
        // Grants know their node (issue 13): the node whose session redeemed it.
        m.registerMigration("2026-12-06-request-node") { db in
            try db.execute(sql: "ALTER TABLE request ADD COLUMN node TEXT")
        }
        return m
    }

    private func guarded<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as LockboxError { throw error } catch {
            throw LockboxError.storage(String(describing: error))
        }
    }

    public func insert(_ r: NewRequest, beforeCommit: (LockboxRequest) throws -> Void) throws -> LockboxRequest {
        try guarded {
            try pool.write { db in
                try db.execute(sql: """
                    INSERT INTO request (requester, role, scope, duration_s, reason, ticket, state, needs_customer,
                                         created_at, deadline)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [r.requester.rawValue, r.role, r.scope, r.durationSeconds, r.reason, r.ticket,
                                     RequestState.pendingManager.rawValue, r.needsCustomerApproval,
                                     r.createdAt.timeIntervalSince1970, r.pendingDeadline.timeIntervalSince1970])
                let id = db.lastInsertedRowID
                guard let row = try RequestRecord.fetchOne(db, sql: "SELECT * FROM request WHERE id = ?", arguments: [id])?
                    .request else { throw LockboxError.storage("inserted row \(id) vanished") }
                // Throwing here rolls the insert back (pool.write is one transaction).
                try beforeCommit(row)
                return row
            }
        }
    }

    public func request(id: Int64) throws -> LockboxRequest? {
        try guarded {
            try pool.read { db in
                try RequestRecord.fetchOne(db, sql: "SELECT * FROM request WHERE id = ?", arguments: [id])?.request
            }
        }
    }

    public func requests(_ query: RequestQuery) throws -> [LockboxRequest] {
        try guarded {
            var conditions: [String] = []
            var arguments: StatementArguments = []
            if let requester = query.requester {
                conditions.append("requester = ?")
                _ = arguments.append(contentsOf: [requester.rawValue])
            }
            if let states = query.states {
                guard !states.isEmpty else { return [] }
                conditions.append("state IN (" + states.map { _ in "?" }.joined(separator: ",") + ")")
                _ = arguments.append(contentsOf: StatementArguments(states.map(\.rawValue).sorted()))
            }
            let whereClause = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
            _ = arguments.append(contentsOf: [query.limit])
            // One SELECT needs no explicit transaction (unsafeRead skips
            // BEGIN/COMMIT). The text depends only on which conditions are
            // set, so each reader connection prepares each shape once:
            // preparing `SELECT *` of this table was about a tenth of a
            // login's instructions (every session end asks for its grants).
            return try pool.unsafeRead { db in
                let statement = try db.cachedStatement(sql: "SELECT * FROM request\(whereClause) ORDER BY id DESC LIMIT ?")
                return try RequestRecord.fetchAll(statement, arguments: arguments).map(\.request)
            }
        }
    }

    public func transition(id: Int64, from: RequestState, to: RequestState, changes c: RequestChanges,
                           onlyInSession session: SessionID?,
                           beforeCommit: (LockboxRequest) throws -> Void) throws -> LockboxRequest? {
        try guarded {
            var sets = ["state = ?"]
            var args: [DatabaseValueConvertible?] = [to.rawValue]
            func set(_ column: String, _ value: DatabaseValueConvertible?) {
                guard let value else { return }
                sets.append("\(column) = ?")
                args.append(value)
            }
            if c.clearDeadline { sets.append("deadline = NULL") } else { set("deadline", c.deadline?.timeIntervalSince1970) }
            set("manager_approver", c.managerApprover?.rawValue)
            set("manager_comment", c.managerComment)
            set("customer_approver", c.customerApprover?.rawValue)
            set("customer_comment", c.customerComment)
            set("approved_at", c.approvedAt?.timeIntervalSince1970)
            set("session", c.session?.rawValue)
            set("node", c.node)
            set("activated_at", c.activatedAt?.timeIntervalSince1970)
            set("expires_at", c.expiresAt?.timeIntervalSince1970)
            set("ended_at", c.endedAt?.timeIntervalSince1970)
            set("ended_by", c.endedBy?.rawValue)
            set("end_reason", c.endReason)
            var sql = "UPDATE request SET \(sets.joined(separator: ", ")) WHERE id = ? AND state = ?"
            args.append(id)
            args.append(from.rawValue)
            if let session {
                sql += " AND session = ?"
                args.append(session.rawValue)
            }
            // RETURNING gives the row exactly as this update left it, in the
            // same statement (no second read that could see a later change).
            return try pool.write { db in
                guard let row = try RequestRecord.fetchOne(db, sql: sql + " RETURNING *",
                                                           arguments: StatementArguments(args))?.request
                else { return nil }
                try beforeCommit(row)
                return row
            }
        }
    }

    public func setSecret(id: Int64, salt: [UInt8], hash: [UInt8], issuedAt: Date,
                          beforeCommit: () throws -> Void) throws -> Bool {
        try guarded {
            try pool.write { db in
                try db.execute(sql: """
                    UPDATE request SET secret_salt = ?, secret_hash = ?, credential_issued_at = ?
                    WHERE id = ? AND state = ? AND secret_hash IS NULL
                    """, arguments: [Data(salt), Data(hash), issuedAt.timeIntervalSince1970, id,
                                     RequestState.approved.rawValue])
                guard db.changesCount == 1 else { return false }
                try beforeCommit()
                return true
            }
        }
    }

    public func activeGrants(session: SessionID, now: Date) throws -> [ActiveGrant] {
        try guarded {
            // One SELECT is atomic on its own, so the read needs no explicit
            // transaction (unsafeRead skips BEGIN/COMMIT); the statement is
            // prepared once per reader connection and cached.
            try pool.unsafeRead { db in
                let statement = try db.cachedStatement(sql: """
                    SELECT id, role, scope, expires_at FROM request
                    WHERE session = ? AND state = 'active' AND expires_at > ? ORDER BY id
                    """)
                return try ActiveGrantRecord.fetchAll(statement, arguments: [session.rawValue, now.timeIntervalSince1970])
                    .map(\.grant)
            }
        }
    }

    public func due(now: Date, limit: Int) throws -> [LockboxRequest] {
        try guarded {
            // One SELECT, prepared once per reader connection (the sweeper asks at every deadline).
            try pool.unsafeRead { db in
                let statement = try db.cachedStatement(sql: """
                    SELECT * FROM request
                    WHERE state IN ('pending-manager', 'pending-customer', 'approved', 'active') AND deadline <= ?
                    ORDER BY id LIMIT ?
                    """)
                return try RequestRecord.fetchAll(statement, arguments: [now.timeIntervalSince1970, limit])
                    .map(\.request)
            }
        }
    }

    public func countsByState() throws -> [RequestState: Int] {
        try guarded {
            try pool.unsafeRead { db in
                var counts: [RequestState: Int] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM request GROUP BY state") {
                    // A state this build does not know is a corrupt row: said, not skipped.
                    let text: String = row["state"]
                    guard let state = RequestState(rawValue: text) else {
                        throw LockboxError.corruptRow(id: nil, column: "state", problem: "unknown state '\(text)'")
                    }
                    counts[state] = row["n"]
                }
                return counts
            }
        }
    }

    public func earliestDeadline() throws -> Date? {
        try guarded {
            // One MIN per non-terminal state, each answered by one seek into
            // the (state, deadline) index; a MIN over `state IN (...)` would
            // read every live row instead. MIN skips the NULL deadlines.
            try pool.unsafeRead { db in
                let statement = try db.cachedStatement(sql: """
                    SELECT MIN(deadline) FROM (
                        SELECT MIN(deadline) AS deadline FROM request WHERE state = 'pending-manager'
                        UNION ALL SELECT MIN(deadline) FROM request WHERE state = 'pending-customer'
                        UNION ALL SELECT MIN(deadline) FROM request WHERE state = 'approved'
                        UNION ALL SELECT MIN(deadline) FROM request WHERE state = 'active')
                    """)
                guard let seconds = try Double?.fetchOne(statement) ?? nil else { return nil }
                guard seconds.isFinite else {
                    throw LockboxError.corruptRow(id: nil, column: "deadline", problem: "not a finite time")
                }
                return Date(timeIntervalSince1970: seconds)
            }
        }
    }
}

/// One `request` row, decoded strictly. A row this code did not write (a hand
/// edit, a damaged file, a future schema) throws `LockboxError.corruptRow`
/// naming the row and the column: an unknown state or a malformed user name
/// must never turn into a default that could widen or end someone's access.
struct RequestRecord: FetchableRecord {
    let request: LockboxRequest

    init(row: Row) throws {
        let id: Int64 = try Self.column(row, "id", id: nil)
        func value<T: DatabaseValueConvertible>(_ column: String, _ type: T.Type = T.self) throws -> T {
            try Self.column(row, column, id: id)
        }
        func user(_ column: String) throws -> UserName? {
            guard let raw: String = try value(column) else { return nil }
            guard let name = UserName(raw) else {
                throw LockboxError.corruptRow(id: id, column: column, problem: "not a user name")
            }
            return name
        }
        func date(_ column: String) throws -> Date? {
            guard let seconds: Double = try value(column) else { return nil }
            guard seconds.isFinite else {
                throw LockboxError.corruptRow(id: id, column: column, problem: "not a finite time")
            }
            return Date(timeIntervalSince1970: seconds)
        }
        func required<T>(_ column: String, _ decoded: T?) throws -> T {
            guard let decoded else { throw LockboxError.corruptRow(id: id, column: column, problem: "is NULL") }
            return decoded
        }
        let rawState: String = try required("state", value("state"))
        guard let state = RequestState(rawValue: rawState) else {
            throw LockboxError.corruptRow(id: id, column: "state", problem: "not a request state")
        }
        let durationSeconds: Int = try required("duration_s", value("duration_s"))
        guard durationSeconds > 0 else {
            throw LockboxError.corruptRow(id: id, column: "duration_s", problem: "not a positive duration")
        }
        var r = LockboxRequest(
            id: id, requester: try required("requester", user("requester")),
            role: try required("role", value("role")), scope: try required("scope", value("scope")),
            durationSeconds: durationSeconds, reason: try required("reason", value("reason")),
            ticket: try value("ticket"), state: state,
            needsCustomerApproval: try required("needs_customer", value("needs_customer")),
            createdAt: try required("created_at", date("created_at")), deadline: try date("deadline"))
        r.managerApprover = try user("manager_approver")
        r.managerComment = try value("manager_comment")
        r.customerApprover = try user("customer_approver")
        r.customerComment = try value("customer_comment")
        r.approvedAt = try date("approved_at")
        r.secretSalt = try (value("secret_salt") as Data?).map { Array($0) }
        r.secretHash = try (value("secret_hash") as Data?).map { Array($0) }
        r.credentialIssuedAt = try date("credential_issued_at")
        r.session = try (value("session") as String?).map { SessionID(rawValue: $0) }
        r.node = try value("node")
        r.activatedAt = try date("activated_at")
        r.expiresAt = try date("expires_at")
        r.endedAt = try date("ended_at")
        r.endedBy = try user("ended_by")
        r.endReason = try value("end_reason")
        request = r
    }

    /// GRDB's throwing `decode`, with its error replaced by one that names the
    /// row and column (GRDB's own names neither in a way a log reader can act on).
    static func column<T: DatabaseValueConvertible>(_ row: Row, _ column: String, id: Int64?) throws -> T {
        do { return try row.decode(T.self, forColumn: column) } catch {
            throw LockboxError.corruptRow(id: id, column: column, problem: "holds the wrong type or is missing")
        }
    }
}

/// The columns `claim` reads, decoded as strictly as `RequestRecord`.
struct ActiveGrantRecord: FetchableRecord {
    let grant: ActiveGrant

    init(row: Row) throws {
        let id: Int64 = try RequestRecord.column(row, "id", id: nil)
        let seconds: Double = try RequestRecord.column(row, "expires_at", id: id)
        guard seconds.isFinite else {
            throw LockboxError.corruptRow(id: id, column: "expires_at", problem: "not a finite time")
        }
        grant = ActiveGrant(requestID: id, role: try RequestRecord.column(row, "role", id: id),
                            scope: try RequestRecord.column(row, "scope", id: id),
                            expiresAt: Date(timeIntervalSince1970: seconds))
    }
}
