import CmdletPolicy
@testable import CmdletShell
import Directory
import GatehouseCore
import TestSupport
import XCTest

final class EvaluationTests: XCTestCase {
    var snapshot: PolicySnapshot!
    let context = ExecutionContext(node: "gw1", stateDir: "/var/lib/gatehouse", workingDirectory: "/")

    override func setUpWithError() throws {
        snapshot = try shellSnapshot()
    }

    func evaluate(_ line: String, roles: [RoleGrant]? = nil) throws -> Evaluation {
        let claim = try makeClaim(roles ?? [RoleGrant(role: "Reader"), RoleGrant(role: "QuotaAdmin")])
        return CmdletShell.evaluate(line: bytes(line), claim: claim, snapshot: snapshot, context: context)
    }

    func allowed(_ line: String, roles: [RoleGrant]? = nil, file: StaticString = #filePath,
                 l: UInt = #line) throws -> AllowedCommand {
        switch try evaluate(line, roles: roles) {
        case .allowed(let command): return command
        case let other:
            XCTFail("not allowed: \(other)", file: file, line: l)
            throw XCTSkip("not allowed")
        }
    }

    func rejected(_ line: String, roles: [RoleGrant]? = nil, file: StaticString = #filePath,
                  l: UInt = #line) throws -> Rejection {
        switch try evaluate(line, roles: roles) {
        case .rejected(let r): return r
        case let other:
            XCTFail("not rejected: \(other)", file: file, line: l)
            throw XCTSkip("not rejected")
        }
    }

    func testArgvTemplateWithOptionalGroups() throws {
        XCTAssertEqual(try allowed("Get-Mailbox").argv, ["/usr/bin/printf", "[%s]\\n", "get"])
        XCTAssertEqual(try allowed("get-mailbox alice -ResultSize 5").argv,
                       ["/usr/bin/printf", "[%s]\\n", "get", "--identity", "alice", "--result-size=5"])
    }

    func testNamedInlineAndPositionalForms() throws {
        let expected = ["/usr/bin/printf", "[%s]\\n", "set", "bob", "--send=1048576"]
        XCTAssertEqual(try allowed("Set-Mailbox -Identity bob -ProhibitSendQuota 1MB").argv, expected)
        XCTAssertEqual(try allowed("Set-Mailbox -Identity:bob -ProhibitSendQuota:1mb").argv, expected)
        XCTAssertEqual(try allowed("Set-Mailbox bob -ProhibitSendQuota:'1MB'").argv, expected)
        XCTAssertEqual(try allowed("SET-MAILBOX -prohibitsendquota 1048576 'bob'").argv, expected)
    }

    func testPrefixAbbreviationAndAmbiguity() throws {
        XCTAssertEqual(try allowed("Set-Mailbox -Id bob -ProhibitSendQ 2GB -Fo").argv,
                       ["/usr/bin/printf", "[%s]\\n", "set", "bob", "--send=2147483648", "--force"])
        let ambiguous = try rejected("Set-Mailbox bob -Prohibit 1GB")
        XCTAssertEqual(ambiguous.message, "-Prohibit is ambiguous: it could be -ProhibitSendQuota, -ProhibitSendReceiveQuota")
        XCTAssertEqual(ambiguous.column, 17)
        XCTAssertEqual(ambiguous.exitStatus, 2)
        // An exact name wins over being a prefix of a longer one.
        XCTAssertEqual(try allowed("Set-Mailbox bob -ProhibitSendQuota 1GB").argv.last, "--send=1073741824")
    }

