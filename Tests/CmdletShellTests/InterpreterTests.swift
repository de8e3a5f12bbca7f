import CmdletPolicy
import CmdletShell
import Foundation
import GatehouseCore
import Synchronization
import TestSupport
import XCTest

final class InterpreterTests: XCTestCase {
    var snapshot: PolicySnapshot!
    var temp: TempDir!
    var audit: RecordingAuditSink!
    var interpreter: CmdletInterpreter!
    var context: ExecutionContext!
    let clock = ManualClock()

    override func setUpWithError() throws {
        snapshot = try shellSnapshot()
        temp = try TempDir()
        audit = RecordingAuditSink()
        interpreter = CmdletInterpreter(audit: audit, clock: clock)
        context = ExecutionContext(node: "gw1", stateDir: temp.path, workingDirectory: temp.path)
    }

    func run(_ line: String, roles: [RoleGrant] = [RoleGrant(role: "Reader"), RoleGrant(role: "QuotaAdmin")],
             output: BufferOutput = BufferOutput()) throws -> (LineOutcome, BufferOutput) {
        let claim = try makeClaim(roles, at: clock.now())
        let outcome = interpreter.run(line: bytes(line), claim: claim, snapshot: snapshot, context: context, output: output)
        return (outcome, output)
    }

    func testExactArgvReachesTheBackend() throws {
        let (outcome, out) = try run("Set-Mailbox bob -DisplayName 'Bob  Smith, Sales' -Mode normal")
        XCTAssertEqual(outcome, .completed(exitStatus: 0))
        XCTAssertEqual(out.outText, "[set]\n[bob]\n[--mode]\n[Normal]\n[--display-name]\n[Bob  Smith, Sales]\n")
        XCTAssertEqual(out.errText, "")
    }

    func testAllowedCommandIsAuditedBeforeAndAfter() throws {
        _ = try run("Get-Mailbox alice")
        let kinds = audit.events.map(\.kind)
        XCTAssertEqual(kinds, [.commandAllowed, .commandFinished])
        let allowed = try XCTUnwrap(audit.events.first)
        XCTAssertEqual(allowed.user, "alice")
        XCTAssertEqual(allowed.session, SessionID(rawValue: "sess01"))
        XCTAssertEqual(allowed.fields["cmdlet"], "Get-Mailbox")
        XCTAssertEqual(allowed.fields["role"], "Reader")
        let reader = try XCTUnwrap(snapshot.role(named: "Reader"))
        XCTAssertEqual(allowed.fields["rule"], "\(reader.file):\(reader.line)", "the deciding rule's place in the policy")
        XCTAssertEqual(allowed.fields["argv"], #"["/usr/bin/printf","[%s]\\n","get","--identity","alice"]"#)
        XCTAssertEqual(allowed.fields["parameters"], #"{"Identity":"alice"}"#)
        let finished = try XCTUnwrap(audit.events.last)
        XCTAssertEqual(finished.fields["exitStatus"], "0")
        XCTAssertEqual(finished.fields["stdoutBytes"], String("[get]\n[--identity]\n[alice]\n".utf8.count))
        XCTAssertEqual(finished.fields["timedOut"], "false")
    }

    func testCleanEnvironment() throws {
        let (_, out) = try run("Show-Environment")
        let lines = Set(out.outText.split(separator: "\n").map(String.init))
        XCTAssertEqual(lines, ["PATH=/usr/bin:/bin", "LANG=C.UTF-8", "GATEHOUSE_ACTOR=alice", "GATEHOUSE_NODE=gw1",
                               "GATEHOUSE_SESSION=sess01"])
    }

    func testFixedWorkingDirectory() throws {
        let (_, out) = try run("Get-Location")
        let expected = URL(fileURLWithPath: temp.path).resolvingSymlinksInPath().path
        XCTAssertEqual(URL(fileURLWithPath: out.outText.trimmingCharacters(in: .newlines)).resolvingSymlinksInPath().path,
                       expected)
    }

    func testExitStatusAndStderrAreRelayed() throws {
        let (outcome, out) = try run("Test-Failure")
        XCTAssertEqual(outcome, .completed(exitStatus: 3))
        XCTAssertEqual(out.errText, "oops\n")
        XCTAssertEqual(out.outText, "fine\n")
        let (killed, _) = try run("Stop-Self")
        XCTAssertEqual(killed, .completed(exitStatus: 128 + 9))
    }

    func testTimeoutKillsTheWholeProcessGroup() throws {
        let started = Date()
        let (outcome, out) = try run("Start-Sleep")
        XCTAssertEqual(outcome, .completed(exitStatus: 124))
        XCTAssertLessThan(Date().timeIntervalSince(started), 10)
        XCTAssertTrue(out.errText.contains("timed out after 1s"), out.errText)
        XCTAssertEqual(audit.events.last?.fields["timedOut"], "true")
        // The background sleep (same process group) is gone too.
        let pidText = try String(contentsOfFile: temp.file("background.pid"), encoding: .utf8)
        let pid = try XCTUnwrap(Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines)))
        var alive = true
        for _ in 0..<50 {
            let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
            // Gone, or a zombie waiting for init to reap it.
            if stat.isEmpty || stat.contains(") Z ") { alive = false; break }
            usleep(100_000)
        }
        XCTAssertFalse(alive, "background process \(pid) survived the timeout")
    }

