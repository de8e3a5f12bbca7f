import CmdletPolicy
import CmdletShell
import Directory
import Foundation
import GatehouseCore
import Lockbox
import TestSupport
import XCTest
@testable import Gateway

/// The Lockbox shell commands through the real interpreter's provider hook,
/// on an in-memory store with a manual clock.
final class LockboxCommandsTests: XCTestCase {
    final class Output: SensitiveOutput {
        var out = "", err = "", secret = ""
        func stdout(_ bytes: [UInt8]) { out += String(decoding: bytes, as: UTF8.self) }
        func stderr(_ bytes: [UInt8]) { err += String(decoding: bytes, as: UTF8.self) }
        func sensitive(_ bytes: [UInt8]) { secret += String(decoding: bytes, as: UTF8.self) }
    }

    final class PlainOutput: CommandOutput {
        var out = "", err = ""
        func stdout(_ bytes: [UInt8]) { out += String(decoding: bytes, as: UTF8.self) }
        func stderr(_ bytes: [UInt8]) { err += String(decoding: bytes, as: UTF8.self) }
    }

    /// As the gateway's `PolicyBundle` passes them to the loader.
    static let reserved = ShellBuiltins.reservedNames + LockboxCommands.names

    let clock = ManualClock()
    let audit = RecordingAuditSink()
    var lockbox: Lockbox!
    var interpreter: CmdletInterpreter!
    var snapshot: PolicySnapshot!

    override func setUpWithError() throws {
        snapshot = try PolicyLoader.load(sources: [
            .init(kind: .cmdlets, file: "c.yaml", text: """
            cmdlets:
              Get-Report:
                synopsis: A cmdlet the Admin role makes visible.
                backend: {executable: /bin/false, argv: []}
                output: text
            """),
            .init(kind: .roles, file: "r.yaml", text: """
            roles:
              Admin: {cmdlets: [Get-Report], maxDuration: 2h}
            """),
        ], libexecDirectory: "/x", reservedNames: Self.reserved, host: SystemHostInspector())
        let directory = try DirectoryLoader.load(text: """
        users:
          alice: {groups: [engineers], manager: bob, roles: [Admin]}
          bob: {groups: [managers], roles: []}
        tenants:
          fabrikam: {customerLockbox: false}
        """, file: "d.yaml")
        let rules = try LockboxPolicy.load(text: "roles:\n  Admin: {requestableBy: [engineers], approvals: [manager]}\n",
                                           file: "l.yaml", roles: snapshot.lockboxRoles)
        lockbox = Lockbox(directory: directory, policy: rules, store: InMemoryLockboxStore(), audit: audit, clock: clock)
        interpreter = CmdletInterpreter(audit: audit, clock: clock,
                                        commandProvider: LockboxCommands(lockbox: lockbox, clock: clock))
    }

    @discardableResult
    func run(_ user: String, _ line: String, output: CommandOutput = Output()) -> (Int32, CommandOutput) {
        let claim = lockbox.claim(user: UserName(user)!, session: SessionID(rawValue: "s-\(user)"), now: clock.now())
        let context = ExecutionContext(node: "n", stateDir: "/tmp", workingDirectory: "/tmp")
        guard case .completed(let status) = interpreter.run(line: Array(line.utf8), claim: claim, snapshot: snapshot,
                                                            context: context, output: output) else {
            XCTFail("session ended")
            return (-1, output)
        }
        return (status, output)
    }

