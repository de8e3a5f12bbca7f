import CmdletPolicy
import Foundation
import XCTest

/// `gatehouse policy check` lint: each finding the issue names, with file:line.
final class LintTests: XCTestCase {
    func interpreterCmdlet(_ argv: String, pattern: Bool = false) -> String {
        """
        cmdlets:
          Get-Thing:
            synopsis: Run something.
            parameters:
              Text:
                type: string
        \(pattern ? "        pattern: '^[a-z]+$'\n" : "")        mandatory: true
            backend:
              executable: /bin/sh
              argv: \(argv)
        """
    }

    func testInterpreterGivenATypedValueAsCodeIsAnError() {
        for argv in ["[\"-c\", \"{Text}\"]", "[\"-c\", \"echo {Text}\"]", "[\"-c{Text}\"]"] {
            let errors = loadErrors(cmdlets: interpreterCmdlet(argv, pattern: true))
            XCTAssertEqual(errors.count, 1, argv)
            XCTAssertTrue(errors.first?.message.contains("as code") ?? false, "\(argv): \(errors)")
            XCTAssertEqual(errors.first?.file, "cmdlets/test.yaml")
            XCTAssertEqual(errors.first?.line, 10) // the backend mapping
        }
    }

    func testInterpreterGivenAFreeStringIsAnError() {
        let errors = loadErrors(cmdlets: interpreterCmdlet("[\"-c\", 'printf %s \"$1\"', sh, \"{Text}\"]"))
        XCTAssertTrue(errors.contains { $0.message.contains("free string 'Text'") }, "\(errors)")
    }

    func testInterpreterWithConstrainedArgumentsIsOnlyAWarning() throws {
        let snapshot = try loadPolicy(cmdlets: interpreterCmdlet("[\"-c\", 'printf %s \"$1\"', sh, \"{Text}\"]", pattern: true))
        XCTAssertTrue(snapshot.warnings.contains { $0.message.contains("interpreter 'sh'") }, "\(snapshot.warnings)")
    }

    func testPwshCommandIsCaught() {
        let text = interpreterCmdlet("[\"-NoProfile\", \"-Command\", \"Get-Item {Text}\"]", pattern: true)
            .replacingOccurrences(of: "/bin/sh", with: "/usr/bin/pwsh")
        XCTAssertTrue(loadErrors(cmdlets: text).contains { $0.message.contains("interpreter 'pwsh' as code") })
    }

    func testWorldWritableBackendOrDirectoryIsAnError() throws {
        let dir = NSTemporaryDirectory() + "gatehouse-lint-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tool = dir + "/tool"
        try "#!/bin/sh\n".write(toFile: tool, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o757], ofItemAtPath: tool)
        let text = baseCmdlets.replacingOccurrences(of: "/usr/bin/printf", with: tool)
        let errors = loadErrors(cmdlets: text)
        XCTAssertTrue(errors.contains { $0.message.contains("backend '\(tool)' is writable by every user") }, "\(errors)")
        XCTAssertEqual(errors.first?.line, 15)

        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: tool)
        try FileManager.default.setAttributes([.posixPermissions: 0o777], ofItemAtPath: dir)
        XCTAssertTrue(loadErrors(cmdlets: text).contains { $0.message.contains("directory '\(dir)' above backend") })
    }

    func testBackendOwnedByAnotherNonRootAccountIsAnError() throws {
        // The host is a fake: no root needed to own a file as another account.
        var host = FakeHost()
        host.statuses["/usr/bin/printf"] = HostFileStatus(mode: 0o755, owner: 4242, isDirectory: false)
        let errors = loadErrors(host: host)
        XCTAssertTrue(errors.contains { $0.message.contains("owned by uid 4242") }, "\(errors)")
    }

    func testRoleMakingADangerousCommandVisibleIsAnError() {
        let cmdlets = baseCmdlets + """

          Invoke-Expression:
            synopsis: Looks harmless.
            backend:
              executable: /usr/bin/true
        """
        let errors = loadErrors(cmdlets: cmdlets, roles: "roles:\n  Reader:\n    cmdlets: [Get-Thing, invoke-expression]\n")
        XCTAssertEqual(errors.count, 1, "\(errors)")
        XCTAssertTrue(errors.first?.message.contains("dangerous command 'invoke-expression'") ?? false)
        XCTAssertEqual(errors.first?.file, "roles/test.yaml")
        XCTAssertEqual(errors.first?.line, 3)
    }

    func testNumbersWithoutBoundsAreWarned() throws {
        let text = baseCmdlets.replacingOccurrences(of: "        min: 1\n        max: 10\n", with: "")
        let snapshot = try loadPolicy(cmdlets: text)
        XCTAssertTrue(snapshot.warnings.contains { $0.message == "int parameter 'Limit' has no constraint" },
                      "\(snapshot.warnings)")
    }
}

/// Per-role restrictions: parsed, checked against the definition, narrowing only.
final class RoleRestrictionTests: XCTestCase {
    func roles(_ restriction: String) -> String {
        "roles:\n  Reader:\n    cmdlets:\n      - Get-Thing:\n          parameters:\n\(restriction)"
    }

