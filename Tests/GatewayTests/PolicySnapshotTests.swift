import CmdletPolicy
import Foundation
import GatehouseCore
import Logging
import Synchronization
import TestSupport
import XCTest
import CmdletShell
@testable import Gateway

/// A reload is one snapshot: policy, directory, keys and Lockbox rules are
/// replaced together, so nothing ever sees a new policy with an old directory.
class PolicySnapshotTestCase: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let alice = UserName("alice")!
    var root = ""

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "gatehouse-snapshot-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.repo.appendingPathComponent("policies").path,
                                         toPath: root + "/policies")
        let directory = root + "/policies/directory.yaml"
        let text = try String(contentsOfFile: directory, encoding: .utf8)
        try text.replacingOccurrences(of: "manager: bob\n    roles: [MailboxReader]\n    keys: []",
                                      with: "manager: bob\n    roles: [MailboxReader]\n    keys: [\"\(Self.aliceKey)\"]")
            .replacingOccurrences(of: "groups: [managers]\n    roles: []\n    keys: []",
                                  with: "groups: [managers]\n    roles: []\n    keys: [\"\(Self.bobKey)\"]")
            .write(toFile: directory, atomically: true, encoding: .utf8)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: root) }

    func makeGateway() throws -> GatewayContext {
        var configuration = GatewayConfiguration()
        configuration.stateDirectory = root + "/state"
        configuration.policyDirectory = root + "/policies"
        configuration.nodeName = "test-node"
        return try GatewayContext(configuration: configuration, logger: Logger(label: "test"),
                                  host: FakeHost())
    }

    /// Alice's and Bob's keys in the test directory.
    static let aliceKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINKheeAOcATtSg0yuyqX0rG6XtNRiTDb3v5thXWOlXXm alice"
    static let bobKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMfyQzNYGjzuRPQ3Ht9ONQnvwNc+ToNJtqvsfWOaVi3I bob"

    /// A monitor over a real channel whose second factor always passes
    /// (PAM itself is tested end to end, under pam_wrapper).
    func monitorClient(_ gateway: GatewayContext) throws -> MonitorClient {
        let pair = try PacketChannel.pair()
        Monitor(gateway: gateway, channel: pair.first, secondFactor: { _, _, _, _ in }).start()
        return MonitorClient(channel: pair.second)
    }

    /// Passes both factors for alice on `connection`, as the session's side would.
    func authenticateAlice(_ client: MonitorClient, connection: UInt64) throws {
        guard case .authorized(true) = try client.call(connection, .publicKey(user: "alice", key: Self.aliceKey)).reply,
              case .pamResult(true, _, _) = try client.call(connection, .keyboardInteractive(
                  user: "alice", session: SessionID(rawValue: "s"), source: "127.0.0.1")).reply else {
            throw MonitorCallError.unexpectedReply
        }
    }

    /// A session's privileges as the daemon gives them: answered by a
    /// monitor over a real channel, after both factors.
    func monitored(_ gateway: GatewayContext, user: UserName, session: SessionID) throws -> MonitoredSessionPrivileges {
        let client = try monitorClient(gateway)
        try authenticateAlice(client, connection: 1)
        return try MonitoredSessionPrivileges(client: client, connection: 1, user: user, session: session,
                                              transcriptDirectory: gateway.configuration.transcriptDirectory,
                                              currentRules: { gateway.snapshot.lockboxRules })
    }

    /// The second load renames alice's baseline role in both the role file
    /// and the directory: a claim from one load checked against the other
    /// names a role that does not exist there.
    func renameReaderRole() throws {
        for file in ["roles/mailbox.yaml", "directory.yaml"] {
            let path = root + "/policies/" + file
            let text = try String(contentsOfFile: path, encoding: .utf8)
            try text.replacingOccurrences(of: "MailboxReader", with: "MailboxViewer")
                .write(toFile: path, atomically: true, encoding: .utf8)
        }
    }

}

final class PolicySnapshotTests: PolicySnapshotTestCase {
    func testAReaderRightAfterTheSwapSeesOneLoad() throws {
        let gateway = try makeGateway()
        defer { gateway.closeAudit() }
        try renameReaderRole()
        let seen = Mutex<[String]>([])
        gateway.afterSwap.withLock {
            $0 = { [alice] in
                // A command that starts now: its policy, and the claim Lockbox
                // builds from the directory, must come from the same load.
                let policy = gateway.snapshot.policy
                let claim = gateway.lockbox.claim(user: alice, session: SessionID(rawValue: "s"), now: Date())
                seen.withLock { $0 = claim.grants.map(\.role).filter { policy.role(named: $0) == nil } }
            }
        }
        XCTAssertTrue(gateway.reload().ok)
        XCTAssertEqual(seen.withLock { $0 }, [], "the claim names roles the policy in force does not have")
        XCTAssertEqual(gateway.lockbox.claim(user: alice, session: SessionID(rawValue: "s"), now: Date())
                       .grants.map(\.role), ["MailboxViewer"])
    }
}

/// A host where every backend is an executable owned by root and no account exists.
struct FakeHost: HostInspector {
    func account(named name: String) -> HostAccount? { nil }
    func isExecutableFile(_ path: String) -> Bool { true }
    func resolvingSymlinks(_ path: String) -> String { path }
    func status(of path: String) -> HostFileStatus? { HostFileStatus(mode: 0o755, owner: 0, isDirectory: false) }
    var effectiveUserID: Int { 1000 }
}