    func testRequestApproveAndCredentialThroughTheShell() throws {
        let (status, out) = run("alice", "new-lockboxrequest -Role Admin -Sc fabrikam -Duration 90m -Reason 'disk full'")
        XCTAssertEqual(status, 0, (out as! Output).err)
        XCTAssertTrue((out as! Output).out.contains("Request 1 filed: Admin in fabrikam for 90m. Waiting for your manager."),
                      (out as! Output).out)
        // The line is audited like a cmdlet's, with its bound parameters (the
        // duration in seconds, as any duration parameter); the backend-less
        // provider has no argv.
        let line = try XCTUnwrap(audit.events(of: .commandAllowed).last)
        XCTAssertEqual(line.fields["cmdlet"], "New-LockboxRequest")
        XCTAssertEqual(line.fields["role"], "(Lockbox workflow)")
        XCTAssertEqual(line.fields["parameters"],
                       #"{"Duration":"5400","Reason":"disk full","Role":"Admin","Scope":"fabrikam"}"#)
        XCTAssertNil(line.fields["argv"])
        XCTAssertEqual(audit.events(of: .commandFinished).last?.fields["exitStatus"], "0")
        let pending = run("bob", "Get-LockboxRequest -Pending").1 as! Output
        XCTAssertTrue(pending.out.contains("1   pending-manager  alice"), pending.out)
        XCTAssertEqual(run("bob", "Approve-LockboxRequest 1").0, 0)
        let plain = PlainOutput()
        XCTAssertEqual(run("alice", "Get-LockboxCredential -Id 1", output: plain).0, ExitStatus.usage)
        XCTAssertTrue(plain.err.contains("only be shown on a session's own terminal"))
        let cred = run("alice", "Get-LockboxCredential -Id 1").1 as! Output
        XCTAssertEqual(cred.secret.trimmingCharacters(in: .whitespacesAndNewlines).count, 39)
        XCTAssertFalse(cred.out.contains(cred.secret.trimmingCharacters(in: .whitespacesAndNewlines)),
                       "the secret goes only to the sensitive channel")
        XCTAssertEqual(run("alice", "Exit-Elevation").0, 0)
    }

    func testRefusalsMapToExitStatuses() {
        let over = run("alice", "New-LockboxRequest -Role Admin -Scope fabrikam -Duration 3h -Reason x")
        XCTAssertEqual(over.0, ExitStatus.failure)
        XCTAssertTrue((over.1 as! Output).err.contains("maximum for Admin of 2h"))
        run("alice", "New-LockboxRequest -Role Admin -Scope fabrikam -Duration 1h -Reason x")
        let own = run("alice", "Approve-LockboxRequest -Id 1")
        XCTAssertEqual(own.0, ExitStatus.notPermitted)
        XCTAssertEqual(run("alice", "New-LockboxRequest -Role Admin -Duration soon").0, ExitStatus.usage)
        XCTAssertEqual(run("alice", "Approve-LockboxRequest -Id 1 -Id 1").0, ExitStatus.usage)
        XCTAssertEqual(run("alice", "Approve-LockboxRequest -Bogus 1").0, ExitStatus.usage)
        XCTAssertEqual(run("alice", "Get-LockboxRequest -Pending:yes").0, ExitStatus.usage)
        XCTAssertEqual(run("alice", "Exit-Elevation now").0, ExitStatus.usage)
    }

    func testLockboxLinesAreAuditedFirstAndFailClosed() throws {
        run("alice", "New-LockboxRequest -Role Admin -Scope fabrikam -Duration 1h -Reason x")
        XCTAssertEqual(run("bob", "approve-lockboxrequest -Id 1 -Comment ok").0, 0)
        let approve = try XCTUnwrap(audit.events(of: .commandAllowed).last)
        XCTAssertEqual(approve.fields["cmdlet"], "Approve-LockboxRequest", "the command's own spelling")
        XCTAssertEqual(approve.fields["requestID"], "1", "links the line to its request in the index")
        XCTAssertEqual(approve.fields["line"], "approve-lockboxrequest -Id 1 -Comment ok")
        let allowedSeq = try XCTUnwrap(audit.events.firstIndex { $0.kind == .commandAllowed && $0.fields["requestID"] == "1" })
        let approvedSeq = try XCTUnwrap(audit.events.firstIndex { $0.kind == .lockboxApproved })
        XCTAssertLessThan(allowedSeq, approvedSeq, "the line is on record before the Lockbox acts on it")
        // A line that does not bind is on record as refused at binding, as
        // any cmdlet's is, and nothing runs.
        let allowedBefore = audit.events(of: .commandAllowed).count
        XCTAssertEqual(run("alice", "Cancel-LockboxRequest -Bogus 1").0, ExitStatus.usage)
        let refused = try XCTUnwrap(audit.events(of: .commandDenied).last)
        XCTAssertEqual(refused.fields["cmdlet"], "Cancel-LockboxRequest")
        XCTAssertEqual(refused.fields["stage"], "bind")
        XCTAssertEqual(audit.events(of: .commandAllowed).count, allowedBefore)

        // No audit log, no Lockbox action.
        run("alice", "New-LockboxRequest -Role Admin -Scope fabrikam -Duration 1h -Reason y")
        audit.setFailing(true)
        let (status, out) = run("alice", "Cancel-LockboxRequest -Id 2")
        XCTAssertEqual(status, ExitStatus.auditUnavailable)
        XCTAssertEqual((out as! Output).err, "audit log unavailable; command refused\n")
        XCTAssertEqual(try lockbox.store.request(id: 2)?.state, .pendingManager)
    }

    func testPolicyCannotShadowTheLockboxCommands() {
        for name in LockboxCommands.names {
            let text = "cmdlets:\n  \(name):\n    synopsis: x\n    backend: {executable: /bin/false}\n"
            XCTAssertThrowsError(try PolicyLoader.load(sources: [.init(kind: .cmdlets, file: "c.yaml", text: text)],
                                                       libexecDirectory: "/x", reservedNames: Self.reserved, host: SystemHostInspector()), name) { error in
                XCTAssertTrue("\(error)".contains("c.yaml:2:3: error: '\(name)' is a built-in command"), "\(error)")
            }
        }
    }

    /// The Lockbox commands bind like every cmdlet: the Binder's own messages,
    /// its abbreviations, `Get-Help`, `Get-Command` and completion.
    func testLockboxCommandsAreBoundLikeCmdlets() throws {
        let wrongType = run("bob", "Approve-LockboxRequest -Id seven").1 as! Output
        XCTAssertEqual(wrongType.err, "-Id expects a whole number (ASCII digits only) (column 28)\n")
        let unknown = run("bob", "Approve-LockboxRequest -Bogus 1").1 as! Output
        XCTAssertTrue(unknown.err.hasPrefix("Approve-LockboxRequest has no parameter -Bogus"), unknown.err)
        let missing = run("alice", "New-LockboxRequest -Role Admin -Scope fabrikam -Duration 1h")
        XCTAssertEqual(missing.0, ExitStatus.usage)
        XCTAssertEqual((missing.1 as! Output).err, "missing mandatory parameter -Reason\n")

        // Abbreviated parameter names bind to the declared ones.
        let filed = run("alice", "New-LockboxRequest -Ro Admin -Sc fabrikam -Du 1h -Rea x")
        XCTAssertEqual(filed.0, 0, (filed.1 as! Output).err)
        XCTAssertEqual(run("bob", "Approve-LockboxRequest -I 1 -C ok").0, 0)
        XCTAssertEqual(try lockbox.store.request(id: 1)?.managerComment, "ok")

        let help = run("carol", "Get-Help New-LockboxRequest -Full").1 as! Output
        XCTAssertTrue(help.out.contains("NAME\n    New-LockboxRequest\n"), help.out)
        XCTAssertTrue(help.out.contains("-Duration  (duration, mandatory"), help.out)
        XCTAssertTrue(help.out.contains("-Scope  (string, mandatory, pattern [A-Za-z0-9]"), help.out)
        let commands = run("carol", "Get-Command").1 as! Output
        for name in LockboxCommands.names {
            XCTAssertTrue(commands.out.contains(name), "\(name) is listed for everyone: \(commands.out)")
        }

        let claim = lockbox.claim(user: UserName("carol")!, session: SessionID(rawValue: "c"), now: clock.now())
        let provided = LockboxCommands.declared.map(\.definition)
        func complete(_ typed: String) -> String {
            String(decoding: Completion.complete(line: Array(typed.utf8), claim: claim, snapshot: snapshot,
                                                 provided: provided), as: UTF8.self)
        }
        XCTAssertEqual(complete("New-LockboxRequest -Dur"), "ation ")
        XCTAssertEqual(complete("Get-LockboxRequest -P"), "ending ")
        XCTAssertEqual(complete("Approve-Lock"), "boxRequest ")
    }

    func testLexerStillGuardsProviderCommands() {
        let (status, out) = run("alice", "New-LockboxRequest -Reason $(id)")
        XCTAssertEqual(status, ExitStatus.usage)
        XCTAssertTrue((out as! Output).out.isEmpty)
        XCTAssertTrue(try lockbox.store.requests(RequestQuery()).isEmpty)
    }
}

/// lockbox.yaml is loaded and checked with the rest of the policy, so the
/// daemon, --check-config and `gatehouse policy check` refuse the same mistakes.
final class LockboxPolicyBundleTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    func copyOfRepositoryPolicies() throws -> String {
        let dir = NSTemporaryDirectory() + "gatehouse-bundle-" + UUID().uuidString
        try FileManager.default.copyItem(atPath: Self.repo.appendingPathComponent("policies").path, toPath: dir)
        return dir
    }

