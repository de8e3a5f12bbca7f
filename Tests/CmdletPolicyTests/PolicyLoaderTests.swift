import CmdletPolicy
import Directory
import Foundation
import PolicyFormat
import XCTest

/// A minimal valid cmdlet file, to which tests add one mistake at a time.
let baseCmdlets = """
cmdlets:
  Get-Thing:
    synopsis: Show a thing.
    parameters:
      Identity:
        type: string
        pattern: '^[a-z]{1,16}$'
        mandatory: true
        position: 0
      Limit:
        type: int
        min: 1
        max: 10
    backend:
      executable: /usr/bin/printf
      argv:
        - '%s\\n'
        - "{Identity}"
        - when: Limit
          argv: ["--limit", "{Limit}"]
"""

let baseRoles = """
roles:
  Reader:
    description: Reads things.
    cmdlets: [Get-Thing]
"""

/// What the shell and the gateway reserve, as their callers pass it in; the
/// loader itself knows no command names.
let reservedNames = ["exit", "Get-Help", "New-LockboxRequest", "Select-Object"]

func loadPolicy(cmdlets: String = baseCmdlets, roles: String = baseRoles,
                host: HostInspector = SystemHostInspector()) throws -> PolicySnapshot {
    try PolicyLoader.load(sources: [.init(kind: .cmdlets, file: "cmdlets/test.yaml", text: cmdlets),
                                    .init(kind: .roles, file: "roles/test.yaml", text: roles)],
                          libexecDirectory: "/opt/gatehouse/libexec", reservedNames: reservedNames, host: host)
}

/// The diagnostics of a load that is expected to fail.
func loadErrors(cmdlets: String = baseCmdlets, roles: String = baseRoles, host: HostInspector = SystemHostInspector(),
                file: StaticString = #filePath, line: UInt = #line) -> [PolicyDiagnostic] {
    do {
        _ = try loadPolicy(cmdlets: cmdlets, roles: roles, host: host)
        XCTFail("policy loaded but was expected to fail", file: file, line: line)
        return []
    } catch let error as PolicyLoadError {
        return error.errors
    } catch {
        XCTFail("unexpected error \(error)", file: file, line: line)
        return []
    }
}

final class PolicyLoaderTests: XCTestCase {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    func testRealPolicyDirectoryLoads() throws {
        let dir = Self.repoRoot.appendingPathComponent("policies").path
        let snapshot = try PolicyLoader.load(directory: dir, libexecDirectory: "/opt/gatehouse/libexec", reservedNames: reservedNames, host: SystemHostInspector())
        XCTAssertEqual(snapshot.cmdlets.map(\.name),
                       ["Get-Mailbox", "Get-MailboxReport", "Get-MailboxStatistics", "New-Mailbox", "Remove-Mailbox", "Set-Mailbox"])
        XCTAssertEqual(snapshot.roles.map(\.name), ["MailboxAdmin", "MailboxReader"])
        let get = try XCTUnwrap(snapshot.cmdlet(named: "get-mailbox"))
        XCTAssertEqual(get.backend?.executable, "/opt/gatehouse/libexec/gatehouse-demo-mailbox")
        XCTAssertEqual(get.parameters.map(\.name), ["Identity", "ResultSize"])
        XCTAssertEqual(get.backend?.timeoutSeconds, 30)
        XCTAssertEqual(get.backend?.outputLimit, 1 << 20)
        XCTAssertEqual(get.examples.count, 2)
        let set = try XCTUnwrap(snapshot.cmdlet(named: "Set-Mailbox"))
        XCTAssertEqual(set.parameter(named: "prohibitsendquota")?.minimum, 1 << 20)
        XCTAssertEqual(set.parameter(named: "ProhibitSendQuota")?.maximum, 100 << 30)
        XCTAssertEqual(snapshot.role(named: "mailboxreader")?.cmdlets, ["Get-Mailbox", "Get-MailboxReport", "Get-MailboxStatistics"])
        // The only warnings are about the demo backend not being installed at that path.
        XCTAssertTrue(snapshot.warnings.allSatisfy { $0.message.contains("does not exist") }, "\(snapshot.warnings)")
    }

