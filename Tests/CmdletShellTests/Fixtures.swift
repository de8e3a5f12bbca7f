import CmdletPolicy
import CmdletShell
import Directory
import Foundation
import GatehouseCore
import TestSupport
import XCTest

/// Collects what a command prints.
final class BufferOutput: CommandOutput {
    var out: [UInt8] = []
    var err: [UInt8] = []
    /// Set: output to a terminal of that width (an interactive pty session).
    var terminalColumns: Int?
    func stdout(_ bytes: [UInt8]) { out += bytes }
    func stderr(_ bytes: [UInt8]) { err += bytes }
    var outText: String { String(decoding: out, as: UTF8.self) }
    var errText: String { String(decoding: err, as: UTF8.self) }
}

/// A temporary directory removed at the end of the test.
final class TempDir {
    let path: String
    init() throws {
        path = NSTemporaryDirectory() + "gatehouse-shell-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { path + "/" + name }
}

/// The shell test policy: real programs (printf, env, sh, touch, pwd) behind
/// argv templates, so the tests see exactly what a backend would receive.
func shellPolicyYAML() -> String {
    """
    cmdlets:
      Get-Mailbox:
        synopsis: Show a mailbox.
        description: Prints its argv, one bracketed element per line.
        examples:
          - command: Get-Mailbox alice
            description: Show alice.
        parameters:
          Identity:
            type: string
            pattern: '^[A-Za-z0-9._@-]{1,64}$'
            position: 0
          ResultSize:
            type: int
            min: 1
            max: 1000
        backend:
          executable: /usr/bin/printf
          argv:
            - '[%s]\\n'
            - get
            - when: Identity
              argv: ["--identity", "{Identity}"]
            - when: ResultSize
              argv: ["--result-size={ResultSize}"]
      Set-Mailbox:
        synopsis: Change quotas.
        aliases: [smbx]
        parameters:
          Identity:
            type: string
            pattern: '^[A-Za-z0-9._@-]{1,64}$'
            mandatory: true
            position: 0
          ProhibitSendQuota:
            type: size
            min: 1MB
            max: 100GB
          ProhibitSendReceiveQuota:
            type: size
          Mode:
            type: enum
            set: [Normal, Strict]
          DisplayName:
            type: string
            pattern: '^[A-Za-z0-9 .,_@-]{1,128}$'
          Force:
            type: switch
        backend:
          executable: /usr/bin/printf
          argv:
            - '[%s]\\n'
            - set
            - "{Identity}"
            - when: ProhibitSendQuota
              argv: ["--send={ProhibitSendQuota}"]
            - when: ProhibitSendReceiveQuota
              argv: ["--send-receive={ProhibitSendReceiveQuota}"]
            - when: Mode
              argv: ["--mode", "{Mode}"]
            - when: DisplayName
              argv: ["--display-name", "{DisplayName}"]
            - when: Force
              argv: ["--force"]
      Show-Environment:
        synopsis: Print the backend's environment.
        backend:
          executable: /usr/bin/env
          environment:
            GATEHOUSE_ACTOR: "{user}"
            GATEHOUSE_NODE: "{node}"
            GATEHOUSE_SESSION: "{session}"
      Get-Location:
        synopsis: Print the working directory.
        backend:
          executable: /bin/pwd
      Start-Sleep:
        synopsis: Sleep in two processes of one group.
        backend:
          executable: /bin/sh
          argv: ["-c", 'sleep 30 & echo $! > "$1"; sleep 30', sh, "{stateDir}/background.pid"]
          timeout: 1s
      Write-Lots:
        synopsis: Write more than the output limit.
        backend:
          executable: /bin/sh
          argv: ["-c", "yes abcdefgh | head -c 100000; echo done >&2"]
          outputLimit: 1KB
      Test-Failure:
        synopsis: Write to stderr and exit 3.
        backend:
          executable: /bin/sh
          argv: ["-c", "echo oops >&2; echo fine; exit 3"]
      Stop-Self:
        synopsis: Die of SIGKILL.
        backend:
          executable: /bin/sh
          argv: ["-c", "kill -9 $$"]
      New-Marker:
        synopsis: Touch a marker file.
        backend:
          executable: /usr/bin/touch
          argv: ["{stateDir}/marker"]
      Get-Tenant:
        synopsis: Print the tenant of the deciding grant.
        backend:
          executable: /usr/bin/printf
          argv: ['[%s]\\n', "{scope}"]
      Get-Missing:
        synopsis: A backend that does not exist.
        backend:
          executable: /nonexistent/gatehouse-backend
    """
}

func shellRolesYAML() -> String {
    """
    roles:
      Reader:
        cmdlets: [Get-Mailbox, Show-Environment, Get-Location, Start-Sleep, Write-Lots, Test-Failure, Stop-Self,
                  Get-Missing]
      QuotaAdmin:
        cmdlets: [Set-Mailbox]
      Creator:
        cmdlets: [New-Marker]
      TenantAdmin:
        cmdlets: [Get-Tenant]
      Other:
        cmdlets: [Get-Mailbox]
    """
}

func shellSnapshot() throws -> PolicySnapshot {
    try PolicyLoader.load(sources: [.init(kind: .cmdlets, file: "cmdlets/shell.yaml", text: shellPolicyYAML()),
                                    .init(kind: .roles, file: "roles/shell.yaml", text: shellRolesYAML())],
                          libexecDirectory: "/unused", reservedNames: ShellBuiltins.reservedNames, host: SystemHostInspector())
}

func makeClaim(_ grants: [RoleGrant], at now: Date = ManualClock().now()) throws -> AccessClaim {
    AccessClaim(user: try XCTUnwrap(UserName("alice")), session: SessionID(rawValue: "sess01"), issuedAt: now,
                grants: grants)
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
