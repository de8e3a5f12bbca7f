import CmdletPolicy
import Foundation
import GatehouseCore
import PolicyFormat

/// The commands the shell answers itself. They go through the same lexer as
/// every other line, so they cannot smuggle anything either.
enum Builtins {
    static func evaluate(_ name: String, arguments: ArraySlice<Token>, claim: AccessClaim,
                         snapshot: PolicySnapshot, provided: [CmdletDefinition]) -> Evaluation {
        switch name {
        case "exit", "Exit-Session":
            if let extra = arguments.first {
                return invalid("\(name) takes no arguments", extra.column, name)
            }
            return .builtin(BuiltinResult(command: .exitSession, stdout: "", stderr: "", exitStatus: 0))
        case "Get-Command":
            if let extra = arguments.first {
                return invalid("Get-Command takes no arguments", extra.column, name)
            }
            return .builtin(BuiltinResult(command: .getCommand, stdout: getCommand(claim, snapshot, provided),
                                          stderr: "", exitStatus: 0))
        case "Get-Help":
            return getHelp(arguments, claim, snapshot, provided)
        case "Get-AccessClaim":
            if let extra = arguments.first {
                return invalid("Get-AccessClaim takes no arguments", extra.column, name)
            }
            return .builtin(BuiltinResult(command: .getAccessClaim, stdout: accessClaim(claim, snapshot), stderr: "",
                                          exitStatus: 0))
        default: // Enter-Elevation
            return enterElevation(arguments)
        }
    }

    static func invalid(_ message: String, _ column: Int?, _ cmdlet: String) -> Evaluation {
        .rejected(Rejection(stage: .bind, reason: .invalid, message: message, column: column, cmdlet: cmdlet))
    }

    /// The cmdlets the claim makes visible, then the application's own
    /// commands, which every user sees (they authorize per request).
    static func getCommand(_ claim: AccessClaim, _ snapshot: PolicySnapshot, _ provided: [CmdletDefinition]) -> String {
        let visible = Authorizer.visibleCmdlets(claim: claim, snapshot: snapshot) + provided
        guard !visible.isEmpty else { return "No cmdlets are available to you right now.\n" }
        let width = visible.map { $0.name.count }.max() ?? 0
        var out = ""
        for c in visible {
            out += c.name + String(repeating: " ", count: width - c.name.count + 2) + oneLine(c.synopsis)
            if !c.aliases.isEmpty { out += " (alias: " + c.aliases.map(\.name).joined(separator: ", ") + ")" }
            out += "\n"
        }
        return out
    }

    static let helpParameters: [ParameterDefinition] = [
        ParameterDefinition(name: "Name", type: .string, mandatory: false, position: 0, description: nil,
                            pattern: try? AnchoredPattern("[A-Za-z][A-Za-z0-9-]{0,63}"), allowedValues: nil,
                            minimum: nil, maximum: nil, maxLength: 64),
        ParameterDefinition(name: "Examples", type: .switch, mandatory: false, position: nil, description: nil,
                            pattern: nil, allowedValues: nil, minimum: nil, maximum: nil, maxLength: 1),
        ParameterDefinition(name: "Full", type: .switch, mandatory: false, position: nil, description: nil,
                            pattern: nil, allowedValues: nil, minimum: nil, maximum: nil, maxLength: 1),
    ]

    static let formatterHelp: [(name: String, syntax: String, what: String)] = [
        ("Select-Object", " [[-Property] NAME[,NAME...] | -ExpandProperty NAME] [-Skip N] [-First N | -Last N] [-Unique]",
         "Skips the first N objects, keeps the first or last N of the rest, then the named properties (or one "
            + "property's values), then drops repeats (-Unique)."),
        ("Where-Object", " [-Property] NAME -OPERATOR VALUE",
         "Keeps objects whose property compares true. Operators: "
            + WhereTest.Operator.allCases.map { "-" + $0.rawValue }.joined(separator: " ")
            + "; and case-sensitive: " + WhereTest.Operator.allCases.map { "-C" + $0.rawValue }.joined(separator: " ")
            + ". Numbers and sizes (12MB) compare as numbers, other text ordinally. -In takes a "
            + "comma list. On a list property an object is kept when any item passes; -Contains asks whether the "
            + "list holds VALUE. -Match is bounded in length and time."),
        ("Sort-Object", " [[-Property] NAME[,NAME...]] [-Descending] [-Unique]",
         "Sorts objects, numbers as numbers, text ordinally; -Unique keeps one of each key."),
        ("Group-Object", " [-Property] NAME[,NAME...] [-NoElement]",
         "One object per distinct value: Count, Name and the Group of objects (not with -NoElement)."),
        ("Measure-Object", " [[-Property] NAME] [-Sum] [-Average] [-Minimum] [-Maximum]",
         "Counts objects, and sums, averages or bounds a numeric property."),
        ("Format-Table", " [[-Property] NAME[,NAME...]] [-AutoSize] [-Wrap]",
         "Shows objects as a table that fits the terminal (the default for several objects). Columns are at "
            + "most \(Pipeline.maxColumnWidth) wide unless -AutoSize; -Wrap continues long cells on the next lines "
            + "instead of cutting them."),
        ("Format-List", " [[-Property] NAME[,NAME...]]", "Shows one property per line (the default for one object)."),
        ("ConvertTo-Json", "", "Shows the objects as JSON."),
        ("ConvertTo-Csv", "", "Shows the objects as CSV: a header line, then one quoted line per object."),
    ]

