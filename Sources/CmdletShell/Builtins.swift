import CmdletPolicy
import GatehouseCore

/// The commands the shell answers itself. They go through the same lexer as
/// every other line, so they cannot smuggle anything either.
enum Builtins {
    static func evaluate(_ name: String, arguments: ArraySlice<Token>, claim: AccessClaim,
                         snapshot: PolicySnapshot) -> Evaluation {
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
            return .builtin(BuiltinResult(command: .getCommand, stdout: getCommand(claim, snapshot), stderr: "",
                                          exitStatus: 0))
        case "Get-Help":
            return getHelp(arguments, claim, snapshot)
        default: // Enter-Elevation
            return enterElevation(arguments)
        }
    }

    static func invalid(_ message: String, _ column: Int?, _ cmdlet: String) -> Evaluation {
        .rejected(Rejection(stage: .bind, reason: .invalid, message: message, column: column, cmdlet: cmdlet))
    }

    /// One value, positional or after `-Name` (any unique prefix of it).
    static func singleValue(_ arguments: ArraySlice<Token>, parameter: String, command: String)
        -> Result<(String, Int)?, BindError> {
        var found: (String, Int)?
        var i = arguments.startIndex
        while i < arguments.endIndex {
            let token = arguments[i]
            i += 1
            if found != nil {
                return .failure(BindError("\(command) takes one \(parameter)", column: token.column))
            }
            switch token.kind {
            case .pipe:
                return .failure(BindError("\(command) cannot be piped", column: token.column))
            case .bare, .quoted:
                if token.text.hasPrefix("-") { return .failure(BindError("values may not start with '-'", column: token.column)) }
                found = (token.text, token.column)
            case .parameter(let inline):
                guard !token.text.isEmpty, ASCII.hasPrefixIgnoringCase(parameter, token.text),
                      ASCII.isParameterName(token.text) else {
                    return .failure(BindError("\(command) has no parameter -\(Display.clip(token.text)); "
                                              + "it takes -\(parameter)", column: token.column))
                }
                if let inline {
                    found = (inline.text, inline.column)
                } else if i < arguments.endIndex, arguments[i].kind == .bare || arguments[i].kind == .quoted {
                    found = (arguments[i].text, arguments[i].column)
                    i += 1
                } else {
                    return .failure(BindError("-\(parameter) needs a value", column: token.column))
                }
                if let f = found, f.0.hasPrefix("-") || f.0.isEmpty {
                    return .failure(BindError("-\(parameter) needs a value that does not start with '-'", column: f.1))
                }
            }
        }
        return .success(found)
    }

    static func getCommand(_ claim: AccessClaim, _ snapshot: PolicySnapshot) -> String {
        let visible = Authorizer.visibleCmdlets(claim: claim, snapshot: snapshot)
        guard !visible.isEmpty else { return "No cmdlets are available to you right now.\n" }
        let width = visible.map { $0.name.count }.max() ?? 0
        var out = ""
        for c in visible {
            out += c.name + String(repeating: " ", count: width - c.name.count + 2) + oneLine(c.synopsis) + "\n"
        }
        return out
    }

    static func getHelp(_ arguments: ArraySlice<Token>, _ claim: AccessClaim, _ snapshot: PolicySnapshot) -> Evaluation {
        let name: String
        switch singleValue(arguments, parameter: "Name", command: "Get-Help") {
        case .failure(let e): return invalid(e.message, e.column, "Get-Help")
        case .success(nil):
            let text = """
            Type a cmdlet name followed by its parameters, e.g. Get-Mailbox -Identity alice.
              Get-Command        list the cmdlets you may run now
              Get-Help NAME      show what a cmdlet does and its parameters
              Enter-Elevation -Request N   redeem an approved elevation
              exit               end the session
            There are no variables, pipelines, redirections or scripts.

            """
            return .builtin(BuiltinResult(command: .getHelp(name: nil), stdout: text, stderr: "", exitStatus: 0))
        case .success(let value?): name = value.0
        }
        let visible = Authorizer.visibleCmdlets(claim: claim, snapshot: snapshot)
        guard let cmdlet = visible.first(where: { ASCII.equalsIgnoringCase($0.name, name) }) else {
            // Hidden and unknown cmdlets get the very same answer.
            return .builtin(BuiltinResult(command: .getHelp(name: name), stdout: "",
                                          stderr: "Get-Help: no help found for '\(Display.clip(name))'.\n",
                                          exitStatus: ExitStatus.failure))
        }
        return .builtin(BuiltinResult(command: .getHelp(name: cmdlet.name), stdout: help(cmdlet), stderr: "",
                                      exitStatus: 0))
    }

    static func help(_ c: CmdletDefinition) -> String {
        var out = "NAME\n    \(c.name)\n\nSYNOPSIS\n    \(oneLine(c.synopsis))\n\nSYNTAX\n    \(c.name)"
        for p in c.parameters {
            var piece = p.type == .switch ? "-\(p.name)" : "-\(p.name) <\(p.typeName)>"
            if p.position != nil && p.type != .switch { piece = "[-\(p.name)] <\(p.typeName)>" }
            out += " " + (p.mandatory ? piece : "[\(piece)]")
        }
        out += "\n"
        if let d = c.description { out += "\nDESCRIPTION\n    \(oneLine(d))\n" }
        if !c.parameters.isEmpty {
            out += "\nPARAMETERS\n"
            for p in c.parameters {
                var facts = [p.typeName, p.mandatory ? "mandatory" : "optional"]
                if let pos = p.position { facts.append("position \(pos)") }
                if let set = p.allowedValues { facts.append("one of: " + set.joined(separator: ", ")) }
                if let pattern = p.pattern { facts.append("pattern " + pattern.source) }
                if let min = p.minimum { facts.append("min " + (p.type == .size ? ByteSize.format(min) : String(min))) }
                if let max = p.maximum { facts.append("max " + (p.type == .size ? ByteSize.format(max) : String(max))) }
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

    static func oneLine(_ text: String) -> String {
        text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).joined(separator: " ")
            .trimmingCharacters(in: .whitespaces)
    }

    static func enterElevation(_ arguments: ArraySlice<Token>) -> Evaluation {
        switch singleValue(arguments, parameter: "Request", command: "Enter-Elevation") {
        case .failure(let e): return invalid(e.message, e.column, "Enter-Elevation")
        case .success(nil): return invalid("Enter-Elevation needs -Request N", nil, "Enter-Elevation")
        case .success(let value?):
            guard let number = ASCII.parseNonNegativeInt(value.0), number > 0 else {
                return invalid("-Request expects a request number", value.1, "Enter-Elevation")
            }
            return .builtin(BuiltinResult(command: .enterElevation(requestID: Int64(number)), stdout: "", stderr: "",
                                          exitStatus: 0))
        }
    }
}
