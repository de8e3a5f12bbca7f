import Foundation
import GRDB

/// A SQLite index of sessions and commands, built from the audit log so that
/// reviewers can search fast: by user and time range, cmdlet, parameter
/// value, decision, node and Lockbox request id.
///
/// The log stays the source of truth. The index remembers how far it has
/// read (byte offset and the hash there) and catches up incrementally before
/// each query; if the log no longer continues from that point it is rebuilt.
/// `rebuild()` (`gatehouse audit reindex`) starts over.
public final class AuditIndex {
    public let logPath: String
    private let db: DatabaseQueue

    public init(path: String, logPath: String) throws {
        self.logPath = logPath
        do {
            var config = Configuration()
            config.label = "gatehouse.audit-index"
            // The index holds command lines and parameters: as private as the log.
            let previous = umask(0o077)
            defer { umask(previous) }
            db = try DatabaseQueue(path: path, configuration: config)
            try Self.migrator.migrate(db)
        } catch {
            throw AuditLogError.index("\(path): \(error)")
        }
    }

    /// Named, ordered migrations; never edit one that has shipped.
    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1-sessions-commands") { db in
            try db.execute(sql: """
                CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE sessions (
                    id TEXT PRIMARY KEY, user TEXT, node TEXT, client TEXT,
                    started REAL, ended REAL, endReason TEXT, startSeq INTEGER, endSeq INTEGER,
                    commands INTEGER NOT NULL DEFAULT 0, denied INTEGER NOT NULL DEFAULT 0);
                CREATE INDEX sessions_user_started ON sessions(user, started);
                CREATE INDEX sessions_started ON sessions(started);
                CREATE TABLE commands (
                    seq INTEGER PRIMARY KEY, session TEXT, user TEXT, time REAL NOT NULL,
                    cmdlet TEXT COLLATE NOCASE, line TEXT, decision TEXT NOT NULL, role TEXT, reason TEXT, stage TEXT,
                    scope TEXT, requestID INTEGER, argv TEXT, parameters TEXT,
                    exitStatus INTEGER, durationMs INTEGER, stdoutBytes INTEGER, stderrBytes INTEGER,
                    finishedSeq INTEGER);
                CREATE INDEX commands_user_time ON commands(user, time);
                CREATE INDEX commands_cmdlet_time ON commands(cmdlet, time);
                CREATE INDEX commands_session ON commands(session, seq);
                CREATE INDEX commands_request ON commands(requestID);
                CREATE TABLE parameters (commandSeq INTEGER NOT NULL, name TEXT NOT NULL COLLATE NOCASE, value TEXT NOT NULL);
                CREATE INDEX parameters_name_value ON parameters(name, value);
                CREATE INDEX parameters_command ON parameters(commandSeq);
                CREATE TABLE events (
                    seq INTEGER PRIMARY KEY, time REAL NOT NULL, kind TEXT NOT NULL, user TEXT, session TEXT,
                    requestID INTEGER, fields TEXT NOT NULL);
                CREATE INDEX events_session ON events(session, seq);
                CREATE INDEX events_request ON events(requestID);
                """)
        }
        return m
    }

    // MARK: - Building

    /// Reads what the log gained since the last call. Returns the number of
    /// records indexed.
    @discardableResult
    public func catchUp() throws -> Int {
        guard let handle = FileHandle(forReadingAtPath: logPath) else {
            throw AuditLogError.notFound("audit log \(logPath)")
        }
        defer { try? handle.close() }
        let (offset, lastHash) = try db.read { db -> (UInt64, String) in
            let o = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'offset'").flatMap { UInt64($0) } ?? 0
            let h = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'lastHash'") ?? AuditRecord.genesisHash
            return (o, h)
        }
        let size = (try? handle.seekToEnd()) ?? 0
        if size < offset { return try rebuild() }
        try handle.seek(toOffset: offset)
        let data = handle.readDataToEndOfFile()
        guard let lastNewline = data.lastIndex(of: 0x0a) else { return 0 }
        let complete = data[data.startIndex...lastNewline]
        var records: [AuditRecord] = []
        for line in complete.split(separator: 0x0a, omittingEmptySubsequences: true) {
            if let parsed = try? AuditRecord.parse(line: line) { records.append(parsed.record) }
        }
        if let first = records.first, first.prev != lastHash, offset > 0 {
            return try rebuild()
        }
        let newOffset = offset + UInt64(complete.count)
        try db.write { db in
            for record in records { try Self.index(record, db) }
            try db.execute(sql: "INSERT OR REPLACE INTO meta(key, value) VALUES ('offset', ?), ('lastHash', ?)",
                           arguments: [String(newOffset), records.last?.hash ?? lastHash])
        }
        return records.count
    }

    /// Drops everything and indexes the whole log again.
    @discardableResult
    public func rebuild() throws -> Int {
        try db.write { db in
            for table in ["meta", "sessions", "commands", "parameters", "events"] {
                try db.execute(sql: "DELETE FROM \(table)")
            }
        }
        return try catchUp()
    }

    private static func index(_ r: AuditRecord, _ db: Database) throws {
        // Statements are compiled once per connection: indexing a long log
        // is then bound by SQLite, not by parsing SQL.
        func exec(_ sql: String, _ arguments: StatementArguments) throws {
            try db.cachedStatement(sql: sql).execute(arguments: arguments)
        }
        let t = r.time.timeIntervalSince1970
        let f = r.fields
        switch r.kind {
        case "session.start":
            try exec("""
                INSERT OR REPLACE INTO sessions(id, user, node, client, started, startSeq) VALUES (?, ?, ?, ?, ?, ?)
                """, [r.session, r.user, f["node"], f["source"], t, r.seq])
        case "session.end":
            try exec("UPDATE sessions SET ended = ?, endReason = ?, endSeq = ? WHERE id = ?",
                           [t, f["reason"], r.seq, r.session])
        case "command.allowed", "command.denied":
            let allowed = r.kind == "command.allowed"
            try exec("""
                INSERT OR REPLACE INTO commands(seq, session, user, time, cmdlet, line, decision, role, reason, stage,
                    scope, requestID, argv, parameters)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, [r.seq, r.session, r.user, t, f["cmdlet"], f["line"], allowed ? "allow" : "deny",
                                 f["role"], f["reason"], f["stage"], f["scope"], f["requestID"].flatMap { Int64($0) },
                                 f["argv"], f["parameters"]])
            if let json = f["parameters"], let object = try? JSONValue.parse(Array(json.utf8)).object {
                for (name, value) in object {
                    try exec("INSERT INTO parameters(commandSeq, name, value) VALUES (?, ?, ?)",
                                   [r.seq, name, value.string ?? ""])
                }
            }
            try exec("UPDATE sessions SET commands = commands + 1, denied = denied + ? WHERE id = ?",
                           [allowed ? 0 : 1, r.session])
        case "command.finished":
            // Commands in one session run one at a time: the finish belongs to
            // the newest allowed command of that session not yet finished.
            try exec("""
                UPDATE commands SET exitStatus = ?, durationMs = ?, stdoutBytes = ?, stderrBytes = ?, finishedSeq = ?
                WHERE seq = (SELECT max(seq) FROM commands WHERE session = ? AND decision = 'allow'
                             AND finishedSeq IS NULL AND cmdlet IS ?)
                """, [f["exitStatus"].flatMap { Int($0) }, f["durationMs"].flatMap { Int($0) },
                                 f["stdoutBytes"].flatMap { Int($0) }, f["stderrBytes"].flatMap { Int($0) },
                                 r.seq, r.session, f["cmdlet"]])
        default:
            let fieldsJSON = String(decoding: JSONValue.object(f.mapValues { .string($0) }).canonicalBytes, as: UTF8.self)
            let request = (f["requestID"] ?? f["request"] ?? f["requestId"]).flatMap { Int64($0) }
            try exec("INSERT OR REPLACE INTO events(seq, time, kind, user, session, requestID, fields) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [r.seq, t, r.kind, r.user, r.session, request, fieldsJSON])
        }
    }

    // MARK: - Queries

    /// One indexed session.
    public struct SessionRow: Sendable {
        public let id: String
        public let user: String?
        public let node: String?
        public let client: String?
        public let started: Date?
        public let ended: Date?
        public let endReason: String?
        public let commands: Int
        public let denied: Int
    }

    /// What `sessions list` filters on; every condition must hold.
    public struct SessionFilter: Sendable {
        public var user: String?
        public var since: Date?
        public var until: Date?
        public var node: String?
        public var deniedOnly = false
        public var requestID: Int64?
        public init() {}
    }

    public func sessions(_ filter: SessionFilter) throws -> [SessionRow] {
        var clauses: [String] = []
        var args: [DatabaseValueConvertible?] = []
        if let user = filter.user { clauses.append("user = ?"); args.append(user) }
        if let since = filter.since { clauses.append("coalesce(ended, 1e18) >= ?"); args.append(since.timeIntervalSince1970) }
        if let until = filter.until { clauses.append("started <= ?"); args.append(until.timeIntervalSince1970) }
        if let node = filter.node { clauses.append("node = ?"); args.append(node) }
        if filter.deniedOnly { clauses.append("denied > 0") }
        if let request = filter.requestID {
            clauses.append("(id IN (SELECT session FROM commands WHERE requestID = ?) OR id IN (SELECT session FROM events WHERE requestID = ?))")
            args.append(request); args.append(request)
        }
        let sql = "SELECT * FROM sessions" + (clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND "))
            + " ORDER BY started"
        return try db.read { db in
            try Row.fetchAll(db, sql: sql, arguments: StatementArguments(args)).map(Self.sessionRow)
        }
    }

    public func session(id: String) throws -> SessionRow? {
        try db.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM sessions WHERE id = ?", arguments: [id]).map(Self.sessionRow)
        }
    }

    private static func sessionRow(_ row: Row) -> SessionRow {
        SessionRow(id: row["id"], user: row["user"], node: row["node"], client: row["client"],
                   started: (row["started"] as Double?).map(Date.init(timeIntervalSince1970:)),
                   ended: (row["ended"] as Double?).map(Date.init(timeIntervalSince1970:)),
                   endReason: row["endReason"], commands: row["commands"], denied: row["denied"])
    }

    /// One indexed command (allowed or denied).
    public struct CommandRow: Sendable {
        public let seq: Int
        public let session: String?
        public let user: String?
        public let time: Date
        public let cmdlet: String?
        public let line: String?
        public let decision: String
        public let role: String?
        public let reason: String?
        public let scope: String?
        public let requestID: Int64?
        public let argv: String?
        public let parameters: String?
        public let exitStatus: Int?
        public let durationMs: Int?
        public let stdoutBytes: Int?
        public let stderrBytes: Int?
        /// The node and audit file the row came from (the fleet's shared index; nil here).
        public var node: String? = nil
        public var logPath: String? = nil

        public init(seq: Int, session: String?, user: String?, time: Date, cmdlet: String?, line: String?,
                    decision: String, role: String?, reason: String?, scope: String?, requestID: Int64?, argv: String?,
                    parameters: String?, exitStatus: Int?, durationMs: Int?, stdoutBytes: Int?, stderrBytes: Int?,
                    node: String? = nil, logPath: String? = nil) {
            self.seq = seq; self.session = session; self.user = user; self.time = time; self.cmdlet = cmdlet
            self.line = line; self.decision = decision; self.role = role; self.reason = reason; self.scope = scope
            self.requestID = requestID; self.argv = argv; self.parameters = parameters; self.exitStatus = exitStatus
            self.durationMs = durationMs; self.stdoutBytes = stdoutBytes; self.stderrBytes = stderrBytes
            self.node = node; self.logPath = logPath
        }
    }

    /// What `audit search` filters on; every condition must hold.
    public struct CommandFilter: Sendable {
        public var cmdlet: String?
        /// Bound parameter name and value; each pair must match exactly.
        public var parameters: [(String, String)] = []
        public var user: String?
        public var since: Date?
        public var until: Date?
        /// `allow` or `deny`.
        public var decision: String?
        public var scope: String?
        public var requestID: Int64?
        public var session: String?
        public init() {}
    }

    public func commands(_ filter: CommandFilter) throws -> [CommandRow] {
        var clauses: [String] = []
        var args: [DatabaseValueConvertible?] = []
        if let cmdlet = filter.cmdlet { clauses.append("cmdlet = ?"); args.append(cmdlet) }
        for (name, value) in filter.parameters {
            clauses.append("seq IN (SELECT commandSeq FROM parameters WHERE name = ? AND value = ?)")
            args.append(name); args.append(value)
        }
        if let user = filter.user { clauses.append("user = ?"); args.append(user) }
        if let since = filter.since { clauses.append("time >= ?"); args.append(since.timeIntervalSince1970) }
        if let until = filter.until { clauses.append("time <= ?"); args.append(until.timeIntervalSince1970) }
        if let decision = filter.decision { clauses.append("decision = ?"); args.append(decision) }
        if let scope = filter.scope { clauses.append("scope = ?"); args.append(scope) }
        if let request = filter.requestID { clauses.append("requestID = ?"); args.append(request) }
        if let session = filter.session { clauses.append("session = ?"); args.append(session) }
        let sql = "SELECT * FROM commands" + (clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND "))
            + " ORDER BY seq"
        return try db.read { db in
            try Row.fetchAll(db, sql: sql, arguments: StatementArguments(args)).map { row in
                CommandRow(seq: row["seq"], session: row["session"], user: row["user"],
                           time: Date(timeIntervalSince1970: row["time"]), cmdlet: row["cmdlet"], line: row["line"],
                           decision: row["decision"], role: row["role"], reason: row["reason"], scope: row["scope"],
                           requestID: row["requestID"], argv: row["argv"], parameters: row["parameters"],
                           exitStatus: row["exitStatus"], durationMs: row["durationMs"],
                           stdoutBytes: row["stdoutBytes"], stderrBytes: row["stderrBytes"])
            }
        }
    }

    /// Any other event of a session (elevation, Lockbox, channel refusals…).
    public struct EventRow: Sendable {
        public let seq: Int
        public let time: Date
        public let kind: String
        public let requestID: Int64?
        public let fields: [String: String]

        public init(seq: Int, time: Date, kind: String, requestID: Int64?, fields: [String: String]) {
            self.seq = seq
            self.time = time
            self.kind = kind
            self.requestID = requestID
            self.fields = fields
        }
    }

    public func otherEvents(session: String) throws -> [EventRow] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM events WHERE session = ? ORDER BY seq", arguments: [session]).map { row in
                var fields: [String: String] = [:]
                if let json = row["fields"] as String?, let object = try? JSONValue.parse(Array(json.utf8)).object {
                    for (k, v) in object { fields[k] = v.string ?? "" }
                }
                return EventRow(seq: row["seq"], time: Date(timeIntervalSince1970: row["time"]), kind: row["kind"],
                                requestID: row["requestID"], fields: fields)
            }
        }
    }
}