    func testRepeatedUnknownAndMissingParameters() throws {
        XCTAssertEqual(try rejected("Set-Mailbox -Identity bob -id bob").message, "-Identity is given more than once")
        let unknown = try rejected("Get-Mailbox -Identiti alice")
        XCTAssertEqual(unknown.message, "Get-Mailbox has no parameter -Identiti; did you mean -Identity?")
        XCTAssertEqual(unknown.stage, .bind)
        let missing = try rejected("Set-Mailbox -Force")
        XCTAssertEqual(missing.message, "missing mandatory parameter -Identity")
        XCTAssertNil(missing.column)
        XCTAssertEqual(try rejected("Get-Mailbox alice bob").message, "no parameter accepts the positional value 'bob'")
        XCTAssertEqual(try rejected("Get-Mailbox -Identity").message, "-Identity needs a value")
        XCTAssertEqual(try rejected("Set-Mailbox bob -Force:true").message, "-Force is a switch and takes no value")
    }

    func testValuesMayNotStartWithDash() throws {
        // A bare word starting with '-' is always a parameter name…
        XCTAssertEqual(try rejected("Get-Mailbox -Identity -ResultSize").message, "-Identity needs a value")
        XCTAssertEqual(try rejected("Get-Mailbox --").message, "'--' is not a valid parameter name")
        XCTAssertEqual(try rejected("Get-Mailbox --help").message, "'--help' is not a valid parameter name")
        XCTAssertEqual(try rejected("Get-Mailbox -").message, "'-' is not a valid parameter name")
        // …and a quoted or inline value starting with '-' is refused.
        let quoted = try rejected("Get-Mailbox -Identity '-rf'")
        XCTAssertEqual(quoted.message, "values may not start with '-'")
        XCTAssertEqual(quoted.column, 23)
        XCTAssertEqual(try rejected("Get-Mailbox '--x'").message, "values may not start with '-'")
        XCTAssertEqual(try rejected("Get-Mailbox -Identity:-x").message, "values may not start with '-'")
    }

    func testPatternIsAnchoredAgainstTrailingNewlineAndSubstrings() throws {
        XCTAssertTrue(try rejected("Get-Mailbox 'alice bob'").message.contains("does not match"))
        // A newline cannot even be typed (the lexer refuses it), and the
        // pattern refuses it on its own as well.
        let identity = try XCTUnwrap(snapshot.cmdlet(named: "Get-Mailbox")?.parameter(named: "Identity"))
        XCTAssertThrowsError(try identity.validate("alice\n").get())
        XCTAssertThrowsError(try identity.validate("alice\u{2028}").get())
        XCTAssertNoThrow(try identity.validate("alice").get())
    }

    func testSetIsCaseInsensitiveAndPassesDeclaredSpelling() throws {
        XCTAssertEqual(try allowed("Set-Mailbox bob -Mode sTRICT").argv.suffix(2), ["--mode", "Strict"])
        XCTAssertTrue(try rejected("Set-Mailbox bob -Mode Lax").message.contains("must be one of: Normal, Strict"))
    }

    func testIntAndSizeBoundsAndOverflow() throws {
        XCTAssertEqual(try rejected("Get-Mailbox -ResultSize 0").message, "-ResultSize must be at least 1")
        XCTAssertEqual(try rejected("Get-Mailbox -ResultSize 1001").message, "-ResultSize must be at most 1000")
        XCTAssertTrue(try rejected("Get-Mailbox -ResultSize 99999999999999999999999").message.contains("whole number"))
        XCTAssertTrue(try rejected("Get-Mailbox -ResultSize 1e3").message.contains("whole number"))
        XCTAssertTrue(try rejected("Get-Mailbox -ResultSize \u{0661}").message.contains("whole number"))
        XCTAssertEqual(try rejected("Set-Mailbox bob -ProhibitSendQuota 1023KB").message,
                       "-ProhibitSendQuota must be at least 1MB")
        XCTAssertEqual(try rejected("Set-Mailbox bob -ProhibitSendQuota 101GB").message,
                       "-ProhibitSendQuota must be at most 100GB")
        XCTAssertTrue(try rejected("Set-Mailbox bob -ProhibitSendReceiveQuota 99999999999TB").message.contains("expects a size"))
        XCTAssertTrue(try rejected("Set-Mailbox bob -ProhibitSendQuota 1.5GB").message.contains("expects a size"))
    }

