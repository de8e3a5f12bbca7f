import CmdletPolicy
import CmdletShell
import Foundation
import GatehouseCore
import XCTest
import Yams

/// Golden decision tests: policy + claim + line → the exact report that
/// `gatehouse policy test` prints (decision, deciding role, argv).
///
/// Each `Golden/<name>.yaml` lists cases; `Golden/<name>.out` holds the
/// expected reports. Both go through `evaluate()` and `PolicyTestReport`,
/// the code the daemon and `gatehouse policy test` use.
///
/// Regenerate after an intended change with
///   GATEHOUSE_UPDATE_GOLDEN=1 swift test --filter GoldenDecisionTests
/// and review the diff line by line before committing it.
final class GoldenDecisionTests: XCTestCase {
    static let goldenDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Golden")
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    /// Fixed so reports do not depend on the checkout or the clock.
    static let libexec = "/usr/libexec/gatehouse"
    static let now = Date(timeIntervalSince1970: 1_767_225_600) // 2026-01-01T00:00:00Z

    func testGoldenDecisions() throws {
        let update = ProcessInfo.processInfo.environment["GATEHOUSE_UPDATE_GOLDEN"] == "1"
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.goldenDirectory.path)
            .filter { $0.hasSuffix(".yaml") }.sorted()
        XCTAssertFalse(files.isEmpty, "no golden files found in \(Self.goldenDirectory.path)")
        var caseCount = 0
        for file in files {
            let url = Self.goldenDirectory.appendingPathComponent(file)
            let spec = try XCTUnwrap(try Yams.load(yaml: String(contentsOf: url, encoding: .utf8)) as? [String: Any],
                                     file)
            let policyPath = Self.repository.appendingPathComponent(try XCTUnwrap(spec["policy"] as? String, file)).path
            let snapshot = try PolicyLoader.load(directory: policyPath, libexecDirectory: Self.libexec,
                                                 reservedNames: ShellBuiltins.reservedNames, host: SystemHostInspector())
            let cases = try XCTUnwrap(spec["cases"] as? [[String: Any]], file)
            var actual = ""
            for c in cases {
                let line = try XCTUnwrap(c["line"] as? String, "\(file): a case without 'line'")
                let grants = (c["grants"] as? [String]) ?? []
                let user = (c["user"] as? String) ?? "alice"
                let claim = AccessClaim(user: try XCTUnwrap(UserName(user)), session: SessionID(rawValue: "golden"),
                                        issuedAt: Self.now, grants: grants.map(Self.grant))
                let context = ExecutionContext(node: "golden", stateDir: "/var/lib/gatehouse", workingDirectory: "/")
                let evaluation = evaluate(line: Array(line.utf8), claim: claim, snapshot: snapshot, context: context)
                let report = PolicyTestReport.render(evaluation, snapshot: snapshot, pathBase: Self.repository.path)
                actual += "### \(user) \(grants) \(line)\n\(report.text)exit: \(report.exitStatus)\n\n"
                caseCount += 1
            }
            let outURL = Self.goldenDirectory.appendingPathComponent(String(file.dropLast(5)) + ".out")
            if update {
                try actual.write(to: outURL, atomically: true, encoding: .utf8)
                continue
            }
            let expected = try String(contentsOf: outURL, encoding: .utf8)
            if expected != actual {
                let e = expected.split(separator: "\n", omittingEmptySubsequences: false)
                let a = actual.split(separator: "\n", omittingEmptySubsequences: false)
                let first = zip(e, a).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(e.count, a.count)
                XCTFail("\(file): differs from \(outURL.lastPathComponent) at line \(first + 1):\n"
                        + "expected: \(first < e.count ? String(e[first]) : "<end>")\n"
                        + "actual:   \(first < a.count ? String(a[first]) : "<end>")")
            }
        }
        XCTAssertGreaterThanOrEqual(caseCount, 30)
    }

    /// `Role` (baseline), `Role@tenant` or `Role@tenant#42` (elevation #42,
    /// one hour left).
    static func grant(_ text: String) -> RoleGrant {
        let (main, request) = text.split(separator: "#").first.map { m in
            (String(m), text.split(separator: "#").dropFirst().first.flatMap { Int64($0) })
        } ?? (text, nil)
        let parts = main.split(separator: "@", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return RoleGrant(role: main) }
        return RoleGrant(role: parts[0], scope: parts[1], expires: now.addingTimeInterval(3600),
                         source: .elevation(requestID: request ?? 1))
    }
}
