import Foundation
import GatehouseCore
import Gateway
import Lockbox
import Logging
import PostgresStore

/// The fleet's shared PostgreSQL (`store: postgres://…`), opened by the
/// monitor only: the network side never opens it (it inherits no password:
/// the configuration it receives omits it).
struct FleetStores {
    let database: FleetDatabase
    /// Other nodes' deadline changes wake this node's Lockbox sweeper.
    func listenForDeadlines(_ lockbox: Lockbox) -> FleetListener {
        database.listen(channel: FleetSchema.lockboxChannel) { [lockbox] in lockbox.deadlinesChanged() }
    }
    let feeder: PostgresIndexFeeder
    let shared: SharedStores

    /// Nil for the embedded SQLite store. Throws only for what the operator
    /// must fix (an unreadable password file); a database that is away is
    /// logged and the daemon starts, refusing elevation and second factors
    /// until it answers.
    static func open(_ configuration: GatewayConfiguration, logger: Logger) throws -> FleetStores? {
        guard var location = configuration.store else { return nil }
        if let file = configuration.storePasswordFile {
            var info = stat()
            guard stat(file, &info) == 0 else {
                throw GatewayStartupFailure("storePasswordFile \(file): \(String(cString: strerror(errno)))")
            }
            guard info.st_mode & 0o077 == 0 else {
                throw GatewayStartupFailure("storePasswordFile \(file): readable by group or others (mode "
                                            + String(info.st_mode & 0o777, radix: 8) + "); chmod 600 it")
            }
            guard let data = FileManager.default.contents(atPath: file) else {
                throw GatewayStartupFailure("storePasswordFile \(file): cannot read it")
            }
            let first = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).first ?? ""
            guard !first.isEmpty else { throw GatewayStartupFailure("storePasswordFile \(file): its first line is empty") }
            location.password = String(first)
        }
        let database = try FleetDatabase(location: location, logger: logger)
        let store = try PostgresLockboxStore(database: database, migrateNow: false)
        do {
            try database.ensureSchema()
            logger.notice("shared store ready", metadata: ["store": "\(location.redacted)", "node": "\(configuration.nodeName)"])
        } catch {
            logger.error("the shared PostgreSQL store is unreachable: elevation and second factors are refused until it answers",
                         metadata: ["store": "\(location.redacted)", "error": "\(error)"])
        }
        let feeder = PostgresIndexFeeder(index: PostgresAuditIndex(database: database), node: configuration.nodeName,
                                         logPath: configuration.auditLogPath, logger: logger)
        let shared = SharedStores(lockbox: store, lockouts: PostgresLockoutStore(database: database),
                                  auditWritten: { [feeder] in feeder.wake() })
        return FleetStores(database: database, feeder: feeder, shared: shared)
    }
}

struct GatewayStartupFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension PostgresLockoutStore: LockoutStore {}