    func testRestrictionsNarrow() throws {
        let snapshot = try loadPolicy(roles: roles("            Identity: {pattern: '^a.*$'}\n            Limit: {max: 5}\n"))
        let role = try XCTUnwrap(snapshot.role(named: "Reader"))
        XCTAssertNil(role.violation(cmdlet: "Get-Thing", values: [("Identity", .string("abc")), ("Limit", .int(5))]))
        XCTAssertEqual(role.violation(cmdlet: "get-thing", values: [("Identity", .string("bcd"))]),
                       "-Identity must match ^a.*$")
        // Patterns match the whole value, in restrictions too.
        let whole = try loadPolicy(roles: roles("            Identity: {pattern: '^a'}\n"))
        XCTAssertNotNil(whole.role(named: "Reader")?.violation(cmdlet: "Get-Thing", values: [("Identity", .string("ab"))]))
        XCTAssertEqual(role.violation(cmdlet: "Get-Thing", values: [("Limit", .int(6))]), "-Limit must be at most 5")
    }

    func testRestrictionsThatWouldWidenAreErrors() {
        let errors = loadErrors(roles: roles("            Limit: {max: 50}\n"))
        XCTAssertTrue(errors.first?.message.contains("above the cmdlet's own max") ?? false, "\(errors)")
        XCTAssertEqual(errors.first?.line, 6)
        let unknown = loadErrors(roles: roles("            Identiti: {pattern: '^a'}\n"))
        XCTAssertTrue(unknown.first?.message.contains("unknown parameter 'Identiti'") ?? false, "\(unknown)")
        XCTAssertTrue(unknown.first?.hint?.contains("Identity") ?? false)
        let mandatory = loadErrors(roles: roles("            Identity: {forbidden: true}\n"))
        XCTAssertTrue(mandatory.first?.message.contains("cannot be forbidden") ?? false, "\(mandatory)")
        let typo = loadErrors(roles: roles("            Limit: {maximum: 5}\n"))
        XCTAssertTrue(typo.first?.message.contains("maximum") ?? false, "\(typo)")
    }
}

/// Deny rules: parsed strictly, checked against the cmdlet, matching values.
final class DenyRuleTests: XCTestCase {
    func testDenyRulesLoadAndMatch() throws {
        let snapshot = try loadPolicy(roles: baseRoles + "\ndeny:\n  - cmdlet: get-thing\n    parameters:\n"
                                      + "      Limit: {min: 8}\n    reason: too many\n")
        let rule = try XCTUnwrap(snapshot.denyRules.first)
        XCTAssertEqual(rule.cmdlet, "Get-Thing")
        XCTAssertTrue(rule.matches(cmdlet: "Get-Thing", values: [("Limit", .int(9))]))
        XCTAssertFalse(rule.matches(cmdlet: "Get-Thing", values: [("Limit", .int(7))]))
        XCTAssertFalse(rule.matches(cmdlet: "Get-Thing", values: []), "an absent parameter does not match")
    }

    func testBadDenyRulesAreErrors() {
        XCTAssertTrue(loadErrors(roles: baseRoles + "\ndeny:\n  - cmdlet: Get-Thingy\n").first?.message
            .contains("unknown cmdlet 'Get-Thingy'") ?? false)
        XCTAssertTrue(loadErrors(roles: baseRoles + "\ndeny:\n  - cmdlet: Get-Thing\n    parameters: {Limit: {forbidden: true}}\n")
            .first?.message.contains("no meaning in a deny rule") ?? false)
        XCTAssertTrue(loadErrors(roles: baseRoles + "\ndeny:\n  - cmdlet: Get-Thing\n    when: always\n")
            .first?.message.contains("when") ?? false)
    }
}

/// duration, datetime and list values.
final class NewTypeTests: XCTestCase {
    func parameter(_ type: ParameterType, list: Bool = false, min: Int? = nil, max: Int? = nil) -> ParameterDefinition {
        ParameterDefinition(name: "P", type: type, mandatory: false, position: nil, description: nil, pattern: nil,
                            allowedValues: nil, minimum: min, maximum: max, maxLength: 64, isList: list, maxItems: 3)
    }

    func testDurations() {
        let p = parameter(.duration, min: 60, max: 86400)
        XCTAssertEqual(try p.validate("2h").get(), .duration(seconds: 7200))
        XCTAssertEqual(try p.validate("1d").get().argumentText, "86400")
        for bad in ["30s", "2d", "1.5h", "h", "-1m", "１h", "10"] { XCTAssertThrowsError(try p.validate(bad).get(), bad) }
    }

    func testDateTimes() {
        let p = parameter(.datetime)
        XCTAssertEqual(try p.validate("2026-01-31").get().argumentText, "2026-01-31T00:00:00Z")
        XCTAssertEqual(try p.validate("2024-02-29T23:59:59Z").get().argumentText, "2024-02-29T23:59:59Z")
        XCTAssertEqual(try p.validate("1970-01-01T00:00:00Z").get(), .dateTime(0))
        for bad in ["2026-02-29", "2026-13-01", "2026-1-01", "2026-01-31T24:00:00Z", "2026-01-31T08:00:00",
                    "2026-01-31 08:00:00Z", "2026-01-31T08:00:00+01:00", "２０２６-01-31", "1969-12-31"] {
            XCTAssertThrowsError(try p.validate(bad).get(), bad)
        }
    }

    func testLists() {
        let p = parameter(.int, list: true, min: 1, max: 9)
        XCTAssertEqual(try p.validate(items: ["1", "2"]).get(), .list([.int(1), .int(2)]))
        XCTAssertThrowsError(try p.validate(items: ["1", ""]).get())
        XCTAssertThrowsError(try p.validate(items: ["1", "2", "3", "4"]).get())
        XCTAssertThrowsError(try p.validate(items: ["1", "-2"]).get())
        XCTAssertThrowsError(try p.validate(items: ["1", "@x"]).get())
        XCTAssertThrowsError(try p.validate(items: ["1", "10"]).get())
    }
}
