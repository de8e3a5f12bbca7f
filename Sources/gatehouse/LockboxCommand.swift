import ArgumentParser
import Foundation
import Gateway
import GatehouseCore
import Lockbox
import PostgresStore

/// `gatehouse lockbox list|show`: read the gateway's request store, e.g. to
/// review who was elevated where and why. Read-only: SQLite's WAL mode lets it
/// read while the daemon writes, and every change stays inside the gateway
/// shell, where it is authorized and audited.
struct LockboxTool: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lockbox", abstract: "List and show Lockbox elevation requests (read-only).",
        subcommands: [List.self, Show.self])

    struct Store: ParsableArguments {
        @Option(name: .long, help: "The gateway's state directory (holds lockbox.sqlite).")
        var stateDir: String = "/var/lib/gatehouse"

        @OptionGroup var shared: SharedStoreOption

        func open() throws -> LockboxStore {
            if let database = try shared.open() {
                return try PostgresLockboxStore(database: database)
            }
            let path = stateDir + "/lockbox.sqlite"
            guard FileManager.default.fileExists(atPath: path) else {
                throw ValidationError("no Lockbox store at \(path)")
            }
            return try SQLiteLockboxStore(path: path)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List requests, newest first.")
        @OptionGroup var store: Store
        @Option(name: .long, help: "Only this requester.") var user: String?
        @Option(name: .long, help: "Only this state (pending-manager, pending-customer, approved, active, denied, expired, revoked, cancelled).")
        var state: String?
        @Option(name: .long, help: "At most this many.") var limit: Int = 50

        func run() throws {
            var query = RequestQuery(limit: max(1, limit))
            if let user {
                guard let name = UserName(user) else { throw ValidationError("invalid user name '\(user)'") }
                query.requester = name
            }
            if let state {
                guard let s = RequestState(rawValue: state) else { throw ValidationError("unknown state '\(state)'") }
                query.states = [s]
            }
            let list = try store.open().requests(query)
            print(list.isEmpty ? "No requests." : LockboxFormat.table(list, now: Date()))
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one request with its approvals and end.")
        @OptionGroup var store: Store
        @Argument(help: "Request id.") var id: Int64

        func run() throws {
            guard let request = try store.open().request(id: id) else {
                throw ValidationError("no request \(id)")
            }
            print(LockboxFormat.detail(request, now: Date()))
        }
    }
}
