import Foundation
import GatehouseCore
import Logging
import PAMAuth
import PAMWorkers
import Synchronization
import TestSupport
import XCTest

/// `PAMWorkerPool` with the real `gatehouse-pam-worker` under pam_wrapper,
/// and with stand-in workers (shell scripts writing to descriptor 3, where
/// a write is one packet) that break the protocol in each way the pool must
/// survive. Every worker the pool drops must be reaped, not left a zombie.
final class PAMWorkerPoolTests: XCTestCase {
    var stacks: PAMTestStacks!
    var worker = ""
    let logs = LogLines()
    var pools: [PAMWorkerPool] = []

    override func setUpWithError() throws {
        stacks = try PAMTestStacks()
        worker = try HelperProcess("gatehouse-pam-worker").path
    }

    override func tearDown() {
        for pool in pools { pool.shutdown() }
        stacks?.remove()
    }

    func makePool(executable: String? = nil, capacity: Int = 8, idleLimit: Int = 4,
                  timeout: Duration = .seconds(30)) -> PAMWorkerPool {
        let sink = logs
        let logger = Logger(label: "pam-test") { _ in RecordingLogHandler(sink: sink) }
        let environment = ProcessInfo.processInfo.environment.merging(stacks.environment) { $1 }.map { "\($0)=\($1)" }
        let pool = PAMWorkerPool(executable: executable ?? worker, capacity: capacity, idleLimit: idleLimit,
                                 conversationTimeout: timeout, logger: logger, environment: environment)
        pools.append(pool)
        return pool
    }

    func authenticate(_ pool: PAMWorkerPool, _ conversation: PAMConversation,
                      service: String = "gh-password") throws {
        try pool.authenticate(service: service, user: "alice", remoteHost: "192.0.2.1", conversation: conversation)
    }

    /// No child of that pid is left to wait for: it was reaped.
    func isReaped(_ pid: pid_t) -> Bool {
        waitpid(pid, nil, WNOHANG) == -1 && errno == ECHILD
    }

    /// A stand-in worker: `body` in /bin/sh, with the pool's socket as descriptor 3.
    func script(_ body: String) throws -> String {
        let path = stacks.dir + "/worker-\(UUID().uuidString).sh"
        try "#!/bin/sh\n\(body)\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(chmod(path, 0o755), 0)
        return path
    }

    func testRightPasswordSucceedsAndTheWorkerIsKeptForTheNextLogin() throws {
        let pool = makePool()
        let first = ScriptedPAMConversation(answers: ["secret"])
        try authenticate(pool, first)
        XCTAssertEqual(first.messages, [PAMMessage(style: .promptEchoOff, text: "Password: ")])
        let pids = pool.processIDs
        XCTAssertEqual(pids.count, 1)
        try authenticate(pool, ScriptedPAMConversation(answers: ["secret"]))
        XCTAssertEqual(pool.processIDs, pids, "the idle worker was not reused")
    }

    /// A refusal by PAM is PAM's error, and the worker stays in service.
    func testWrongPasswordFailsWithPAMsErrorAndKeepsTheWorker() throws {
        let pool = makePool()
        XCTAssertThrowsError(try authenticate(pool, ScriptedPAMConversation(answers: ["wrong"]))) { error in
            XCTAssertEqual((error as? PAMError)?.code, PAMError.authError, "\(error)")
            XCTAssertEqual((error as? PAMError)?.operation, "pam_authenticate")
        }
        let pids = pool.processIDs
        try authenticate(pool, ScriptedPAMConversation(answers: ["secret"]))
        XCTAssertEqual(pool.processIDs, pids)
    }

    /// Two rounds (password, then a TOTP code) and notices all cross the
    /// process boundary with their styles.
    func testTwoRoundsAndNoticesAreRelayed() throws {
        let pool = makePool()
        let totp = ScriptedPAMConversation(answers: ["secret", try stacks.totp()])
        try authenticate(pool, totp, service: "gh-totp")
        XCTAssertEqual(totp.messages.map(\.style), [.promptEchoOff, .promptEchoOff])
        let chatty = ScriptedPAMConversation(answers: ["secret"])
        try authenticate(pool, chatty, service: "gh-chatty")
        XCTAssertTrue(chatty.messages.contains(PAMMessage(style: .textInfo, text: "Authentication succeeded")),
                      "\(chatty.messages)")
        XCTAssertEqual(chatty.messages.last?.style, .promptEchoOff)
    }