    func testQuotedValuesKeepSpacesAsOneArgvElement() throws {
        XCTAssertEqual(try allowed("Set-Mailbox bob -DisplayName 'Bob Smith, Sales'").argv.suffix(2),
                       ["--display-name", "Bob Smith, Sales"])
    }

    func testUnknownCmdlet() throws {
        let r = try rejected("Format-Disk c")
        XCTAssertEqual(r.message, "Unknown cmdlet 'Format-Disk'. Get-Command lists what you may run.",
                       "nothing near enough is suggested")
        XCTAssertEqual(r.exitStatus, 127)
        XCTAssertEqual(try rejected("ls -la").reason, .unknownCmdlet)
    }

    func testATypoIsAnsweredWithTheNearestNameTheCallerMaySee() throws {
        XCTAssertEqual(try rejected("Get-Mailbx alice", roles: [RoleGrant(role: "Reader")]).message,
                       "Unknown cmdlet 'Get-Mailbx'. Did you mean Get-Mailbox? Get-Command lists what you may run.")
        XCTAssertEqual(try rejected("get-comand").message,
                       "Unknown cmdlet 'get-comand'. Did you mean Get-Command? Get-Command lists what you may run.")
        // New-Marker exists, but the Reader may not see it: it is never suggested.
        XCTAssertEqual(try rejected("New-Markr", roles: [RoleGrant(role: "Reader")]).message,
                       "Unknown cmdlet 'New-Markr'. Get-Command lists what you may run.")
        XCTAssertEqual(try rejected("New-Markr", roles: [RoleGrant(role: "Creator")]).message,
                       "Unknown cmdlet 'New-Markr'. Did you mean New-Marker? Get-Command lists what you may run.")
        XCTAssertEqual(try rejected("Get-Mailbox -Identiy alice", roles: [RoleGrant(role: "Reader")]).message,
                       "Get-Mailbox has no parameter -Identiy; did you mean -Identity?")
    }

    func testTheCaretPointsAtTheColumnAsTheTerminalShowsIt() {
        XCTAssertEqual(CmdletInterpreter.caret(under: 13, of: Array("Get-Mailbox -Identiy alice".utf8)),
                       "Get-Mailbox -Identiy alice\n            ^\n")
        // A control byte shows as \x1b (four columns), a CJK character takes two: the caret follows.
        XCTAssertEqual(CmdletInterpreter.caret(under: 4, of: Array("a\u{1b}\u{6F22}b".utf8)),
                       "a\\x1b\u{6F22}b\n       ^\n")
        XCTAssertEqual(CmdletInterpreter.caret(under: 2, of: Array(String(repeating: "x", count: 300).utf8)), "",
                       "a line too long for one row gets no caret")
    }

    func testDeniedCmdletNamesTheRoles() throws {
        let r = try rejected("New-Marker", roles: [RoleGrant(role: "Reader")])
        XCTAssertEqual(r.message, "'New-Marker' is not permitted by your roles (Reader).")
        XCTAssertEqual(r.stage, .authorize)
        XCTAssertEqual(r.exitStatus, 126)
        XCTAssertEqual(try rejected("Get-Mailbox", roles: []).message, "'Get-Mailbox' is not permitted by your roles (none).")
    }

    func testExpiredGrantDoesNotCount() throws {
        let clock = ManualClock()
        let grant = RoleGrant(role: "QuotaAdmin", scope: "contoso", expires: clock.now().addingTimeInterval(60),
                              source: .elevation(requestID: 7))
        let live = try makeClaim([grant], at: clock.now())
        clock.advance(by: 60)
        let expired = try makeClaim([grant], at: clock.now())
        let line = bytes("Set-Mailbox bob")
        if case .allowed = CmdletShell.evaluate(line: line, claim: live, snapshot: snapshot, context: context) {} else {
            XCTFail("live grant should allow")
        }
        if case .rejected(let r) = CmdletShell.evaluate(line: line, claim: expired, snapshot: snapshot, context: context) {
            XCTAssertEqual(r.reason, .notPermitted)
        } else { XCTFail("expired grant must not allow") }
    }

