import Foundation
import GatehouseCore
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import Synchronization

/// The fleet's shared PostgreSQL, for callers on plain threads.
///
/// The Lockbox store, the lockouts and the index are synchronous APIs called
/// from the monitor's threads (its channel reader, the sweeper, the control
/// socket), never from an event loop. Each call borrows one connection,
/// sends its statements through postgres-nio's `EventLoopFuture` API and
/// `.wait()`s for each answer on the calling thread; the connections' I/O
/// runs on one event-loop thread of our own. That cannot deadlock: the only
/// thread that completes the futures never waits on one (NIO itself traps a
/// `.wait()` on an event loop), and a borrowed connection is used by one
/// thread at a time.
///
/// At most `maxConnections` connections (4 by default): the monitor's
/// concurrent callers are few (a command's claim, a Lockbox command, the
/// sweeper, the index feeder), and PostgreSQL pays a process per
/// connection, so N nodes cost 4N server processes. Connections open
/// lazily, are kept while healthy, and one that fails is dropped and
/// opened again on the next call, so the store comes back on its own when
/// the database does. A caller that finds every connection busy waits up to
/// `checkoutTimeout`; one that cannot connect gets an error naming the
/// server (never the password) after `connectTimeout`.
public final class FleetDatabase: Sendable {
    public let location: PostgresLocation
    let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    private let configuration: PostgresConnection.Configuration
    private let idle = Mutex<[PostgresConnection]>([])
    private let slots: DispatchSemaphore
    private let nextID = Atomic<Int>(1)
    private let checkoutTimeout: TimeInterval
    private let closed = Atomic<Bool>(false)
    /// The last failed connection attempt, when and why: for `retryDelay`
    /// after it every caller fails at once with the same words instead of
    /// waiting out its own `connectTimeout`. The monitor answers a session's
    /// claim on its channel's reading thread, so a database that drops
    /// packets must not stall every session for a timeout per command.
    private let lastConnectFailure = Mutex<(at: ContinuousClock.Instant, error: FleetDatabaseError)?>(nil)
    private let retryDelay: Duration

    /// - Parameter schema: the schema every connection works in (PostgreSQL's
    ///   `search_path`); nil for the role's default (`public`). Tests give
    ///   each case a schema of its own.
    public init(location: PostgresLocation, logger: Logger, schema: String? = nil, maxConnections: Int = 4,
                connectTimeout: TimeInterval = 5, checkoutTimeout: TimeInterval = 10,
                retryDelay: Duration = .seconds(1)) throws {
        self.location = location
        self.retryDelay = retryDelay
        self.logger = logger
        self.checkoutTimeout = checkoutTimeout
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        slots = DispatchSemaphore(value: maxConnections)
        let tls: PostgresConnection.Configuration.TLS
        do {
            switch location.tls {
            case .disable:
                tls = .disable
            case .require:
                var c = TLSConfiguration.makeClientConfiguration()
                c.certificateVerification = .none
                tls = .require(try NIOSSLContext(configuration: c))
            case .verifyFull:
                tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            }
        } catch {
            try? group.syncShutdownGracefully()
            throw FleetDatabaseError("cannot set up TLS for \(location.redacted): \(error)")
        }
        var c = PostgresConnection.Configuration(host: location.host, port: location.port, username: location.user,
                                                 password: location.password, database: location.database, tls: tls)
        c.options.connectTimeout = .milliseconds(Int64(connectTimeout * 1000))
        if location.tls == .verifyFull { c.options.tlsServerName = location.host }
        if let schema { c.options.additionalStartupParameters = [("search_path", schema)] }
        configuration = c
    }

    deinit { shutdown() }

    /// Closes every connection and stops the event loop.
    public func shutdown() {
        guard !closed.exchange(true, ordering: .relaxed) else { return }
        let connections = idle.withLock { list in defer { list = [] }; return list }
        for connection in connections { try? connection.close().wait() }
        try? group.syncShutdownGracefully()
    }

    /// Whether `FleetSchema.migrations` were applied by this process.
    private let schemaReady = Atomic<Bool>(false)

    /// Applies the fleet's migrations once per process (see `migrate`).
    /// Every public entry point calls it first, so a node that started
    /// while the database was away migrates as soon as it is back.
    public func ensureSchema() throws {
        guard !schemaReady.load(ordering: .acquiring) else { return }
        try migrate(FleetSchema.migrations)
        schemaReady.store(true, ordering: .releasing)
    }

