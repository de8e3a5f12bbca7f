// gatehouse: the operator's command-line tool. Policy checks run on the
// daemon's own code path (PolicyBundle + CmdletShell.evaluate), so what this
// tool says is what the daemon would do.
import ArgumentParser
import CmdletPolicy
import CmdletShell
import Foundation
import GatehouseCore
import Gateway
import PolicyFormat

struct GatehouseCLI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatehouse",
        abstract: "Operate a Gatehouse gateway: check and test policy, review Lockbox requests, control live sessions, review recorded sessions and the audit log, enrol TOTP second factors.",
        subcommands: [Policy.self, LockboxTool.self, Sessions.self, Users.self, Audit.self, MFA.self, APITokens.self])
}

struct PolicyLocation: ParsableArguments {
    @Option(name: .long, help: "Directory file (default <policy dir>/directory.yaml).")
    var directory: String?

    @Option(name: .long, help: "Directory holding gatehouse-demo-mailbox and other @libexec backends (default: beside this tool).")
    var libexec: String?

    func load(policyDirectory: String) throws -> PolicyBundle {
        let dir = URL(fileURLWithPath: policyDirectory).standardizedFileURL.path
        return try PolicyBundle.load(policyDirectory: dir, directoryFile: directory ?? dir + "/directory.yaml",
                                     libexecDirectory: libexec ?? GatewayContext.libexecDirectory(),
                                     host: SystemHostInspector())
    }
}

struct Policy: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check policy files, or test what a line would do.",
        subcommands: [Check.self, Test.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate cmdlets, roles and the directory; print every error and warning with file:line.")

        @Argument(help: "Policy directory (with cmdlets/ and roles/).")
        var policyDirectory: String = "policies"

        @OptionGroup var location: PolicyLocation

        @Flag(name: .long, help: "Treat lint warnings as errors (exit 1 when there is any).")
        var strict = false

        func run() throws {
            do {
                let bundle = try location.load(policyDirectory: policyDirectory)
                for warning in bundle.warnings { print(warning) }
                if strict && !bundle.warnings.isEmpty {
                    print("policy has \(bundle.warnings.count) warning(s), refused by --strict")
                    throw ExitCode(1)
                }
                print("policy OK: \(bundle.policy.cmdlets.count) cmdlets, \(bundle.policy.roles.count) roles, "
                      + "\(bundle.directory.users.count) users, \(bundle.warnings.count) warning(s)")
            } catch let error as PolicyLoadError {
                for diagnostic in error.diagnostics { print(diagnostic) }
                print("policy has \(error.errors.count) error(s)")
                throw ExitCode(1)
            }
        }
    }

    struct Test: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the decision for one command line: the deciding role and the exact argv.",
            discussion: "Example: gatehouse policy test --user alice 'Set-Mailbox -Identity bob -ProhibitSendQuota 1GB'")

        @Option(name: .long, help: "The user whose baseline roles decide.")
        var user: String

        @Option(name: .long, help: "Policy directory (with cmdlets/ and roles/).")
        var policyDir: String = "policies"

        @Option(name: .long, help: "State directory the {stateDir} placeholder stands for.")
        var stateDir: String = "/var/lib/gatehouse"

        @OptionGroup var location: PolicyLocation

        @Option(name: .long, help: ArgumentHelp("Also hold this role, as an approved elevation would grant it for one hour: ROLE or ROLE@TENANT (repeatable).", valueName: "role"))
        var grant: [String] = []

        @Argument(help: "The command line, quoted as one argument.")
        var line: String

        func run() throws {
            guard let name = UserName(user) else {
                throw ValidationError("'\(user)' is not a valid user name")
            }
            let bundle: PolicyBundle
            do {
                bundle = try location.load(policyDirectory: policyDir)
            } catch let error as PolicyLoadError {
                for diagnostic in error.diagnostics { print(diagnostic) }
                throw ExitCode(1)
            }
            guard bundle.directory.user(named: name) != nil else {
                print("deny: user '\(name)' is not in the directory")
                throw ExitCode(ExitStatus.notPermitted)
            }
            let now = Date()
            let baseline = bundle.makeLockbox().claim(user: name, session: SessionID(rawValue: "policy-test"), now: now)
            let extra = grant.enumerated().map { index, text -> RoleGrant in
                let parts = text.split(separator: "@", maxSplits: 1).map(String.init)
                return RoleGrant(role: parts[0], scope: parts.count == 2 ? parts[1] : nil,
                                 expires: now.addingTimeInterval(3600), source: .elevation(requestID: Int64(index + 1)))
            }
            let claim = AccessClaim(user: name, session: baseline.session, issuedAt: now,
                                    grants: baseline.grants + extra)
            // The daemon hands a Lockbox command to the Lockbox before policy
            // sees it (CmdletInterpreter's command provider); say so rather
            // than call it an unknown cmdlet.
            if case .success(let tokens) = Lexer.tokenize(Array(line.utf8)), let head = tokens.first, head.kind == .bare,
               let command = LockboxCommands.names.first(where: { ASCII.equalsIgnoringCase($0, head.text) }) {
                print("decision: Lockbox workflow\ncommand: \(command)\n"
                      + "note: the gateway's Lockbox answers this command, not the policy roles; who may request, "
                      + "approve, deny or revoke is decided from the directory and lockbox.yaml when it runs, "
                      + "and the line is audited before it acts")
                return
            }
            let context = ExecutionContext(node: "policy-test", stateDir: stateDir, workingDirectory: "/")
            // The daemon's own pure evaluation, rendered by the same report
            // the golden decision tests compare.
            let evaluation = evaluate(line: Array(line.utf8), claim: claim, snapshot: bundle.policy, context: context)
            let report = PolicyTestReport.render(evaluation, snapshot: bundle.policy)
            print(report.text, terminator: "")
            if report.exitStatus != 0 { throw ExitCode(report.exitStatus) }
        }
    }
}

GatehouseCLI.main()
