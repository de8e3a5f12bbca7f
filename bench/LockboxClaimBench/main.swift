// lockbox-claim-bench: the latency of Lockbox.claim(user:session:now:) on the
// SQLite store holding 100,000 historical requests.
//
//   make bench-lockbox        (release build, then this program)
//
// The store is filled with a realistic history: 100,000 requests from 2,000
// users, ~97% in terminal states, ~2% active grants bound to other sessions,
// ~1% pending. The measured session holds one active grant. Each sample is
// one claim() call, timed with the monotonic clock; the program prints
// p50/p90/p99/p99.9 and the maximum, for a session with a grant and for one
// without.
import Foundation
import GatehouseCore
import GRDB
import Lockbox

struct Baseline: BaselineRoleSource {
    func baselineRoles(of user: UserName) -> [String]? { ["MailboxReader"] }
}

struct NoAudit: AuditSink {
    func record(_ event: AuditEvent) throws {}
}

let arguments = CommandLine.arguments
let historical = arguments.count > 1 ? Int(arguments[1]) ?? 100_000 : 100_000
let samples = arguments.count > 2 ? Int(arguments[2]) ?? 50_000 : 50_000

let directory = NSTemporaryDirectory() + "gatehouse-claim-bench-" + UUID().uuidString
try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: directory) }
let path = directory + "/lockbox.sqlite"

// Create the schema through the store, then bulk-load history in one transaction.
_ = try SQLiteLockboxStore(path: path)
let now = Date()
let target = SessionID(rawValue: "bench-target-session")
do {
    let queue = try DatabaseQueue(path: path)
    try queue.write { db in
        let statement = try db.makeStatement(sql: """
            INSERT INTO request (requester, role, scope, duration_s, reason, ticket, state, needs_customer, created_at,
                                 deadline, session, activated_at, expires_at, ended_at, end_reason)
            VALUES (?, 'MailboxAdmin', ?, 3600, 'history', 'INC-1', ?, 1, ?, ?, ?, ?, ?, ?, ?)
            """)
        var rng = SystemRandomNumberGenerator()
        let terminal = ["expired", "revoked", "cancelled", "denied"]
        for i in 0..<historical {
            let created = now.timeIntervalSince1970 - Double.random(in: 0...(365 * 86_400), using: &rng)
            let roll = Int.random(in: 0..<100, using: &rng)
            let user = "user\(i % 2000)"
            let scope = i % 3 == 0 ? "fabrikam" : "contoso"
            let session = "s-\(i)"
            if roll < 2 {
                try statement.execute(arguments: [user, scope, "active", created, now.timeIntervalSince1970 + 3600,
                                                  session, created, now.timeIntervalSince1970 + 3600, nil, nil])
            } else if roll < 3 {
                try statement.execute(arguments: [user, scope, "pending-manager", created, now.timeIntervalSince1970 + 3600,
                                                  nil, nil, nil, nil, nil])
            } else {
                try statement.execute(arguments: [user, scope, terminal[roll % 4], created, nil, session, created,
                                                  created + 3600, created + 3600, "history"])
            }
        }
        try statement.execute(arguments: ["alice", "contoso", "active", now.timeIntervalSince1970, now.timeIntervalSince1970 + 3600,
                                          target.rawValue, now.timeIntervalSince1970, now.timeIntervalSince1970 + 3600, nil, nil])
    }
}

let store = try SQLiteLockboxStore(path: path)
let lockbox = Lockbox(directory: Baseline(), policy: .none, store: store, audit: NoAudit(), clock: SystemClock())
let alice = UserName("alice")!

func measure(_ session: SessionID, expectGrants: Int) -> [UInt64] {
    var nanos: [UInt64] = []
    nanos.reserveCapacity(samples)
    for _ in 0..<2_000 { _ = lockbox.claim(user: alice, session: session, now: Date()) } // warm-up
    for _ in 0..<samples {
        let start = DispatchTime.now().uptimeNanoseconds
        let claim = lockbox.claim(user: alice, session: session, now: Date())
        let end = DispatchTime.now().uptimeNanoseconds
        precondition(claim.grants.count == expectGrants, "unexpected claim \(claim.grants)")
        nanos.append(end - start)
    }
    return nanos.sorted()
}

func report(_ label: String, _ sorted: [UInt64]) {
    func pct(_ p: Double) -> String {
        let v = sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.down)))]
        return String(format: "%.1f", Double(v) / 1000)
    }
    print("\(label): n=\(sorted.count) p50=\(pct(0.5))µs p90=\(pct(0.9))µs p99=\(pct(0.99))µs "
          + "p99.9=\(pct(0.999))µs max=\(String(format: "%.1f", Double(sorted.last ?? 0) / 1000))µs")
}

print("Lockbox.claim on SQLite (WAL) with \(historical) historical requests, \(samples) samples each:")
report("  session with 1 active grant", measure(target, expectGrants: 2))
report("  session without grants     ", measure(SessionID(rawValue: "nobody"), expectGrants: 1))
