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
                lines.append("output: json → " + (names.isEmpty ? "Format-List or Format-Table (default: a list for one object, a table for several)" : names.joined(separator: " | ")))
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
        func list(_ names: [String]?) -> String { names.map { " " + $0.joined(separator: ",") } ?? "" }
        switch stage {
        case .select(let s):
            var out = "Select-Object" + list(s.properties) + (s.expand.map { " -ExpandProperty \($0)" } ?? "")
            if s.skip > 0 { out += " -Skip \(s.skip)" }
            if let n = s.first { out += " -First \(n)" }
            if let n = s.last { out += " -Last \(n)" }
            return out + (s.unique ? " -Unique" : "")
        case .whereObject(let p, let test):
            return "Where-Object \(p) -\(test.parameterName) " + test.operands.map { "'\($0)'" }.joined(separator: ",")
        case .sort(let p, let descending, let unique):
            return "Sort-Object" + list(p) + (descending ? " -Descending" : "") + (unique ? " -Unique" : "")
        case .group(let p, let noElement): return "Group-Object" + list(p) + (noElement ? " -NoElement" : "")
        case .measure(let p, _, _, _, _): return "Measure-Object" + (p.map { " \($0)" } ?? "")
        case .formatTable(let p, let layout):
            return "Format-Table" + list(p) + (layout.autoSize ? " -AutoSize" : "") + (layout.wrap ? " -Wrap" : "")
        case .formatList(let p): return "Format-List" + list(p)
        case .convertToJson: return "ConvertTo-Json"
        case .convertToCsv: return "ConvertTo-Csv"
        }
    }

    static func jsonArray(_ items: [String]) -> String {
        "[" + items.map { JSONValue.quote($0) }.joined(separator: ", ") + "]"
    }
}