    /// Runs `body` on one borrowed connection, the schema migrated.
    public func withConnection<T>(_ body: (Session) throws -> T) throws -> T {
        try ensureSchema()
        return try borrow(body)
    }

    /// Runs `body` inside BEGIN … COMMIT on one connection, the schema
    /// migrated; any error rolls back.
    public func transaction<T>(_ body: (Session) throws -> T) throws -> T {
        try ensureSchema()
        return try inTransaction(body)
    }

    private func borrow<T>(_ body: (Session) throws -> T) throws -> T {
        guard slots.wait(timeout: .now() + checkoutTimeout) == .success else {
            throw FleetDatabaseError("PostgreSQL at \(location.host):\(location.port): every connection stayed busy for \(Int(checkoutTimeout)) s")
        }
        defer { slots.signal() }
        let connection: PostgresConnection
        if let reused = idle.withLock({ $0.popLast() }), !reused.isClosed {
            connection = reused
        } else {
            connection = try connect()
        }
        let session = Session(connection: connection, database: self)
        do {
            let result = try body(session)
            if !connection.isClosed && !session.broken { idle.withLock { $0.append(connection) } }
            else { let _: EventLoopFuture<Void> = connection.close() }
            return result
        } catch {
            // A failed statement inside a transaction was rolled back by
            // `transaction`; a connection error leaves the connection unusable.
            if !connection.isClosed && !session.broken { idle.withLock { $0.append(connection) } }
            else { let _: EventLoopFuture<Void> = connection.close() }
            throw error
        }
    }

    private func inTransaction<T>(_ body: (Session) throws -> T) throws -> T {
        try borrow { session in
            try session.execute("BEGIN")
            do {
                let result = try body(session)
                try session.execute("COMMIT")
                return result
            } catch {
                do { try session.execute("ROLLBACK") } catch { session.broken = true }
                throw error
            }
        }
    }

    private func connect() throws -> PostgresConnection {
        if let failure = lastConnectFailure.withLock({ $0 }), ContinuousClock.now - failure.at < retryDelay {
            throw failure.error
        }
        let id = nextID.add(1, ordering: .relaxed).oldValue
        do {
            let connection = try PostgresConnection.connect(on: group.next(), configuration: configuration, id: id,
                                                            logger: logger).wait()
            lastConnectFailure.withLock { $0 = nil }
            return connection
        } catch {
            let failure = FleetDatabaseError("cannot connect to PostgreSQL at \(location.host):\(location.port) "
                                             + "(database \(location.database), user \(location.user)): \(Self.describe(error))")
            lastConnectFailure.withLock { $0 = (ContinuousClock.now, failure) }
            throw failure
        }
    }

    /// Words for a driver error: the server's message and SQLSTATE, or the
    /// connection's problem. PSQLError's own description hides everything;
    /// nothing here includes statement arguments or the password.
    static func describe(_ error: any Error) -> String {
        if let e = error as? PSQLError {
            if let info = e.serverInfo, let message = info[.message] {
                return "server said: \(message)" + (info[.sqlState].map { " (SQLSTATE \($0))" } ?? "")
            }
            if let underlying = e.underlying { return "\(e.code): \(underlying)" }
            return "\(e.code)"
        }
        return String(describing: error)
    }

    /// One borrowed connection. Not to be kept beyond the closure.
    public final class Session {
        let connection: PostgresConnection
        let database: FleetDatabase
        var broken = false

        init(connection: PostgresConnection, database: FleetDatabase) {
            self.connection = connection
            self.database = database
        }

        /// Runs one statement and returns its rows.
        @discardableResult
        public func query(_ sql: String, _ binds: PostgresBindings = PostgresBindings()) throws -> [PostgresRow] {
            try run(sql, binds).rows
        }

        /// Runs one statement; returns how many rows it changed (INSERT/UPDATE/DELETE).
        @discardableResult
        public func execute(_ sql: String, _ binds: PostgresBindings = PostgresBindings()) throws -> Int {
            try run(sql, binds).metadata.rows ?? 0
        }