    func testRealDirectoryLoadsAndMatchesPolicy() throws {
        let policy = try PolicyLoader.load(directory: Self.repoRoot.appendingPathComponent("policies").path,
                                           libexecDirectory: "/x", reservedNames: reservedNames, host: SystemHostInspector())
        let directory = try DirectoryLoader.load(file: Self.repoRoot.appendingPathComponent("policies/directory.yaml").path)
        XCTAssertEqual(directory.users.map(\.name.rawValue), ["alice", "bob", "carol", "dave"])
        XCTAssertEqual(directory.users.first?.manager?.rawValue, "bob")
        XCTAssertEqual(directory.tenant(named: "contoso")?.customerLockbox, true)
        XCTAssertEqual(directory.tenant(named: "contoso")?.approvers.map(\.rawValue), ["carol"])
        XCTAssertEqual(directory.validate(knownRoles: policy.roles.map(\.name)), [])
    }

    func testBaseFixtureLoads() throws {
        let snapshot = try loadPolicy()
        XCTAssertEqual(snapshot.cmdlets.count, 1)
        XCTAssertEqual(snapshot.warnings, [])
    }

    func testUnknownKeyIsAnErrorWithLineAndHint() {
        let text = baseCmdlets.replacingOccurrences(of: "    synopsis:", with: "    synopsys:")
        let errors = loadErrors(cmdlets: text)
        let unknown = errors.first { $0.message.contains("unknown key 'synopsys'") }
        XCTAssertEqual(unknown?.file, "cmdlets/test.yaml")
        XCTAssertEqual(unknown?.line, 3)
        XCTAssertEqual(unknown?.column, 5)
        XCTAssertEqual(unknown?.hint, "did you mean 'synopsis'?")
        XCTAssertEqual(unknown?.description,
                       "cmdlets/test.yaml:3:5: error: unknown key 'synopsys' in cmdlet 'Get-Thing' (did you mean 'synopsis'?)")
    }

    func testUnknownParameterKeyIsAnError() {
        let text = baseCmdlets.replacingOccurrences(of: "        mandatory: true", with: "        mandatroy: true")
        let errors = loadErrors(cmdlets: text)
        XCTAssertEqual(errors.map(\.line), [8])
        XCTAssertEqual(errors.first?.hint, "did you mean 'mandatory'?")
    }

    func testBadPatternReportsItsLine() {
        let text = baseCmdlets.replacingOccurrences(of: "'^[a-z]{1,16}$'", with: "'^[a-z'")
        let errors = loadErrors(cmdlets: text)
        XCTAssertEqual(errors.count, 1)
        XCTAssertEqual(errors.first?.line, 7)
        XCTAssertTrue(errors.first?.message.contains("not a valid regular expression") ?? false)
    }

    func testRoleListingUnknownCmdletIsAnError() {
        let roles = baseRoles.replacingOccurrences(of: "[Get-Thing]", with: "[Get-Thing, Get-Thnig]")
        let errors = loadErrors(roles: roles)
        XCTAssertEqual(errors.count, 1)
        XCTAssertEqual(errors.first?.file, "roles/test.yaml")
        XCTAssertEqual(errors.first?.line, 4)
        XCTAssertEqual(errors.first?.hint, "did you mean 'Get-Thing'?")
    }

    func testOptionalParameterOutsideWhenGroupIsAnError() {
        let text = baseCmdlets.replacingOccurrences(of: "        - \"{Identity}\"", with: "        - \"{Identity}\"\n        - \"--limit={Limit}\"")
        let errors = loadErrors(cmdlets: text)
        XCTAssertEqual(errors.count, 1)
        XCTAssertEqual(errors.first?.line, 19)
        XCTAssertTrue(errors.first?.message.contains("optional parameter outside its 'when:' group") ?? false)
    }

