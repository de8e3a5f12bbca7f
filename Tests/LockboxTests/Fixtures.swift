import CmdletPolicy
import Directory
import Foundation
import GatehouseCore
import Lockbox
import TestSupport
import XCTest

/// The Lockbox test world: the demo's people and tenants, a policy where
/// MailboxAdmin may be requested by engineers for at most 4h with an INC ticket.
enum World {
    static let alice = UserName("alice")!
    static let bob = UserName("bob")!
    static let carol = UserName("carol")!
    static let dave = UserName("dave")!
    static let erin = UserName("erin")!      // lockbox admin
    static let mallory = UserName("mallory")! // in the directory, nobody's approver

    static let directoryYAML = """
    users:
      alice: {groups: [engineers], manager: bob, roles: [MailboxReader]}
      bob: {groups: [engineers, managers], roles: [MailboxReader]}
      carol: {groups: [customer-approvers], roles: []}
      dave: {groups: [engineers], manager: bob, roles: [MailboxReader]}
      erin: {groups: [lockbox-admins], roles: []}
      mallory: {groups: [contractors], manager: bob, roles: []}
    tenants:
      contoso: {customerLockbox: true, approvers: [carol]}
      fabrikam: {customerLockbox: false}
    """

    static let policyYAML = """
    roles:
      MailboxReader: {cmdlets: [Get-Mailbox]}
      MailboxAdmin: {cmdlets: [Set-Mailbox], maxDuration: 4h}
    """

    static let cmdletsYAML = """
    cmdlets:
      Get-Mailbox:
        synopsis: Show.
        backend: {executable: /bin/true, argv: []}
        output: text
      Set-Mailbox:
        synopsis: Change.
        backend: {executable: /bin/true, argv: ["{scope}"]}
        output: text
    """

    static let lockboxYAML = """
    lockbox:
      pendingTTL: 1h
      redeemWindow: 10m
      admins: [lockbox-admins]
    roles:
      MailboxAdmin:
        requestableBy: [engineers]
        ticketPattern: '^INC-[0-9]{1,8}$'
        approvals: [manager, customer]
    """

    /// What the gateway hands the Lockbox of a policy's roles (the gateway's
    /// `PolicySnapshot.lockboxRoles`; this test target does not link the gateway).
    static func roles(of snapshot: PolicySnapshot) -> [PolicyRoleFacts] {
        snapshot.roles.map { PolicyRoleFacts(name: $0.name, maxDurationSeconds: $0.maxDurationSeconds, file: $0.file, line: $0.line) }
    }

    static func snapshot() throws -> PolicySnapshot {
        try PolicyLoader.load(sources: [
            .init(kind: .cmdlets, file: "cmdlets.yaml", text: cmdletsYAML),
            .init(kind: .roles, file: "roles.yaml", text: policyYAML),
        ], libexecDirectory: "/usr/libexec", reservedNames: [], host: SystemHostInspector())
    }

    static func directory() throws -> DirectoryModel {
        try DirectoryLoader.load(text: directoryYAML, file: "directory.yaml")
    }

    static func policy() throws -> LockboxPolicy {
        try LockboxPolicy.load(text: lockboxYAML, file: "lockbox.yaml", roles: roles(of: snapshot()))
    }
}

/// One Lockbox over a given store, with a manual clock and recorded audit.
final class Harness: Sendable {
    let clock: ManualClock
    let audit = RecordingAuditSink()
    let store: LockboxStore
    /// The rules the Lockbox follows; a test replaces them as a reload would.
    let rules: ReplaceableLockboxRules
    let lockbox: Lockbox

    /// `node` and a shared `clock`: one of several nodes on one shared store.
    init(store: LockboxStore = InMemoryLockboxStore(), node: String? = nil, clock: ManualClock = ManualClock()) throws {
        self.store = store
        self.clock = clock
        rules = ReplaceableLockboxRules(LockboxRules(directory: try World.directory(), policy: try World.policy(),
                                                     notifier: nil))
        lockbox = Lockbox(rules: rules, store: store, audit: audit, clock: clock, node: node)
    }

    /// alice asks for MailboxAdmin in `scope` for `duration` seconds.
    func submit(_ scope: String = "contoso", duration: Int = 3600, by user: UserName = World.alice) throws -> LockboxRequest {
        try lockbox.submit(requester: user, role: "MailboxAdmin", scope: scope, durationSeconds: duration,
                           reason: "quota ticket", ticket: "INC-42")
    }

    /// Submits and approves through every stage; returns the approved request.
    func approved(_ scope: String = "contoso", duration: Int = 3600) throws -> LockboxRequest {
        let r = try submit(scope, duration: duration)
        var a = try lockbox.approve(id: r.id, by: World.bob)
        if a.state == .pendingCustomer { a = try lockbox.approve(id: r.id, by: World.carol) }
        return a
    }

    /// Approved, credential fetched; returns the id and the secret's text.
    func withSecret(_ scope: String = "contoso", duration: Int = 3600) throws -> (Int64, String) {
        let r = try approved(scope, duration: duration)
        let secret = try lockbox.issueCredential(id: r.id, to: World.alice)
        return (r.id, secret.revealedText)
    }
}

func XCTAssertLockboxError<T>(_ expression: @autoclosure () throws -> T, _ check: (LockboxError) -> Bool,
                              _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try expression()
        XCTFail("expected a LockboxError. \(message)", file: file, line: line)
    } catch let error as LockboxError {
        XCTAssertTrue(check(error), "unexpected error: \(error). \(message)", file: file, line: line)
    } catch {
        XCTFail("unexpected error type: \(error)", file: file, line: line)
    }
}
