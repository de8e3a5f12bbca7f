// lockbox-race-helper: one process of the two-process store test
// (SQLiteStoreComplianceTests.testSeparateProcessesRaceForOneRequest).
//
// DB is a SQLite file, or a postgres:// URL (the schema from
// GATEHOUSE_TEST_POSTGRES_SCHEMA): PostgresStoreComplianceTests races nodes
// through the shared database the same way.
//
//   lockbox-race-helper setup DB            → prints the id of a new approved request
//   lockbox-race-helper race DB ID START    → waits until START (Unix time), then tries the
//                                             approved → active compare-and-set once;
//                                             prints "won" or "lost"
import Foundation
import GatehouseCore
import Lockbox
import Logging
import PostgresStore

let args = CommandLine.arguments
guard args.count >= 3 else { FileHandle.standardError.write(Data("usage\n".utf8)); exit(2) }
let store: LockboxStore
if args[2].hasPrefix("postgres") {
    guard case .success(let location) = PostgresLocation.parse(args[2]) else { exit(2) }
    let database = try FleetDatabase(location: location, logger: Logger(label: "race"),
                                     schema: ProcessInfo.processInfo.environment["GATEHOUSE_TEST_POSTGRES_SCHEMA"],
                                     maxConnections: 1)
    store = try PostgresLockboxStore(database: database)
    // Connected before the start instant, so the race is the UPDATE's alone.
    _ = try store.request(id: 0)
} else {
    store = try SQLiteLockboxStore(path: args[2])
}
switch args[1] {
case "setup":
    let now = Date()
    let r = try store.insert(NewRequest(requester: UserName("alice")!, role: "MailboxAdmin", scope: "contoso",
                                        durationSeconds: 60, reason: "race", ticket: nil, needsCustomerApproval: false,
                                        createdAt: now, pendingDeadline: now + 3600))
    _ = try store.transition(id: r.id, from: .pendingManager, to: .approved, changes: RequestChanges(), onlyInSession: nil)
    print(r.id)
case "race":
    guard args.count == 5, let id = Int64(args[3]), let start = Double(args[4]) else { exit(2) }
    while Date().timeIntervalSince1970 < start { usleep(200) }
    var changes = RequestChanges()
    changes.session = SessionID(rawValue: "pid-\(getpid())")
    let won = try store.transition(id: id, from: .approved, to: .active, changes: changes, onlyInSession: nil) != nil
    print(won ? "won" : "lost")
default:
    exit(2)
}