        private func run(_ sql: String, _ binds: PostgresBindings) throws -> PostgresQueryResult {
            do {
                return try connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: database.logger).wait()
            } catch {
                if connection.isClosed { broken = true }
                if let e = error as? PSQLError, e.serverInfo == nil { broken = true }
                throw FleetDatabaseError("PostgreSQL at \(database.location.host):\(database.location.port): "
                                         + FleetDatabase.describe(error))
            }
        }
    }

    // MARK: - Notifications

    /// Calls `onNotify` whenever a transaction that sent a notification on
    /// `channel` commits (PostgreSQL's LISTEN/NOTIFY), from any node; and
    /// once after each (re)connection, for whatever was sent while nobody
    /// listened. One connection of its own, outside the pool, kept by a
    /// thread that waits for its end and connects again (after 1 s, doubling
    /// to 60 s while the database stays away; `stop()` ends the wait).
    public func listen(channel: String, onNotify: @escaping @Sendable () -> Void) -> FleetListener {
        let listener = FleetListener()
        let thread = Thread { [self] in
            var backoff = 1.0
            while !listener.isStopped {
                do {
                    let connection = try connect()
                    listener.current.withLock { $0 = connection }
                    connection.addListener(channel: channel) { _, _ in onNotify() }
                    _ = try connection.query(PostgresQuery(unsafeSQL: "LISTEN \(channel)"), logger: logger).wait()
                    onNotify()
                    backoff = 1
                    try? connection.closeFuture.wait()
                    listener.current.withLock { $0 = nil }
                    if !listener.isStopped {
                        logger.warning("lost the PostgreSQL notification connection; reconnecting",
                                       metadata: ["channel": "\(channel)"])
                    }
                } catch {
                    logger.warning("cannot listen for PostgreSQL notifications; retrying",
                                   metadata: ["channel": "\(channel)", "error": "\(error)", "retryIn": "\(Int(backoff))s"])
                }
                if listener.pause(seconds: backoff) { break }
                backoff = min(backoff * 2, 60)
            }
        }
        thread.name = "pg-listen"
        thread.start()
        return listener
    }

    // MARK: - Migrations

    /// One named schema change. Never edit one that has shipped: add another.
    public struct Migration: Sendable {
        public let name: String
        public let statements: [String]
        public init(_ name: String, _ statements: [String]) {
            self.name = name
            self.statements = statements
        }
    }

    /// Applies the migrations not yet recorded in `schema_migrations`, in
    /// order, in one transaction under a transaction-scoped advisory lock,
    /// so two nodes starting together apply each exactly once (the second
    /// waits for the first's COMMIT, then finds them recorded).
    public func migrate(_ migrations: [Migration]) throws {
        try inTransaction { s in
            try s.execute("SELECT pg_advisory_xact_lock(\(Self.migrationLockKey))")
            try s.execute("""
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())
                """)
            let applied = Set(try s.query("SELECT name FROM schema_migrations").map { try $0.decode(String.self) })
            for migration in migrations where !applied.contains(migration.name) {
                for statement in migration.statements { try s.execute(statement) }
                var binds = PostgresBindings()
                binds.append(migration.name)
                try s.execute("INSERT INTO schema_migrations(name) VALUES ($1)", binds)
                logger.notice("PostgreSQL migration applied", metadata: ["migration": "\(migration.name)"])
            }
        }
    }

    /// "gatehouse" in ASCII: the advisory lock every node's migration takes.
    static let migrationLockKey: Int64 = 0x6761_7465_686f_7573
}

/// A database problem, in words that name the server and never the password.
public struct FleetDatabaseError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The thread `FleetDatabase.listen` started, and a way to end it.
public final class FleetListener: Sendable {
    fileprivate let current = Mutex<PostgresConnection?>(nil)
    private let stopped = Atomic<Bool>(false)
    private let wake = DispatchSemaphore(value: 0)

    fileprivate var isStopped: Bool { stopped.load(ordering: .acquiring) }

    /// Sleeps `seconds` unless stopped first; true once stopped.
    fileprivate func pause(seconds: Double) -> Bool {
        if isStopped { return true }
        _ = wake.wait(timeout: .now() + seconds)
        return isStopped
    }

    public func stop() {
        stopped.store(true, ordering: .releasing)
        wake.signal()
        if let connection = current.withLock({ $0 }) { let _: EventLoopFuture<Void> = connection.close() }
    }
}
