import Foundation
import Logging
import PostgresNIO
import Synchronization
import Transcript

/// The fleet's review index: every node feeds its own audit log's sessions
/// and commands into shared tables keyed by (node, seq), each row naming the
/// node and the audit file it came from, so `gatehouse audit search` sees
/// every node while each node keeps its chained audit file and transcripts
/// locally (the files stay the source of truth, fetched and verified where
/// the row says they are).
///
/// Like the SQLite `AuditIndex`, a node remembers how far it has read (byte
/// offset and the hash there, per node); if its log no longer continues
/// from there, that node's rows are rebuilt. A catch-up is one transaction,
/// so a crash mid-way leaves the index as before it.
public final class PostgresAuditIndex: Sendable {
    let database: FleetDatabase

    public init(database: FleetDatabase) {
        self.database = database
    }

    /// Indexes what `logPath` gained since the last call for `node`;
    /// returns the number of records indexed.
    @discardableResult
    public func catchUp(node: String, logPath: String) throws -> Int {
        guard let handle = FileHandle(forReadingAtPath: logPath) else {
            throw FleetDatabaseError("cannot read the audit log \(logPath)")
        }
        defer { try? handle.close() }
        return try database.transaction { s in
            var key = PostgresBindings()
            key.append(node)
            // One feeder per node at a time: the row lock on its progress.
            try s.execute("""
                INSERT INTO audit_index_progress(node, log_path, byte_offset, last_hash) VALUES ($1, '', 0, '')
                ON CONFLICT (node) DO NOTHING
                """, key)
            let progress = try s.query("SELECT byte_offset, last_hash, log_path FROM audit_index_progress WHERE node = $1 FOR UPDATE",
                                       key).first!
            var (offset, lastHash, oldPath) = try progress.decode((Int, String, String).self)
            let size = Int((try? handle.seekToEnd()) ?? 0)
            func reset() throws {
                for table in ["audit_session", "audit_command", "audit_parameter"] {
                    try s.execute("DELETE FROM \(table) WHERE node = $1", key)
                }
                offset = 0
                lastHash = ""
            }
            if size < offset || oldPath != logPath { try reset() }
            func read() -> (Data, [AuditRecord]) {
                try? handle.seek(toOffset: UInt64(offset))
                let data = handle.readDataToEndOfFile()
                guard let lastNewline = data.lastIndex(of: 0x0a) else { return (Data(), []) }
                let complete = data[data.startIndex...lastNewline]
                var records: [AuditRecord] = []
                for line in complete.split(separator: 0x0a, omittingEmptySubsequences: true) {
                    if let parsed = try? AuditRecord.parse(line: line) { records.append(parsed.record) }
                }
                return (Data(complete), records)
            }
            var (complete, records) = read()
            if let first = records.first, offset > 0, first.prev != lastHash {
                // The log does not continue from where we were: start over.
                try reset()
                (complete, records) = read()
            }
            for record in records { try Self.index(record, node: node, logPath: logPath, s) }
            var done = PostgresBindings()
            done.append(node); done.append(logPath); done.append(offset + complete.count)
            done.append(records.last?.hash ?? lastHash)
            try s.execute("""
                UPDATE audit_index_progress SET log_path = $2, byte_offset = $3, last_hash = $4 WHERE node = $1
                """, done)
            return records.count
        }
    }

    private static func index(_ r: AuditRecord, node: String, logPath: String, _ s: FleetDatabase.Session) throws {
        let t = r.time.timeIntervalSince1970
        let f = r.fields
        var b = PostgresBindings()
        switch r.kind {
        case "session.start":
            b.append(node); b.append(r.session ?? ""); b.append(r.user); b.append(f["source"]); b.append(t)
            b.append(r.seq); b.append(logPath)
            try s.execute("""
                INSERT INTO audit_session(node, id, user_name, client, started, start_seq, log_path)
                VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (node, id) DO NOTHING
                """, b)
        case "session.end":
            b.append(node); b.append(r.session ?? ""); b.append(t); b.append(f["reason"]); b.append(r.seq)
            try s.execute("UPDATE audit_session SET ended = $3, end_reason = $4, end_seq = $5 WHERE node = $1 AND id = $2", b)
        case "command.allowed", "command.denied":
            let allowed = r.kind == "command.allowed"
            b.append(node); b.append(r.seq); b.append(r.session); b.append(r.user); b.append(t); b.append(f["cmdlet"])
            b.append(f["line"]); b.append(allowed ? "allow" : "deny"); b.append(f["role"]); b.append(f["reason"])
            b.append(f["stage"]); b.append(f["scope"]); b.append(f["requestID"].flatMap { Int($0) }); b.append(f["argv"])
            b.append(f["parameters"]); b.append(logPath)
            try s.execute("""
                INSERT INTO audit_command(node, seq, session, user_name, time, cmdlet, line, decision, role, reason, stage,
                                          scope, request_id, argv, parameters, log_path)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
                ON CONFLICT (node, seq) DO NOTHING
                """, b)
            if let json = f["parameters"], let object = try? JSONValue.parse(Array(json.utf8)).object {
                for (name, value) in object {
                    var p = PostgresBindings()
                    p.append(node); p.append(r.seq); p.append(name); p.append(value.string ?? "")
                    try s.execute("INSERT INTO audit_parameter(node, command_seq, name, value) VALUES ($1, $2, $3, $4)", p)
                }
            }
            var c = PostgresBindings()
            c.append(node); c.append(r.session ?? ""); c.append(allowed ? 0 : 1)
            try s.execute("UPDATE audit_session SET commands = commands + 1, denied = denied + $3 WHERE node = $1 AND id = $2", c)
        case "command.finished":
            b.append(node); b.append(f["exitStatus"].flatMap { Int($0) }); b.append(f["durationMs"].flatMap { Int($0) })
            b.append(f["stdoutBytes"].flatMap { Int($0) }); b.append(f["stderrBytes"].flatMap { Int($0) }); b.append(r.seq)
            b.append(r.session); b.append(f["cmdlet"])
            try s.execute("""
                UPDATE audit_command SET exit_status = $2, duration_ms = $3, stdout_bytes = $4, stderr_bytes = $5, finished_seq = $6
                WHERE node = $1 AND seq = (SELECT max(seq) FROM audit_command WHERE node = $1 AND session = $7
                    AND decision = 'allow' AND finished_seq IS NULL AND cmdlet IS NOT DISTINCT FROM $8)
                """, b)
        default:
            break
        }
    }