    func testSingleRoleRuleAndScope() throws {
        // The role that allows Get-Tenant holds no scope; another grant has a
        // scope but does not allow Get-Tenant. They never combine.
        let split = [RoleGrant(role: "TenantAdmin"), RoleGrant(role: "QuotaAdmin", scope: "contoso")]
        let r = try rejected("Get-Tenant", roles: split)
        XCTAssertTrue(r.message.contains("requires a scoped elevation"), r.message)
        XCTAssertEqual(r.exitStatus, 126)

        let scoped = try allowed("Get-Tenant", roles: [RoleGrant(role: "TenantAdmin", scope: "contoso")])
        XCTAssertEqual(scoped.argv, ["/usr/bin/printf", "[%s]\\n", "contoso"])
        XCTAssertEqual(scoped.role, "TenantAdmin")

        let two = [RoleGrant(role: "TenantAdmin", scope: "contoso"), RoleGrant(role: "TenantAdmin", scope: "fabrikam")]
        XCTAssertTrue(try rejected("Get-Tenant", roles: two).message.contains("several tenants"))

        // The deciding role is the one that lists the cmdlet, reported as declared.
        XCTAssertEqual(try allowed("Get-Mailbox", roles: [RoleGrant(role: "creator"), RoleGrant(role: "other")]).role, "Other")
    }

    func testContextValuesComeFromClaimAndGateway() throws {
        let env = try allowed("Show-Environment").environment
        XCTAssertEqual(env, ["GATEHOUSE_ACTOR": "alice", "GATEHOUSE_NODE": "gw1", "GATEHOUSE_SESSION": "sess01"])
    }

    func testDeclaredAliasRunsTheCmdletUnderItsOwnName() throws {
        let viaAlias = try allowed("SMBX bob -ProhibitSendQuota 1MB")
        XCTAssertEqual(viaAlias.cmdlet.name, "Set-Mailbox", "audit and policy test name the cmdlet, not the alias")
        XCTAssertEqual(viaAlias.argv, try allowed("Set-Mailbox bob -ProhibitSendQuota 1MB").argv)
        // The alias is no way around roles: the same refusal as by name.
        let hidden = try rejected("smbx bob -ProhibitSendQuota 1MB", roles: [RoleGrant(role: "Reader")])
        XCTAssertEqual(hidden.message, try rejected("Set-Mailbox bob -ProhibitSendQuota 1MB",
                                                    roles: [RoleGrant(role: "Reader")]).message)
        XCTAssertEqual(hidden.exitStatus, 126)
        // Undeclared aliases and the implicit Get- prefix do not exist.
        XCTAssertEqual(try rejected("gmbx alice").exitStatus, 127)
        XCTAssertEqual(try rejected("Mailbox alice").exitStatus, 127)
        guard case .builtin(let help) = try evaluate("Get-Help smbx") else { return XCTFail("Get-Help is a built-in") }
        XCTAssertTrue(help.stdout.hasPrefix("NAME\n    Set-Mailbox\n"), help.stdout)
        XCTAssertTrue(help.stdout.contains("ALIASES\n    smbx\n"), help.stdout)
        guard case .builtin(let hiddenHelp) = try evaluate("Get-Help smbx", roles: [RoleGrant(role: "Reader")]) else {
            return XCTFail("Get-Help is a built-in")
        }
        XCTAssertEqual(hiddenHelp.stderr, "Get-Help: no help found for 'smbx'.\n")
    }