    func testRepositoryLockboxPolicyLoads() throws {
        let dir = try copyOfRepositoryPolicies()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bundle = try PolicyBundle.load(policyDirectory: dir, directoryFile: dir + "/directory.yaml", libexecDirectory: "/x",
                                           host: SystemHostInspector())
        let rule = try XCTUnwrap(bundle.lockboxPolicy.rule(for: "MailboxAdmin"))
        XCTAssertEqual(rule.maxDurationSeconds, 4 * 3600)
        XCTAssertEqual(rule.requestableBy, ["engineers"])
        XCTAssertTrue(rule.customerStage)
        XCTAssertNil(bundle.lockboxPolicy.rule(for: "MailboxReader"), "only listed roles can be requested")
    }

    func testLockboxPolicyMistakesAreReportedWithFileAndLine() throws {
        let dir = try copyOfRepositoryPolicies()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "roles:\n  MailboxAdmin:\n    requestableBy: [engineers]\n    approvals: [customer]\n"
            .write(toFile: dir + "/lockbox.yaml", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try PolicyBundle.load(policyDirectory: dir, directoryFile: dir + "/directory.yaml",
                                                   libexecDirectory: "/x", host: SystemHostInspector())) { error in
            XCTAssertTrue(String(describing: error).contains("lockbox.yaml:4:"), "\(error)")
            XCTAssertTrue(String(describing: error).contains("approvals must include manager"), "\(error)")
        }
    }
}