    func testDuplicateKeyIsAnError() {
        let text = baseCmdlets.replacingOccurrences(of: "    synopsis: Show a thing.",
                                                    with: "    synopsis: Show a thing.\n    synopsis: Again.")
        let errors = loadErrors(cmdlets: text)
        XCTAssertEqual(errors.count, 1)
        XCTAssertTrue(errors.first?.message.contains("duplicate key 'synopsis'") ?? false, "\(errors)")
        XCTAssertGreaterThan(errors.first?.line ?? 0, 0)
    }

    func testEveryProblemIsReportedNotOnlyTheFirst() {
        let text = baseCmdlets
            .replacingOccurrences(of: "    synopsis:", with: "    synopsys:")
            .replacingOccurrences(of: "type: int", with: "type: integer")
            .replacingOccurrences(of: "/usr/bin/printf", with: "printf")
        let roles = baseRoles.replacingOccurrences(of: "[Get-Thing]", with: "[Get-Other]")
        let errors = loadErrors(cmdlets: text, roles: roles)
        let lines = Set(errors.map { "\($0.file):\($0.line)" })
        XCTAssertTrue(lines.isSuperset(of: ["cmdlets/test.yaml:3", "cmdlets/test.yaml:11", "cmdlets/test.yaml:15",
                                            "roles/test.yaml:4"]), "\(errors)")
        XCTAssertEqual(errors.first { $0.line == 11 }?.hint, "did you mean 'int'?")
    }

    func testPlaceholderNamedLikeAContextVariableIsAnError() {
        let text = baseCmdlets.replacingOccurrences(of: "      Limit:", with: "      StateDir:")
            .replacingOccurrences(of: "when: Limit", with: "when: StateDir")
            .replacingOccurrences(of: "{Limit}", with: "x")
        let errors = loadErrors(cmdlets: text)
        XCTAssertTrue(errors.contains { $0.message.contains("collides with the context placeholder {stateDir}") },
                      "\(errors)")
    }

    func testUnknownPlaceholderIsAnError() {
        let text = baseCmdlets.replacingOccurrences(of: "\"{Identity}\"", with: "\"{Identiy}\"")
        let errors = loadErrors(cmdlets: text)
        XCTAssertEqual(errors.count, 1)
        XCTAssertEqual(errors.first?.hint, "did you mean '{Identity}'?")
    }

    func testExecutableMustBeAbsoluteOrLibexec() throws {
        XCTAssertEqual(loadErrors(cmdlets: baseCmdlets.replacingOccurrences(of: "/usr/bin/printf", with: "printf")).count, 1)
        XCTAssertEqual(loadErrors(cmdlets: baseCmdlets.replacingOccurrences(of: "/usr/bin/printf",
                                                                            with: "/usr/bin/../bin/sh")).count, 1)
        let libexec = try loadPolicy(cmdlets: baseCmdlets.replacingOccurrences(of: "/usr/bin/printf", with: "\"@libexec/tool\""))
        XCTAssertEqual(libexec.cmdlets.first?.backend?.executable, "/opt/gatehouse/libexec/tool")
    }

    func testUnconstrainedStringIsAWarningNotAnError() throws {
        let text = baseCmdlets.replacingOccurrences(of: "        pattern: '^[a-z]{1,16}$'\n", with: "")
        let snapshot = try loadPolicy(cmdlets: text)
        XCTAssertEqual(snapshot.warnings.count, 1)
        XCTAssertEqual(snapshot.warnings.first?.severity, .warning)
        XCTAssertEqual(snapshot.warnings.first?.line, 5)
        XCTAssertTrue(snapshot.warnings.first?.message.contains("has no constraint") ?? false)
    }

    func testEnvironmentNamesAreChecked() {
        let good = baseCmdlets + "\n      environment:\n        GOOD_NAME: \"{user}\"\n"
        XCTAssertNoThrow(try loadPolicy(cmdlets: good))
        for bad in ["lower", "PATH", "LD_PRELOAD", "1ABC"] {
            let text = baseCmdlets + "\n      environment:\n        \(bad): x\n"
            XCTAssertEqual(loadErrors(cmdlets: text).count, 1, bad)
        }
    }