    func testOutputCapShowsANotice() throws {
        let (outcome, out) = try run("Write-Lots")
        XCTAssertEqual(outcome, .completed(exitStatus: 0))
        XCTAssertEqual(out.out.count, 1024)
        XCTAssertTrue(out.errText.contains("[output truncated after 1024 bytes]"), out.errText)
        XCTAssertFalse(out.errText.contains("done"), "stderr past the cap is dropped too")
        XCTAssertEqual(audit.events.last?.fields["truncated"], "true")
        XCTAssertEqual(audit.events.last?.fields["stdoutBytes"], "100000")
    }

    func testDeniedLineStartsNothingAndIsAudited() throws {
        let (outcome, out) = try run("New-Marker")
        XCTAssertEqual(outcome, .completed(exitStatus: 126))
        XCTAssertFalse(FileManager.default.fileExists(atPath: temp.file("marker")))
        XCTAssertEqual(out.errText, "'New-Marker' is not permitted by your roles (Reader, QuotaAdmin).\n")
        XCTAssertEqual(audit.events.count, 1)
        let event = try XCTUnwrap(audit.events.first)
        XCTAssertEqual(event.kind, .commandDenied)
        XCTAssertEqual(event.fields["stage"], "authorize")
        XCTAssertEqual(event.fields["cmdlet"], "New-Marker")
        XCTAssertEqual(event.fields["line"], "New-Marker")
        // The same line with the right role does run.
        _ = try run("New-Marker", roles: [RoleGrant(role: "Creator")])
        XCTAssertTrue(FileManager.default.fileExists(atPath: temp.file("marker")))
    }

    func testParseAndUnknownErrorsAreAuditedWithExitStatus() throws {
        let (parse, out) = try run("Get-Mailbox ; Remove-Mailbox")
        XCTAssertEqual(parse, .completed(exitStatus: 2))
        XCTAssertEqual(out.errText, "';' is not allowed: one command per line (column 13)\n",
                       "without a terminal (exec) an error is one line, for scripts")
        let terminal = BufferOutput()
        terminal.terminalColumns = 80
        _ = try run("Get-Mailbox ; Remove-Mailbox", output: terminal)
        XCTAssertEqual(terminal.errText, "Get-Mailbox ; Remove-Mailbox\n            ^\n"
                       + "';' is not allowed: one command per line (column 13)\n", "on a terminal a caret points at it")
        let (unknown, _) = try run("rm -rf /")
        XCTAssertEqual(unknown, .completed(exitStatus: 127))
        XCTAssertEqual(audit.events.map(\.kind), [.commandDenied, .commandDenied, .commandDenied])
        XCTAssertEqual(audit.events.map { $0.fields["stage"] }, ["parse", "parse", "bind"])
    }

    func testAuditLineIsSanitised() throws {
        let claim = try makeClaim([RoleGrant(role: "Reader")])
        _ = interpreter.run(line: [0x58, 0x1b, 0x5b, 0x32, 0x4a, 0xff], claim: claim, snapshot: snapshot,
                            context: context, output: BufferOutput())
        XCTAssertEqual(audit.events.first?.fields["line"], "X\\x1b[2J\u{FFFD}")
    }

    func testAuditFailureRefusesTheCommand() throws {
        audit.setFailing(true)
        let (outcome, out) = try run("New-Marker", roles: [RoleGrant(role: "Creator")])
        XCTAssertEqual(outcome, .completed(exitStatus: 125))
        XCTAssertEqual(out.errText, "audit log unavailable; command refused\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: temp.file("marker")))
    }

    func testUnspawnableBackendIsReportedAndAudited() throws {
        let (outcome, out) = try run("Get-Missing")
        XCTAssertEqual(outcome, .completed(exitStatus: 127))
        XCTAssertEqual(out.errText, "Get-Missing: the backend could not be started.\n")
        XCTAssertEqual(audit.events.map(\.kind), [.commandAllowed, .commandFinished])
        XCTAssertNotNil(audit.events.last?.fields["error"])
    }

    func testBuiltinsAndEmptyLine() throws {
        XCTAssertEqual(try run("exit").0, .endSession)
        XCTAssertEqual(try run("   ").0, .completed(exitStatus: 0))
        let (_, out) = try run("Get-Command", roles: [RoleGrant(role: "Creator")])
        XCTAssertEqual(out.outText, "New-Marker  Touch a marker file.\n")
        XCTAssertEqual(try run("Enter-Elevation -Id 3").0, .completed(exitStatus: 1))
        XCTAssertEqual(audit.events, [], "built-ins and blank lines write no command event")

        let seen = RequestBox()
        let elevating = CmdletInterpreter(audit: audit, clock: clock, elevationHandler: { id, _ in
            seen.set(id)
            return 0
        })
        let claim = try makeClaim([])
        XCTAssertEqual(elevating.run(line: bytes("Enter-Elevation 9"), claim: claim, snapshot: snapshot,
                                     context: context, output: BufferOutput()), .completed(exitStatus: 0))
        XCTAssertEqual(seen.value, 9)
    }
}

final class RequestBox: Sendable {
    private let stored = Mutex<Int64?>(nil)
    func set(_ v: Int64) { stored.withLock { $0 = v } }
    var value: Int64? { stored.withLock { $0 } }
}

/// `runAs:` starts the backend through setpriv as another account, and JSON
/// backends are rendered by the formatters.
final class RunAsAndJSONTests: XCTestCase {
    func snapshot(_ cmdlets: String) throws -> PolicySnapshot {
        try PolicyLoader.load(sources: [.init(kind: .cmdlets, file: "cmdlets/t.yaml", text: cmdlets),
                                        .init(kind: .roles, file: "roles/t.yaml",
                                              text: "roles:\n  R:\n    cmdlets: [Get-Id]\n")],
                              libexecDirectory: "/unused", reservedNames: ShellBuiltins.reservedNames, host: SystemHostInspector())
    }

