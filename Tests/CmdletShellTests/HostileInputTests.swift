import CmdletPolicy
import CmdletShell
import GatehouseCore
import Synchronization
import TestSupport
import XCTest

/// Deterministic random lines built from the characters that matter; the
/// evaluator must answer every one of them without crashing, and may only
/// ever allow lines whose argv elements all passed validation.
final class HostileInputTests: XCTestCase {
    struct LCG {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 33
        }
    }

    func testRandomLinesNeverCrashAndNeverSmuggleMetacharacters() throws {
        let snapshot = try shellSnapshot()
        let claim = try makeClaim([RoleGrant(role: "Reader"), RoleGrant(role: "QuotaAdmin")])
        let context = ExecutionContext(node: "gw1", stateDir: "/s", workingDirectory: "/")
        let pieces: [[UInt8]] = ["Get-Mailbox", "Set-Mailbox", " ", "\t", "-", "--", "-Identity", "-Id:", "-Mode",
                                 "'", "\"", "''", "alice", "1GB", "99999999999999999999", "$", "`", "|", ";", "(",
                                 "@", "#", "\u{2013}", "\u{201C}", "\u{202E}", "é", "日", "\n", "\r", "\0", "-Force",
                                 ":", "-ProhibitSendQuota", "bob"].map { Array($0.utf8) }
            + [[0xff], [0xc3], [0xe2, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80]]
        var rng = LCG(state: 0x5eed)
        var allowedCount = 0
        for _ in 0..<5000 {
            var line: [UInt8] = []
            for _ in 0..<Int(rng.next() % 12) { line += pieces[Int(rng.next() % UInt64(pieces.count))] }
            if case .allowed(let command) = evaluate(line: line, claim: claim, snapshot: snapshot, context: context) {
                allowedCount += 1
                for element in command.argv.dropFirst(2) {
                    XCTAssertFalse(element.unicodeScalars.contains { $0.value < 0x20 || "$`|;'\"".unicodeScalars.contains($0) },
                                   "smuggled into argv: \(element)")
                    XCTAssertFalse(element.hasPrefix("-") && !element.hasPrefix("--"), "value as option: \(element)")
                }
            }
        }
        XCTAssertGreaterThan(allowedCount, 0, "the generator should also produce some valid lines")
    }

    func testVeryLongAndDeepInputsAreBounded() throws {
        let snapshot = try shellSnapshot()
        let claim = try makeClaim([RoleGrant(role: "Reader")])
        let context = ExecutionContext(node: "n", stateDir: "/s", workingDirectory: "/")
        let many = Array(String(repeating: "'a' ", count: 1000).utf8)
        guard case .rejected(let r) = evaluate(line: Array("Get-Mailbox ".utf8) + many, claim: claim,
                                               snapshot: snapshot, context: context) else { return XCTFail() }
        XCTAssertEqual(r.stage, .bind)
        let huge = [UInt8](repeating: 0x41, count: 1 << 20)
        guard case .rejected(let big) = evaluate(line: huge, claim: claim, snapshot: snapshot, context: context)
        else { return XCTFail() }
        XCTAssertEqual(big.column, Lexer.maxLineBytes + 1)
    }
}

/// Records every backend start instead of spawning anything.
final class RecordingExecutor: CommandExecutor {
    private let started = Mutex<[ExecutionRequest]>([])
    var requests: [ExecutionRequest] { started.withLock { $0 } }
    func run(_ request: ExecutionRequest, output: CommandOutput, cancellation: CancellationFlag?) throws -> ExecutionResult {
        started.withLock { $0.append(request) }
        return ExecutionResult(exitStatus: 0, timedOut: false, cancelled: false, truncated: false,
                               stdoutBytes: 0, stderrBytes: 0)
    }
}

/// What the SSH exec path cannot carry (libssh cuts exec commands at NUL):
/// NUL and friends fed straight to the interpreter, with a recording backend.
final class InterpreterHostileTests: XCTestCase {
    func testNulAndControlBytesStartNothing() throws {
        let snapshot = try shellSnapshot()
        let claim = try makeClaim([RoleGrant(role: "Reader"), RoleGrant(role: "QuotaAdmin")])
        let executor = RecordingExecutor()
        let interpreter = CmdletInterpreter(audit: RecordingAuditSink(), clock: ManualClock(), executor: executor)
        let context = ExecutionContext(node: "n", stateDir: "/s", workingDirectory: "/")
        let lines: [[UInt8]] = [
            Array("Get-Mailbox alice\0; Set-Mailbox bob".utf8), Array("\0Get-Mailbox alice".utf8),
            Array("Get-Mailbox \0alice".utf8), Array("Get-Mailbox 'ali\0ce'".utf8), Array("Get-Mailbox -Identity:\0".utf8),
            Array("Get-Mailbox alice\0".utf8), [0], Array("Set-Mailbox alice -Mode Normal\0".utf8),
        ]
        for line in lines {
            let output = BufferOutput()
            let outcome = interpreter.run(line: line, claim: claim, snapshot: snapshot, context: context, output: output)
            XCTAssertEqual(outcome, .completed(exitStatus: 2), "\(line)")
            XCTAssertTrue(output.errText.contains("control character U+0000"), output.errText)
        }
        XCTAssertEqual(executor.requests.count, 0)
        // The same interpreter does start a legitimate line, with the exact argv.
        _ = interpreter.run(line: Array("Set-Mailbox alice -Mode strict -Force".utf8), claim: claim, snapshot: snapshot,
                            context: context, output: BufferOutput())
        XCTAssertEqual(executor.requests.map(\.argv), [["/usr/bin/printf", "[%s]\\n", "set", "alice", "--mode", "Strict", "--force"]])
    }
}
