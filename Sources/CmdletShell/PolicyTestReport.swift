import CmdletPolicy
import Foundation
import GatehouseCore
import PolicyFormat

/// The text `gatehouse policy test` prints for one evaluated line: the
/// decision, the role (and where it is declared) that decided it, and the
/// exact argv and environment that would run.
///
/// It is computed from the very `Evaluation` the daemon acts on, and the
/// golden decision tests compare this same text, so the offline tester, the
/// golden files and the daemon cannot drift apart.
public enum PolicyTestReport {
    /// - Parameter pathBase: a prefix stripped from policy file paths, so
    ///   reports (and golden files) do not depend on where the checkout is.
    public static func render(_ evaluation: Evaluation, snapshot: PolicySnapshot, pathBase: String = "")
        -> (text: String, exitStatus: Int32) {
        func place(_ file: String, _ line: Int) -> String {
            var f = file
            if !pathBase.isEmpty, f.hasPrefix(pathBase) { f = String(f.dropFirst(pathBase.count)) }
            if f.hasPrefix("/") && !pathBase.isEmpty { f.removeFirst() }
            return "\(f):\(line)"
        }
        var lines: [String] = []
        let status: Int32
        switch evaluation {
        case .empty:
            lines.append("decision: none (empty line, nothing runs)")
            status = 0
        case .builtin(let result):
            lines.append("decision: built-in")
            lines.append("builtin: \(describe(result.command))")
            for (name, text) in [("stdout", result.stdout), ("stderr", result.stderr)] where !text.isEmpty {
                lines.append("\(name):")
                for l in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast(text.hasSuffix("\n") ? 1 : 0) {
                    lines.append("  | " + l)
                }
            }
            status = result.exitStatus
        case .rejected(let r):
            lines.append("decision: deny")
            lines.append("stage: \(r.stage.rawValue)")
            if let cmdlet = r.cmdlet { lines.append("cmdlet: \(cmdlet)") }
            if let column = r.column { lines.append("column: \(column)") }
            lines.append("reason: " + TerminalText.sanitize(r.message, keepLineBreaks: false))
            status = r.exitStatus
        case .allowed(let c):
            lines.append("decision: allow")
            let role = snapshot.role(named: c.role)
            lines.append("role: \(c.role)" + (role.map { " (\(place($0.file, $0.line)))" } ?? ""))
            var grant = c.grant.source == .baseline ? "baseline" : "elevation"
            if case .elevation(let id) = c.grant.source { grant += " #\(id)" }
            if let scope = c.grant.scope { grant += ", scope \(scope)" }
            lines.append("grant: \(grant)")
            lines.append("cmdlet: \(c.cmdlet.name) (\(place(c.cmdlet.file, c.cmdlet.line)))")
            lines.append("argv: " + jsonArray(c.argv))
            if !c.environment.isEmpty {
                lines.append("environment: " + c.environment.keys.sorted().map { "\($0)=\(c.environment[$0] ?? "")" }
                    .joined(separator: " "))
            }
            lines.append("timeout: \(PolicyDuration.format(c.timeoutSeconds)), output limit: \(ByteSize.format(c.outputLimit))")
            if c.cmdlet.output == .json {
                let names = c.formatters.map(describe)
                lines.append("output: json → " + (names.isEmpty ? "Format-Table (default)" : names.joined(separator: " | ")))
            }
            status = 0
        }
        return (lines.joined(separator: "\n") + "\n", status)
    }

    static func describe(_ command: BuiltinCommand) -> String {
        switch command {
        case .exitSession: return "Exit-Session"
        case .getCommand: return "Get-Command"
        case .getAccessClaim: return "Get-AccessClaim"
        case .getHelp(let name): return "Get-Help" + (name.map { " \($0)" } ?? "")
        case .enterElevation(let id): return "Enter-Elevation -Id \(id)"
        }
    }

    static func describe(_ stage: FormatterStage) -> String {
        switch stage {
        case .select(let p, let first):
            return "Select-Object " + p.joined(separator: ",") + (first.map { " -First \($0)" } ?? "")
        case .whereObject(let p, let test):
            switch test {
            case .equal(let v): return "Where-Object \(p) -EQ '\(v)'"
            case .notEqual(let v): return "Where-Object \(p) -NE '\(v)'"
            case .like(let v): return "Where-Object \(p) -Like '\(v)'"
            case .match(let r): return "Where-Object \(p) -Match '\(r.source)'"
            }
        case .sort(let p, let descending): return "Sort-Object " + p.joined(separator: ",") + (descending ? " -Descending" : "")
        case .measure(let p, _, _, _, _): return "Measure-Object" + (p.map { " \($0)" } ?? "")
        case .formatTable(let p): return "Format-Table" + (p.map { " " + $0.joined(separator: ",") } ?? "")
        case .formatList(let p): return "Format-List" + (p.map { " " + $0.joined(separator: ",") } ?? "")
        case .convertToJson: return "ConvertTo-Json"
        }
    }

    static func jsonArray(_ items: [String]) -> String {
        "[" + items.map { JSONValue.quote($0) }.joined(separator: ", ") + "]"
    }
}
