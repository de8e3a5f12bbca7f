import CmdletPolicy
import CmdletShell
import GatehouseCore
import XCTest

/// Binding rules that need their own small policy: allowLeadingDash, lists
/// in positional and inline form, and the '@' rule.
final class BindingTests: XCTestCase {
    let policy = """
    cmdlets:
      Move-Window:
        synopsis: Takes signed offsets and a list of names.
        parameters:
          Offset:
            type: string
            pattern: '^-?[0-9]{1,4}$'
            allowLeadingDash: true
          Names:
            type: 'string[]'
            pattern: '^[a-z]{1,8}$'
            maxItems: 3
            position: 0
        backend:
          executable: /usr/bin/printf
          argv:
            - x
            - when: Offset
              argv: ["--offset", "{Offset}"]
            - when: Names
              argv: ["--name={Names}"]
    """

    func evaluateLine(_ line: String) throws -> Evaluation {
        let snapshot = try PolicyLoader.load(sources: [.init(kind: .cmdlets, file: "c.yaml", text: policy),
                                                       .init(kind: .roles, file: "r.yaml",
                                                             text: "roles:\n  R:\n    cmdlets: [Move-Window]\n")],
                                             libexecDirectory: "/unused", reservedNames: ShellBuiltins.reservedNames, host: SystemHostInspector())
        return evaluate(line: Array(line.utf8), claim: try makeClaim([RoleGrant(role: "R")]), snapshot: snapshot,
                        context: ExecutionContext(node: "n", stateDir: "/s", workingDirectory: "/"))
    }

    func argv(_ line: String) throws -> [String]? {
        if case .allowed(let c) = try evaluateLine(line) { return Array(c.argv.dropFirst()) }
        return nil
    }

    func message(_ line: String) throws -> String? {
        if case .rejected(let r) = try evaluateLine(line) { return r.message }
        return nil
    }

    func testLeadingDashOnlyWhereAllowedAndOnlyQuoted() throws {
        XCTAssertEqual(try argv("Move-Window -Offset '-12'"), ["x", "--offset", "-12"])
        XCTAssertEqual(try argv("Move-Window -Offset:-12"), ["x", "--offset", "-12"])
        // Unquoted, '-12' is a parameter name, never a value.
        XCTAssertEqual(try message("Move-Window -Offset -12"), "-Offset needs a value")
        XCTAssertEqual(try message("Move-Window '-abc'"), "values may not start with '-'")
        XCTAssertEqual(try message("Move-Window abc,-abc"), "values may not start with '-'")
    }

    func testListsPositionalInlineAndQuoted() throws {
        XCTAssertEqual(try argv("Move-Window a,b,c"), ["x", "--name=a", "--name=b", "--name=c"])
        XCTAssertEqual(try argv("Move-Window -Names:a,b"), ["x", "--name=a", "--name=b"])
        XCTAssertEqual(try message("Move-Window 'a,b'"), "-Names does not match the allowed pattern ^[a-z]{1,8}$")
        XCTAssertEqual(try message("Move-Window a,b,c,d"), "-Names takes at most 3 values")
        XCTAssertEqual(try message("Move-Window a,,b"), "-Names has an empty list item")
        XCTAssertEqual(try message("Move-Window -Names @list"), "'@' is not allowed at the start of a word: no splatting or arrays")
        XCTAssertEqual(try message("Move-Window -Names:@list"), "values may not start with '@'")
        XCTAssertEqual(try message("Move-Window a,@b"), "values may not start with '@'")
    }
}
