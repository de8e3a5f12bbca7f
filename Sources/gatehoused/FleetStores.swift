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
    let feeder: PostgresIndexFeeder
    let shared: SharedStores

    /// Other nodes' deadline changes wake this node's Lockbox sweeper.
    func listenForDeadlines(_ lockbox: Lockbox) -> FleetListener {
        database.listen(channel: FleetSchema.lockboxChannel) { [lockbox] in lockbox.deadlinesChanged() }
    }

    /// Nil for the embedded SQLite store. Throws only for what the operator
    /// must fix (an unreadable password file); a database that is away is
    /// logged and the daemon starts, refusing elevation and second factors
    /// until it answers.
    static func open(_ configuration: GatewayConfiguration, logger: Logger) throws -> FleetStores? {
        guard var location = configuration.store else { return nil }
        if let file = configuration.storePasswordFile {
            do {
                try location.readPassword(fromFile: file)
            } catch {
                throw GatewayStartupFailure("storePasswordFile \(file): \(error)")
            }
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