/// A command is evaluated once, under the one snapshot it started with: the
/// watch on the grant that allowed it is decided by that same evaluation,
/// not by a second one against a second read of the policy.
final class CommandStepTests: PolicySnapshotTestCase {
    final class Discard: CommandOutput {
        var out: [UInt8] = []
        func stdout(_ bytes: [UInt8]) { out += bytes }
        func stderr(_ bytes: [UInt8]) { out += bytes }
        var terminalColumns: Int? { nil }
    }

    func testACommandReadsTheSnapshotOnce() throws {
        let gateway = try makeGateway()
        defer { gateway.closeAudit() }
        let network = try NetworkContext(configuration: gateway.configuration, logger: Logger(label: "test"),
                                         host: FakeHost())
        let session = SessionID(rawValue: "s")
        let step = CommandStep(gateway: network, privileges: try monitored(gateway, user: alice, session: session),
                               interpreter: CmdletInterpreter(audit: gateway.audit, clock: gateway.clock), session: session)
        for line in ["Get-Command", "Get-Mailbox -Identity x@contoso.com", "Remove-Everything"] {
            network.snapshots.reads.store(0, ordering: .relaxed)
            _ = step.run(Array(line.utf8), output: Discard(), cancellation: CancellationFlag())
            XCTAssertEqual(network.snapshots.reads.load(ordering: .relaxed), 1, line)
        }
    }

    /// Stands in for the backend: ends the grant that allowed it (through
    /// `revoke`), then waits up to `wait` seconds for the cancellation.
    struct RevokingExecutor: CommandExecutor {
        let wait: TimeInterval
        let revoke: @Sendable () -> Void
        func run(_ request: ExecutionRequest, output: CommandOutput,
                 cancellation: CancellationFlag?) throws -> ExecutionResult {
            revoke()
            let deadline = Date().addingTimeInterval(wait)
            while cancellation?.isCancelled != true && Date() < deadline { usleep(20_000) }
            return ExecutionResult(exitStatus: 0, timedOut: false, cancelled: cancellation?.isCancelled ?? false,
                                   truncated: false, stdoutBytes: 0, stderrBytes: 0)
        }
    }

    /// The grant comes from the interpreter's own evaluation: the command
    /// that an elevation allowed is stopped when that elevation is revoked
    /// from another session.
    func testTheElevationThatAllowedTheCommandIsWatched() throws {
        let gateway = try makeGateway()
        defer { gateway.closeAudit() }
        let session = SessionID(rawValue: "s")
        let bob = UserName("bob")!, carol = UserName("carol")!
        let lockbox = gateway.lockbox
        let request = try lockbox.submit(requester: alice, role: "MailboxAdmin", scope: "contoso", durationSeconds: 3600,
                                         reason: "quota", ticket: "INC-1", session: session)
        try lockbox.approve(id: request.id, by: bob)
        try lockbox.approve(id: request.id, by: carol)
        let secret = try lockbox.issueCredential(id: request.id, to: alice)

        // The network side's own context, in this process: its registry is
        // what carries the revocation to alice's backend.
        let network = try NetworkContext(configuration: gateway.configuration, logger: Logger(label: "test"),
                                         host: FakeHost())
        guard case .admitted = network.sessions.admit(id: session, user: alice, source: "x", now: gateway.clock.now(),
                                                      limit: 1) else { return XCTFail("not admitted") }
        let out = Discard()
        // Bob revokes from his own session, through the shell's command, as
        // he would over SSH: only the registry carries it to alice's backend.
        let revoke: @Sendable () -> Void = {
            let claim = lockbox.claim(user: bob, session: SessionID(rawValue: "s-bob"), now: gateway.clock.now())
            _ = CmdletInterpreter(audit: gateway.audit, clock: gateway.clock,
                                  commandProvider: LockboxCommands(lockbox: lockbox, clock: gateway.clock,
                                                                   sessions: network.sessions))
                .run(line: Array("Revoke-LockboxRequest -Id \(request.id) -Reason test".utf8), claim: claim,
                     snapshot: gateway.snapshot.policy, context: gateway.executionContext, output: Discard())
        }
        let privileges = try monitored(gateway, user: alice, session: session)
        // Redeemed as Enter-Elevation does, through the monitor.
        _ = try privileges.redeem(request.id, secret: typedSecret(Array(secret.revealedText.utf8)))
        func run(_ line: String) -> CancellationFlag {
            let executor = RevokingExecutor(wait: 5, revoke: revoke)
            let step = CommandStep(gateway: network,
                                   privileges: privileges,
                                   interpreter: CmdletInterpreter(audit: gateway.audit, clock: gateway.clock,
                                                                  executor: executor),
                                   session: session)
            let cancellation = CancellationFlag()
            network.sessions.setRunning(session, cancellation)
            defer { network.sessions.setRunning(session, nil) }
            _ = step.run(Array(line.utf8), output: out, cancellation: cancellation)
            return cancellation
        }
        XCTAssertTrue(run("Set-Mailbox -Identity alice -ProhibitSendQuota 5GB").isCancelled,
                      "the command the revoked elevation allowed was not stopped: "
                      + String(decoding: out.out, as: UTF8.self))
    }
}
