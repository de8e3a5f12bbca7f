// lockbox-race-helper: one process of the two-process store test
// (SQLiteStoreComplianceTests.testSeparateProcessesRaceForOneRequest).
//
//   lockbox-race-helper setup DB            → prints the id of a new approved request
//   lockbox-race-helper race DB ID START    → waits until START (Unix time), then tries the
//                                             approved → active compare-and-set once;
//                                             prints "won" or "lost"
import Foundation
import GatehouseCore
import Lockbox

let args = CommandLine.arguments
guard args.count >= 3 else { FileHandle.standardError.write(Data("usage\n".utf8)); exit(2) }
let store = try SQLiteLockboxStore(path: args[2])
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