    func runLine(_ line: String, _ snapshot: PolicySnapshot) throws -> (LineOutcome, BufferOutput) {
        let temp = try TempDir()
        let output = BufferOutput()
        let outcome = CmdletInterpreter(audit: RecordingAuditSink(), clock: ManualClock())
            .run(line: bytes(line), claim: try makeClaim([RoleGrant(role: "R")]), snapshot: snapshot,
                 context: ExecutionContext(node: "n", stateDir: temp.path, workingDirectory: "/"), output: output)
        return (outcome, output)
    }

    func testRunAsUsesSetprivWithNumericIds() throws {
        guard geteuid() == 0 else { throw XCTSkip("changing account needs root") }
        guard FileManager.default.isExecutableFile(atPath: RunAsAccount.setprivPath) else {
            throw XCTSkip("\(RunAsAccount.setprivPath) is not installed")
        }
        let policy = try snapshot("""
        cmdlets:
          Get-Id:
            synopsis: Who runs me.
            backend:
              executable: /usr/bin/id
              argv: ["-u"]
              runAs: nobody
        """)
        guard case .allowed(let command) = evaluate(line: bytes("Get-Id"), claim: try makeClaim([RoleGrant(role: "R")]),
                                                    snapshot: policy,
                                                    context: ExecutionContext(node: "n", stateDir: "/s", workingDirectory: "/"))
        else { return XCTFail() }
        XCTAssertEqual(command.argv, ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                      "--no-new-privs", "--inh-caps=-all", "--", "/usr/bin/id", "-u"])
        let (outcome, out) = try runLine("Get-Id", policy)
        XCTAssertEqual(outcome, .completed(exitStatus: 0), out.errText)
        XCTAssertEqual(out.outText, "65534\n")
    }

    func testUnknownRunAsAccountIsALoadError() {
        XCTAssertThrowsError(try snapshot("""
        cmdlets:
          Get-Id:
            synopsis: Who runs me.
            backend:
              executable: /usr/bin/id
              runAs: no-such-account-here
        """))
    }

    func testJsonBackendIsRenderedAndBadJsonIsReported() throws {
        let policy = try snapshot("""
        cmdlets:
          Get-Id:
            synopsis: Objects.
            backend:
              executable: /usr/bin/printf
              argv: ['[\\173"Name":"x","N":2\\175,\\173"Name":"\\\\u001b]0;t\\\\u0007","N":1\\175]']
            output: json
        """)
        let (outcome, out) = try runLine("Get-Id | Sort-Object N", policy)
        XCTAssertEqual(outcome, .completed(exitStatus: 0), out.errText)
        XCTAssertEqual(out.outText, "Name         N\n------------ -\n\\x1b]0;t\\x07 1\nx            2\n")
        // Raw U+2028 and a C1 control inside a JSON string are valid JSON:
        // parsed as written, shown escaped.
        let raw = try snapshot("""
        cmdlets:
          Get-Id:
            synopsis: Objects with raw separators.
            backend:
              executable: /usr/bin/printf
              argv: ['[\\173"Name":"a\\342\\200\\250b\\302\\233c"\\175]']
            output: json
        """)
        let (rawStatus, rawOut) = try runLine("Get-Id | Format-List", raw)
        XCTAssertEqual(rawStatus, .completed(exitStatus: 0), rawOut.errText)
        XCTAssertEqual(rawOut.outText, "Name : a\\u{2028}b\\x9bc\n")
        let broken = try snapshot("""
        cmdlets:
          Get-Id:
            synopsis: Not JSON.
            backend:
              executable: /usr/bin/printf
              argv: ['[\\173oops']
            output: json
        """)
        let (status, err) = try runLine("Get-Id", broken)
        XCTAssertEqual(status, .completed(exitStatus: 1))
        XCTAssertEqual(err.errText, "Get-Id: the backend did not write valid JSON; nothing is shown\n")
    }
}