    /// Commands of every node matching `filter`, oldest first (by time, then node and seq).
    public func commands(_ filter: AuditIndex.CommandFilter, node: String? = nil) throws -> [AuditIndex.CommandRow] {
        var clauses: [String] = []
        var b = PostgresBindings()
        func add(_ clause: (String) -> String, _ value: String) { b.append(value); clauses.append(clause("$\(b.count)")) }
        if let cmdlet = filter.cmdlet { add({ "lower(cmdlet) = lower(\($0))" }, cmdlet) }
        for (name, value) in filter.parameters {
            b.append(name); let n = b.count
            b.append(value); let v = b.count
            clauses.append("EXISTS (SELECT 1 FROM audit_parameter p WHERE p.node = c.node AND p.command_seq = c.seq "
                           + "AND lower(p.name) = lower($\(n)) AND p.value = $\(v))")
        }
        if let user = filter.user { add({ "user_name = \($0)" }, user) }
        if let since = filter.since { b.append(since.timeIntervalSince1970); clauses.append("time >= $\(b.count)") }
        if let until = filter.until { b.append(until.timeIntervalSince1970); clauses.append("time <= $\(b.count)") }
        if let decision = filter.decision { add({ "decision = \($0)" }, decision) }
        if let scope = filter.scope { add({ "scope = \($0)" }, scope) }
        if let request = filter.requestID { b.append(request); clauses.append("request_id = $\(b.count)") }
        if let session = filter.session { add({ "session = \($0)" }, session) }
        if let node { add({ "node = \($0)" }, node) }
        let sql = "SELECT * FROM audit_command c" + (clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND "))
            + " ORDER BY time, node, seq"
        return try database.withConnection { s in
            try s.query(sql, b).map { row in
                let r = row.makeRandomAccess()
                func v<T: PostgresDecodable>(_ column: String, _ type: T.Type = T.self) throws -> T { try r[column].decode(T.self) }
                return AuditIndex.CommandRow(
                    seq: try v("seq"), session: try v("session"), user: try v("user_name"),
                    time: Date(timeIntervalSince1970: try v("time")), cmdlet: try v("cmdlet"), line: try v("line"),
                    decision: try v("decision"), role: try v("role"), reason: try v("reason"), scope: try v("scope"),
                    requestID: try v("request_id"), argv: try v("argv"), parameters: try v("parameters"),
                    exitStatus: try v("exit_status"), durationMs: try v("duration_ms"),
                    stdoutBytes: try v("stdout_bytes"), stderrBytes: try v("stderr_bytes"),
                    node: try v("node"), logPath: try v("log_path"))
            }
        }
    }
}

/// Keeps this node's part of the shared index current: `wake()` after each
/// audit event is written (cheap, never blocks); one thread of its own
/// catches up with the log whenever woken, so the database is never on a
/// command's path. Wake-ups during a catch-up coalesce into one more pass.
/// If the database is away, the next event's wake-up tries again.
public final class PostgresIndexFeeder: Sendable {
    private let index: PostgresAuditIndex
    private let node: String
    private let logPath: String
    private let logger: Logger
    private let pending = Atomic<Bool>(false)
    private let signal = DispatchSemaphore(value: 0)
    private let stopped = Atomic<Bool>(false)

    public init(index: PostgresAuditIndex, node: String, logPath: String, logger: Logger) {
        self.index = index
        self.node = node
        self.logPath = logPath
        self.logger = logger
    }

    public func wake() {
        if !pending.exchange(true, ordering: .acquiringAndReleasing) { signal.signal() }
    }

    public func start() {
        let thread = Thread { [self] in
            while true {
                signal.wait()
                if stopped.load(ordering: .acquiring) { return }
                pending.store(false, ordering: .releasing)
                do {
                    try index.catchUp(node: node, logPath: logPath)
                } catch {
                    logger.warning("shared review index not updated; retried at the next audit event",
                                   metadata: ["error": "\(error)"])
                }
            }
        }
        thread.name = "index-feeder"
        thread.start()
    }

    public func stop() {
        stopped.store(true, ordering: .releasing)
        signal.signal()
    }
}