    /// How much of a cmdlet's help to show.
    enum HelpDetail { case normal, examples, full }

    static func getHelp(_ arguments: ArraySlice<Token>, _ claim: AccessClaim, _ snapshot: PolicySnapshot,
                        _ provided: [CmdletDefinition]) -> Evaluation {
        let bound: [BoundParameter]
        switch Binder.bind(arguments, parameters: helpParameters, command: "Get-Help") {
        case .failure(let e): return invalid(e.message, e.column, "Get-Help")
        case .success(let b): bound = b
        }
        let examples = bound.contains { $0.name == "Examples" }, full = bound.contains { $0.name == "Full" }
        if examples && full { return invalid("use -Examples or -Full, not both", nil, "Get-Help") }
        guard let name = bound.first(where: { $0.name == "Name" })?.value.argumentText else {
            let text = """
            Type a cmdlet name followed by its parameters, e.g. Get-Mailbox -Identity alice.
              Get-Command        list the cmdlets you may run now
              Get-Help NAME [-Examples|-Full]   show what a cmdlet does and its parameters
              Get-AccessClaim    who you are, your roles, where and until when
              Enter-Elevation -Id N   redeem an approved elevation (Lockbox)
              Exit-Session       end the session (or: exit)
            A cmdlet's objects can be piped into the built-in formatters
            (Get-Help NAME shows each):
              Where-Object, Select-Object, Sort-Object, Group-Object, Measure-Object,
              Format-Table, Format-List, ConvertTo-Json, ConvertTo-Csv.
            There are no variables, scripts, redirections or cmdlet-to-cmdlet pipelines.

            """
            return .builtin(BuiltinResult(command: .getHelp(name: nil), stdout: text, stderr: "", exitStatus: 0))
        }
        if let syntax = formatterHelp.first(where: { ASCII.equalsIgnoringCase($0.name, name) }) {
            let text = "NAME\n    \(syntax.name)\n\nSYNTAX\n    ... | \(syntax.name)\(syntax.syntax)\n\nDESCRIPTION\n"
                + indented(syntax.what + " Arguments are data only: property names, numbers and literal values.")
            return .builtin(BuiltinResult(command: .getHelp(name: syntax.name), stdout: text, stderr: "", exitStatus: 0))
        }
        let visible = Authorizer.visibleCmdlets(claim: claim, snapshot: snapshot) + provided + [enterElevation]
        guard let cmdlet = visible.first(where: { $0.isNamed(name) }) else {
            // Hidden and unknown cmdlets get the very same answer.
            return .builtin(BuiltinResult(command: .getHelp(name: name), stdout: "",
                                          stderr: "Get-Help: no help found for '\(Display.clip(name))'.\n",
                                          exitStatus: ExitStatus.failure))
        }
        let detail: HelpDetail = full ? .full : (examples ? .examples : .normal)
        return .builtin(BuiltinResult(command: .getHelp(name: cmdlet.name), stdout: help(cmdlet, detail: detail),
                                      stderr: "", exitStatus: 0))
    }

    /// `Get-AccessClaim`: the claim as the gateway evaluates it right now.
    static func accessClaim(_ claim: AccessClaim, _ snapshot: PolicySnapshot) -> String {
        let formatter = ISO8601DateFormatter()
        var out = "User     : \(claim.user.rawValue)\nSession  : \(claim.session.rawValue)\n"
        out += "Evaluated: \(formatter.string(from: claim.issuedAt))\n"
        if claim.grants.isEmpty { return out + "Roles    : none\n" }
        out += "Roles    :\n"
        for grant in claim.grants {
            var line = "  " + (snapshot.role(named: grant.role)?.name ?? grant.role)
            switch grant.source {
            case .baseline: line += "  baseline"
            case .elevation(let id): line += "  elevation #\(id)"
            }
            line += "  scope " + (grant.scope ?? "(none)")
            line += "  until " + (grant.expires.map { formatter.string(from: $0) } ?? "(no expiry)")
            out += TerminalText.sanitize(line, keepLineBreaks: false) + "\n"
        }
        return out
    }