    /// The client's address reaches PAM as `PAM_RHOST`: pam_access refuses
    /// one source and lets another in. pam_access looks the account up, so
    /// the user is this process's own.
    func testTheRemoteHostReachesPAM() throws {
        let me = String(cString: getpwuid(getuid())!.pointee.pw_name)
        let dir = stacks.dir
        try "-:ALL:192.0.2.66\n+:ALL:ALL\n".write(toFile: dir + "/access.conf", atomically: true, encoding: .utf8)
        try "\(me):secret:gh-access\n".write(toFile: dir + "/passdb-gh-access", atomically: true, encoding: .utf8)
        try """
            auth required \(PAMTestStacks.matrix) passdb=\(dir)/passdb-gh-access
            account required /lib/x86_64-linux-gnu/security/pam_access.so accessfile=\(dir)/access.conf
            account required \(PAMTestStacks.matrix) passdb=\(dir)/passdb-gh-access

            """.write(toFile: stacks.serviceDir + "/gh-access", atomically: true, encoding: .utf8)
        let pool = makePool()
        XCTAssertThrowsError(try pool.authenticate(service: "gh-access", user: me, remoteHost: "192.0.2.66",
                                                   conversation: ScriptedPAMConversation(answers: ["secret"]))) { error in
            XCTAssertEqual((error as? PAMError)?.operation, "pam_acct_mgmt", "\(error)")
        }
        try pool.authenticate(service: "gh-access", user: me, remoteHost: "192.0.2.1",
                              conversation: ScriptedPAMConversation(answers: ["secret"]))
    }

    /// A client that gives up fails PAM's conversation; the worker is fine.
    func testAClientThatGivesUpFailsTheConversationNotTheWorker() throws {
        let pool = makePool()
        XCTAssertThrowsError(try authenticate(pool, ScriptedPAMConversation(answers: []))) { error in
            XCTAssertTrue(error is PAMError, "\(error)")
        }
        XCTAssertEqual(pool.processIDs.count, 1)
        XCTAssertTrue(logs.all.isEmpty, "\(logs.all)")
    }

    func testWorkerKilledMidConversationFailsThatLoginAndTheNextSucceedsOnAFreshWorker() throws {
        let pool = makePool()
        let killed = Mutex<pid_t>(0)
        let killing = RelayConversation { _ in
            let pid = pool.processIDs.first!
            killed.withLock { $0 = pid }
            kill(pid, SIGKILL)
            return ["secret"]
        }
        XCTAssertThrowsError(try authenticate(pool, killing)) { error in
            XCTAssertTrue(error is PAMWorkerError, "\(error)")
        }
        let pid = killed.withLock { $0 }
        XCTAssertTrue(isReaped(pid))
        XCTAssertTrue(pool.processIDs.isEmpty)
        XCTAssertTrue(logs.all.contains { $0.contains("PAM worker failed") && $0.contains("\(pid)") }, "\(logs.all)")

        try authenticate(pool, ScriptedPAMConversation(answers: ["secret"]))
        XCTAssertEqual(pool.processIDs.count, 1)
        XCTAssertFalse(pool.processIDs.contains(pid))
    }

    /// An idle worker that died is noticed when it would be lent, reaped,
    /// and replaced; the login does not pay for it.
    func testAnIdleWorkerThatDiedIsReplacedWithoutFailingALogin() throws {
        let pool = makePool()
        try authenticate(pool, ScriptedPAMConversation(answers: ["secret"]))
        let dead = try XCTUnwrap(pool.processIDs.first)
        kill(dead, SIGKILL)
        var info = siginfo_t()
        XCTAssertEqual(waitid(P_PID, id_t(dead), &info, WEXITED | WNOWAIT), 0)  // dead, not yet reaped
        try authenticate(pool, ScriptedPAMConversation(answers: ["secret"]))
        XCTAssertTrue(isReaped(dead))
        XCTAssertEqual(pool.processIDs.count, 1)
        XCTAssertFalse(pool.processIDs.contains(dead))
        XCTAssertTrue(logs.all.contains { $0.contains("idle PAM worker ended") }, "\(logs.all)")
    }

    /// N conversations at once, each waiting in its conversation call until
    /// all N are there: N worker processes are alive at that moment.
    func testConcurrentConversationsRunInTheirOwnWorkers() throws {
        let n = 3
        let pool = makePool()
        let barrier = Barrier(n)
        let seen = Mutex<Set<pid_t>>([])
        let outcomes = Mutex<[String]>([])
        let done = DispatchGroup()
        for _ in 0..<n {
            done.enter()
            Thread {
                let conversation = RelayConversation { _ in
                    barrier.arriveAndWait { seen.withLock { $0 = pool.processIDs } }
                    return ["secret"]
                }
                do {
                    try pool.authenticate(service: "gh-password", user: "alice", remoteHost: "192.0.2.1",
                                          conversation: conversation)
                    outcomes.withLock { $0.append("success") }
                } catch {
                    outcomes.withLock { $0.append("\(error)") }
                }
                done.leave()
            }.start()
        }
        done.wait()
        XCTAssertEqual(outcomes.withLock { $0 }, [String](repeating: "success", count: n))
        XCTAssertEqual(seen.withLock { $0.count }, n)
        XCTAssertFalse(seen.withLock { $0.contains(getpid()) })
    }