    func testSwitchMayOnlyBeUsedAsWhen() throws {
        let text = baseCmdlets.replacingOccurrences(of: "      Limit:\n        type: int\n        min: 1\n        max: 10",
                                                    with: "      Force:\n        type: switch")
            .replacingOccurrences(of: "when: Limit\n          argv: [\"--limit\", \"{Limit}\"]",
                                  with: "when: Force\n          argv: [\"--force\"]")
        XCTAssertNoThrow(try loadPolicy(cmdlets: text))
        let bad = text.replacingOccurrences(of: "[\"--force\"]", with: "[\"--force={Force}\"]")
        XCTAssertTrue(loadErrors(cmdlets: bad).contains { $0.message.contains("switch parameter 'Force'") })
    }

    func testAnchorsAndAliasesAreRefused() {
        let text = baseCmdlets.replacingOccurrences(of: "synopsis: Show a thing.", with: "synopsis: &s Show a thing.\n    description: *s")
        XCTAssertFalse(loadErrors(cmdlets: text).isEmpty)
    }

    func testDuplicateCmdletAcrossFilesIsAnError() {
        let lower = baseCmdlets.replacingOccurrences(of: "Get-Thing:", with: "get-thing:")
        do {
            _ = try PolicyLoader.load(sources: [.init(kind: .cmdlets, file: "a.yaml", text: baseCmdlets),
                                                .init(kind: .cmdlets, file: "b.yaml", text: lower),
                                                .init(kind: .roles, file: "r.yaml", text: baseRoles)],
                                      libexecDirectory: "/x", reservedNames: reservedNames, host: SystemHostInspector())
            XCTFail("expected a duplicate error")
        } catch let error as PolicyLoadError {
            XCTAssertEqual(error.errors.count, 1)
            XCTAssertEqual(error.errors.first?.file, "b.yaml")
            XCTAssertEqual(error.errors.first?.hint, "first defined at a.yaml:2")
        } catch { XCTFail("\(error)") }
    }

    func testReservedBuiltinNameIsAnError() {
        let text = baseCmdlets.replacingOccurrences(of: "Get-Thing:", with: "Get-Help:")
        XCTAssertTrue(loadErrors(cmdlets: text, roles: "roles: {}").contains { $0.message.contains("built-in") })
    }

    // MARK: Aliases (only those the policy declares)

    static func withAliases(_ list: String) -> String {
        baseCmdlets.replacingOccurrences(of: "    synopsis: Show a thing.", with: "    synopsis: Show a thing.\n    aliases: \(list)")
    }

    func testDeclaredAliasFindsTheCmdletAndNothingElseDoes() throws {
        let snapshot = try loadPolicy(cmdlets: Self.withAliases("[gth, Show-Th1ng]"))
        XCTAssertEqual(snapshot.cmdlet(named: "GTH")?.name, "Get-Thing")
        XCTAssertEqual(snapshot.cmdlet(named: "show-th1ng")?.name, "Get-Thing")
        XCTAssertEqual(snapshot.cmdlet(named: "Get-Thing")?.aliases.map(\.name), ["gth", "Show-Th1ng"])
        XCTAssertEqual(snapshot.cmdlet(named: "Get-Thing")?.aliases.first?.line, 4)
        XCTAssertEqual(snapshot.cmdlet(named: "Get-Thing")?.aliases.first?.column, 15)
        // No implicit Get- prefix and no prefix matching of names.
        XCTAssertNil(snapshot.cmdlet(named: "Thing"))
        XCTAssertNil(snapshot.cmdlet(named: "gt"))
        XCTAssertNil(try loadPolicy().cmdlet(named: "gth"), "no alias without a declaration")
    }