    static func help(_ c: CmdletDefinition, detail: HelpDetail = .full) -> String {
        var out = "NAME\n    \(c.name)\n\nSYNOPSIS\n    \(oneLine(c.synopsis))\n"
        if !c.aliases.isEmpty { out += "\nALIASES\n    " + c.aliases.map(\.name).joined(separator: ", ") + "\n" }
        if detail == .examples {
            out += "\nEXAMPLES\n"
            if c.examples.isEmpty { out += "    (none)\n" }
            for e in c.examples {
                out += "    \(oneLine(e.command))\n"
                if let d = e.description { out += "        \(oneLine(d))\n" }
            }
            return TerminalText.sanitize(out)
        }
        out += "\nSYNTAX\n    \(c.name)"
        for p in c.parameters {
            var piece = p.type == .switch ? "-\(p.name)" : "-\(p.name) <\(p.typeName)>"
            if p.position != nil && p.type != .switch { piece = "[-\(p.name)] <\(p.typeName)>" }
            out += " " + (p.mandatory ? piece : "[\(piece)]")
        }
        out += "\n"
        if let d = c.description { out += "\nDESCRIPTION\n    \(oneLine(d))\n" }
        if detail == .normal {
            out += "\nREMARKS\n    Get-Help \(c.name) -Full shows the parameters; -Examples the examples.\n"
            return TerminalText.sanitize(out)
        }
        if c.output == .json { out += "\nOUTPUTS\n    Objects (JSON); pipe them into the built-in formatters.\n" }
        if !c.parameters.isEmpty {
            out += "\nPARAMETERS\n"
            for p in c.parameters {
                var facts = [p.typeName, p.mandatory ? "mandatory" : "optional"]
                if let pos = p.position { facts.append("position \(pos)") }
                if let set = p.allowedValues { facts.append("one of: " + set.joined(separator: ", ")) }
                if let pattern = p.pattern { facts.append("pattern " + pattern.source) }
                func bound(_ n: Int) -> String {
                    switch p.type {
                    case .size: return ByteSize.format(n)
                    case .duration: return PolicyDuration.format(n)
                    default: return String(n)
                    }
                }
                if let min = p.minimum { facts.append("min " + bound(min)) }
                if let max = p.maximum { facts.append("max " + bound(max)) }
                if p.isList { facts.append("comma list of at most \(p.maxItems)") }
                out += "    -\(p.name)  (\(facts.joined(separator: ", ")))\n"
                if let d = p.description { out += "        \(oneLine(d))\n" }
            }
        }
        if !c.examples.isEmpty {
            out += "\nEXAMPLES\n"
            for e in c.examples {
                out += "    \(oneLine(e.command))\n"
                if let d = e.description { out += "        \(oneLine(d))\n" }
            }
        }
        return TerminalText.sanitize(out)
    }

    /// Words in lines of at most 76 columns, each indented by four spaces.
    static func indented(_ text: String) -> String {
        var out = "", line = ""
        for word in text.split(separator: " ") {
            if !line.isEmpty && line.count + 1 + word.count > 72 { out += "    " + line + "\n"; line = "" }
            line += (line.isEmpty ? "" : " ") + word
        }
        return out + "    " + line + "\n"
    }

    static func oneLine(_ text: String) -> String {
        text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).joined(separator: " ")
            .trimmingCharacters(in: .whitespaces)
    }

    /// `Enter-Elevation`'s declaration: bound like any cmdlet, answered by
    /// the session (it needs the session's no-echo prompt).
    static let enterElevation = CmdletDefinition(
        name: "Enter-Elevation",
        synopsis: "Redeems an approved Lockbox request in this session; prompts for its one-time credential.",
        description: "The credential is read without echo and works once. The grant's clock starts now.",
        examples: [.init(command: "Enter-Elevation -Id 12", description: "Redeem request 12.")],
        parameters: [
            ParameterDefinition(name: "Id", type: .int, mandatory: true, position: 0, description: "The request number.",
                                pattern: nil, allowedValues: nil, minimum: 1, maximum: nil, maxLength: 20),
        ],
        file: "CmdletShell")

    static func enterElevation(_ arguments: ArraySlice<Token>) -> Evaluation {
        switch Binder.bind(arguments, to: enterElevation) {
        case .failure(let e): return invalid(e.message, e.column, enterElevation.name)
        case .success(let bound):
            // -Id is mandatory, so a successful binding holds it; the guard
            // only keeps a later change of the declaration from trapping.
            guard let id = bound.int("Id") else { return invalid("-Id is missing", nil, enterElevation.name) }
            return .builtin(BuiltinResult(command: .enterElevation(requestID: Int64(id)), stdout: "", stderr: "",
                                          exitStatus: 0))
        }
    }
}