    /// Beyond its capacity the pool refuses a conversation instead of queueing it.
    func testAConversationBeyondTheCapacityFails() throws {
        let pool = makePool(capacity: 1)
        let nested = Mutex<String>("")
        let conversation = RelayConversation { _ in
            do {
                try pool.authenticate(service: "gh-password", user: "alice", remoteHost: "192.0.2.1",
                                      conversation: ScriptedPAMConversation(answers: ["secret"]))
                nested.withLock { $0 = "success" }
            } catch {
                nested.withLock { $0 = "\(error)" }
            }
            return ["secret"]
        }
        try authenticate(pool, conversation)
        XCTAssertEqual(nested.withLock { $0 }, "all 1 PAM workers are busy")
    }

    /// A worker that never answers (a module blocked, its client gone) is
    /// killed at the login grace time.
    func testASilentWorkerIsKilledAtTheDeadline() throws {
        let pool = makePool(executable: try script("exec sleep 1000"), timeout: .milliseconds(200))
        try expectWorkerFailure(pool, "no reply within the login grace time")
    }

    func testAWorkerSendingGarbageIsKilled() throws {
        let pool = makePool(executable: try script("printf 'junk' >&3\nexec sleep 1000"))
        try expectWorkerFailure(pool, "malformed message: protocol version 106")
    }

    func testAWorkerSendingAnOversizedPacketIsKilled() throws {
        let pool = makePool(executable: try script("dd if=/dev/zero bs=20000 count=1 2>/dev/null >&3\nexec sleep 1000"))
        try expectWorkerFailure(pool, "packet longer than \(PAMWorkerProtocol.maxPacketBytes) bytes")
    }

    /// A message only the daemon sends (cancel) coming from a worker.
    func testAWorkerSendingOutOfOrderIsKilled() throws {
        let pool = makePool(executable: try script("printf '\\001\\003' >&3\nexec sleep 1000"))
        try expectWorkerFailure(pool, "sent by a worker")
    }

    /// Whether the exit comes before the daemon's write (EPIPE), before its
    /// read (ECONNRESET: the packet sent was never read) or after (the end),
    /// it is the worker's failure.
    func testAWorkerThatExitsIsAFailure() throws {
        let pool = makePool(executable: try script("exit 0"))
        try expectWorkerFailure(pool, nil)
    }

    func testAMissingWorkerExecutableFailsTheLogin() throws {
        let pool = makePool(executable: stacks.dir + "/no-such-worker")
        try expectWorkerFailure(pool, "cannot start \(stacks.dir)/no-such-worker: No such file or directory")
    }

    /// The login fails as a worker failure naming `reason`, the worker is
    /// reaped, and the log says so.
    func expectWorkerFailure(_ pool: PAMWorkerPool, _ reason: String?, file: StaticString = #filePath,
                             line: UInt = #line) throws {
        let conversation = RelayConversation { _ in ["secret"] }
        XCTAssertThrowsError(try authenticate(pool, conversation), file: file, line: line) { error in
            XCTAssertTrue(error is PAMWorkerError, "\(error)", file: file, line: line)
            if let reason { XCTAssertTrue("\(error)".contains(reason), "\(error)", file: file, line: line) }
        }
        XCTAssertTrue(pool.processIDs.isEmpty, "\(pool.processIDs)", file: file, line: line)
        XCTAssertTrue(logs.all.contains { $0.contains("PAM worker") }, "\(logs.all)", file: file, line: line)
    }
}

/// A conversation answered by a closure.
final class RelayConversation: PAMConversation {
    let answer: ([PAMMessage]) -> [String?]?
    init(_ answer: @escaping ([PAMMessage]) -> [String?]?) { self.answer = answer }
    func converse(_ messages: [PAMMessage]) -> [String?]? { answer(messages) }
}

/// Lets N threads through only when all N have arrived; the last runs `onLast` first.
final class Barrier: Sendable {
    private let arrived = Mutex(0)
    private let gate = DispatchSemaphore(value: 0)
    private let count: Int

    init(_ count: Int) { self.count = count }

    func arriveAndWait(onLast: () -> Void) {
        let last = arrived.withLock { value in
            value += 1
            return value == count
        }
        if last {
            onLast()
            for _ in 0..<count { gate.signal() }
        }
        gate.wait()
    }
}

/// The log lines a test's pool wrote.
final class LogLines: Sendable {
    private let lines = Mutex<[String]>([])
    var all: [String] { lines.withLock { $0 } }
    func append(_ line: String) { lines.withLock { $0.append(line) } }
}

struct RecordingLogHandler: LogHandler {
    let sink: LogLines
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        sink.append("\(event.level) \(event.message) \((event.metadata ?? [:]).sorted { $0.key < $1.key })")
    }
}
