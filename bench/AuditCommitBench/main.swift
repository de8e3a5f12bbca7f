// make bench-audit: events/s of ChainedAuditLog.record on a real file with
// fdatasync on, for 1, 8 and 64 threads recording at once, and how many
// fdatasync calls each event cost (group commit shares one among waiters).
#if canImport(Glibc)
import Glibc
#endif
import Crypto
import Foundation
import GatehouseCore
import Transcript

let perThread = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 200 : 200
let threadCounts = CommandLine.arguments.count > 2
    ? CommandLine.arguments[2].split(separator: ",").compactMap { Int($0) } : [1, 8, 64]
let directory = CommandLine.arguments.count > 3 ? CommandLine.arguments[3] : FileManager.default.currentDirectoryPath
let key = AuditSigningKey(privateKey: Curve25519.Signing.PrivateKey())

print("audit log: \(perThread) events per thread, fdatasync on, file in \(directory)")
print(String(repeating: "-", count: 72))
for threads in threadCounts {
    let path = directory + "/audit-commit-bench-\(getpid())-\(threads).log"
    defer { unlink(path); unlink(path + ".checkpoint") }
    let log = try ChainedAuditLog(path: path, key: key, checkpointInterval: nil)
    let start = Date()
    // Threads of their own: Dispatch's concurrentPerform runs only as many as there are cores.
    let done = DispatchSemaphore(value: 0)
    for t in 0..<threads {
        Thread.detachNewThread {
            for i in 0..<perThread {
                try! log.record(AuditEvent(time: Date(), kind: .commandAllowed, user: "bench\(t)",
                                           fields: ["command": "Get-Mailbox -Identity user\(i)", "thread": String(t)]))
            }
            done.signal()
        }
    }
    for _ in 0..<threads { done.wait() }
    let seconds = Date().timeIntervalSince(start)
    let events = threads * perThread
    print(String(format: "%3d threads  %6d events  %8.0f events/s  %.3f syncs/event", threads, events,
                 Double(events) / seconds, Double(log.synchronizations) / Double(events)))
    precondition(log.currentSeq == events)
}