    func testBadAliasesAreErrorsWithTheirLine() {
        for (list, needle) in [("[exit]", "built-in"), ("[Get-Help]", "built-in"), ("[New-LockboxRequest]", "built-in"),
                               ("[Select-Object]", "built-in"), ("[iex]", "dangerous"), ("[Invoke-Expression]", "dangerous"),
                               ("['g th']", "invalid alias"), ("['-x']", "invalid alias"), ("[gth-]", "invalid alias"),
                               ("['g\u{212A}th']", "invalid alias"), ("[get-thing]", "own name"), ("[gth, GTH]", "twice"),
                               ("gth", "aliases"), ("[1gth]", "invalid alias")] {
            let errors = loadErrors(cmdlets: Self.withAliases(list))
            XCTAssertTrue(errors.contains { $0.message.contains(needle) && $0.line == 4 && $0.file == "cmdlets/test.yaml" },
                          "\(list): \(errors)")
        }
    }

    func testAliasClashingWithAnotherCmdletOrAliasIsAnError() {
        let other = """
        cmdlets:
          Get-Other:
            synopsis: Other.
            aliases: [gth, Get-Thing]
            backend:
              executable: /usr/bin/true
        """
        do {
            _ = try PolicyLoader.load(sources: [.init(kind: .cmdlets, file: "a.yaml", text: Self.withAliases("[gth]")),
                                                .init(kind: .cmdlets, file: "b.yaml", text: other),
                                                .init(kind: .roles, file: "r.yaml", text: baseRoles)],
                                      libexecDirectory: "/x", reservedNames: reservedNames, host: SystemHostInspector())
            XCTFail("expected alias clashes")
        } catch let error as PolicyLoadError {
            let messages = error.errors.map { "\($0.file):\($0.line) \($0.message)" }
            XCTAssertTrue(messages.contains("b.yaml:4 alias 'gth' of 'Get-Other' is already an alias of 'Get-Thing'"), "\(messages)")
            XCTAssertTrue(messages.contains("b.yaml:4 alias 'Get-Thing' of 'Get-Other' is the name of cmdlet 'Get-Thing'"), "\(messages)")
        } catch { XCTFail("\(error)") }
    }

    func testRolesAndDenyRulesNameCmdletsNotAliases() {
        let roles = "roles:\n  Reader:\n    cmdlets: [gth]\n"
        let errors = loadErrors(cmdlets: Self.withAliases("[gth]"), roles: roles)
        XCTAssertTrue(errors.contains { $0.message.contains("unknown cmdlet 'gth'") && ($0.hint ?? "").contains("alias of 'Get-Thing'") },
                      "\(errors)")
    }

    func testLookupUsesASCIIFoldingOnly() throws {
        let snapshot = try loadPolicy()
        XCTAssertNotNil(snapshot.cmdlet(named: "GET-THING"))
        XCTAssertNotNil(snapshot.role(named: "reader"))
        // U+0130 (capital I with dot) and U+212A (Kelvin) fold to ASCII under
        // Unicode rules; they must not find anything here.
        XCTAssertNil(snapshot.cmdlet(named: "Get-Th\u{130}ng"))
        XCTAssertNil(snapshot.role(named: "Reader\u{212A}"))
    }

    func testRoleMaxDurationIsParsed() throws {
        let roles = baseRoles + "\n    maxDuration: 8h\n"
        XCTAssertEqual(try loadPolicy(roles: roles).role(named: "Reader")?.maxDurationSeconds, 8 * 3600)
        XCTAssertFalse(loadErrors(roles: baseRoles + "\n    maxDuration: eight hours\n").isEmpty)
    }

    func testTimeoutAndOutputLimitBounds() {
        XCTAssertFalse(loadErrors(cmdlets: baseCmdlets + "\n      timeout: 2h\n").isEmpty)
        XCTAssertFalse(loadErrors(cmdlets: baseCmdlets + "\n      timeout: 0s\n").isEmpty)
        XCTAssertFalse(loadErrors(cmdlets: baseCmdlets + "\n      outputLimit: 2TB\n").isEmpty)
        XCTAssertNoThrow(try loadPolicy(cmdlets: baseCmdlets + "\n      timeout: 5m\n      outputLimit: 64KB\n"))
    }
}