    func testBuiltins() throws {
        guard case .builtin(let exit) = try evaluate("exit"), case .builtin(let exit2) = try evaluate("exit-session")
        else { return XCTFail("exit is a built-in") }
        XCTAssertEqual(exit.command, .exitSession)
        XCTAssertEqual(exit2.command, .exitSession)

        guard case .builtin(let list) = try evaluate("Get-Command", roles: [RoleGrant(role: "QuotaAdmin")]) else {
            return XCTFail("Get-Command is a built-in")
        }
        XCTAssertEqual(list.stdout, "Set-Mailbox  Change quotas. (alias: smbx)\n")

        guard case .builtin(let help) = try evaluate("Get-Help get-mailbox -Full") else { return XCTFail() }
        XCTAssertTrue(help.stdout.contains("SYNOPSIS\n    Show a mailbox."))
        XCTAssertTrue(help.stdout.contains("Get-Mailbox alice"))
        XCTAssertTrue(help.stdout.contains("PARAMETERS\n    -Identity  (string, optional, position 0"))
        guard case .builtin(let short) = try evaluate("Get-Help Get-Mailbox"),
              case .builtin(let examples) = try evaluate("Get-Help -Name Get-Mailbox -Ex") else { return XCTFail() }
        XCTAssertFalse(short.stdout.contains("PARAMETERS"))
        XCTAssertTrue(short.stdout.contains("SYNTAX\n    Get-Mailbox [[-Identity] <string>] [-ResultSize <int>]"))
        XCTAssertEqual(examples.stdout, "NAME\n    Get-Mailbox\n\nSYNOPSIS\n    Show a mailbox.\n\nEXAMPLES\n"
                       + "    Get-Mailbox alice\n        Show alice.\n")
        XCTAssertEqual(try rejected("Get-Help Get-Mailbox -Full -Examples").message, "use -Examples or -Full, not both")
        guard case .builtin(let formatter) = try evaluate("Get-Help where-object") else { return XCTFail() }
        XCTAssertTrue(formatter.stdout.contains("... | Where-Object [-Property] NAME -OPERATOR VALUE"), formatter.stdout)
        // Get-Help names every parameter of every formatter (the operators of Where-Object included).
        for name in Pipeline.formatterNames {
            guard case .builtin(let help) = try evaluate("Get-Help \(name)") else { return XCTFail(name) }
            let words = Set(help.stdout.split(whereSeparator: { !$0.isLetter && $0 != "-" }).map(String.init))
            for parameter in Pipeline.parameterNames(of: name) where !words.contains("-" + parameter) {
                XCTFail("Get-Help \(name) does not mention -\(parameter):\n\(help.stdout)")
            }
        }

        // A hidden cmdlet and an unknown one get the same answer.
        guard case .builtin(let hidden) = try evaluate("Get-Help -Name New-Marker"),
              case .builtin(let unknown) = try evaluate("Get-Help New-Nothing") else { return XCTFail() }
        XCTAssertEqual(hidden.stderr, "Get-Help: no help found for 'New-Marker'.\n")
        XCTAssertEqual(unknown.stderr, "Get-Help: no help found for 'New-Nothing'.\n")
        XCTAssertEqual(hidden.exitStatus, unknown.exitStatus)

        guard case .builtin(let elevate) = try evaluate("Enter-Elevation -I 42") else { return XCTFail() }
        XCTAssertEqual(elevate.command, .enterElevation(requestID: 42))
        XCTAssertEqual(try rejected("exit now").exitStatus, 2)
        XCTAssertEqual(try rejected("Enter-Elevation -Id x").exitStatus, 2)
    }

    func testEmptyLine() throws {
        guard case .empty = try evaluate("   ") else { return XCTFail("blank line is a no-op") }
    }

    func testLineMustStartWithCmdletName() throws {
        XCTAssertEqual(try rejected("'Get-Mailbox'").stage, .parse)
        XCTAssertEqual(try rejected("-Identity x").stage, .parse)
    }
}
