import Foundation
import GatehouseCore
import PolicyFormat
import Yams

/// Turns one `cmdlets:` file into validated `CmdletDefinition`s, reporting
/// every problem through the reader's collector.
final class CmdletParser {
    let reader: YAMLReader
    let libexecDirectory: String
    /// Command names the caller answers itself (see `PolicyLoader.load`).
    let reservedNames: [String]
    /// Accounts and backend files are looked up through here, never directly.
    let host: HostInspector
    /// Parameter names of the cmdlet being parsed, valid or not: a template
    /// naming a parameter that failed validation gets no second error.
    var declaredParameters = Set<String>()
    /// The validated parameters of the cmdlet being parsed (for lint).
    var currentParameters: [ParameterDefinition] = []

    init(reader: YAMLReader, libexecDirectory: String, reservedNames: [String], host: HostInspector) {
        self.reader = reader
        self.libexecDirectory = libexecDirectory
        self.reservedNames = reservedNames
        self.host = host
    }

    static let cmdletKeys = ["synopsis", "description", "aliases", "examples", "parameters", "backend", "output"]
    static let parameterKeys = ["type", "description", "mandatory", "position", "pattern", "set", "min", "max",
                                "maxLength", "maxItems", "allowLeadingDash"]
    static let backendKeys = ["executable", "argv", "environment", "timeout", "outputLimit", "runAs"]
    static let exampleKeys = ["command", "description"]
    static let groupKeys = ["when", "argv"]

    /// Programs that would run a string they are handed as code.
    static let interpreters: Set<String> = ["sh", "bash", "dash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish",
                                            "busybox", "python", "python3", "perl", "ruby", "node", "nodejs", "deno",
                                            "php", "lua", "tclsh", "expect", "julia", "Rscript", "pwsh",
                                            "powershell", "pwsh-preview", "env", "xargs", "awk", "gawk", "mawk",
                                            "sed", "ssh", "sudo", "su", "doas", "find"]
    static let codeFlags: Set<String> = ["-c", "-e", "-command", "-encodedcommand", "-ec", "--command", "--eval",
                                         "-x", "-ce", "-ic", "-r", "-exec", "/c"]

    func parseFile(_ root: Node, declared: inout Set<String>) -> [CmdletDefinition] {
        guard let top = reader.mapping(root, what: "a cmdlets file", allowed: ["cmdlets"]) else { return [] }
        var result: [CmdletDefinition] = []
        for entry in top {
            guard let cmdlets = reader.mapping(entry.value, what: "'cmdlets'") else { continue }
            for cmdlet in cmdlets {
                declared.insert(ASCII.lowercased(cmdlet.key))
                if let parsed = parseCmdlet(cmdlet) { result.append(parsed) }
            }
        }
        return result
    }

    // MARK: Cmdlet

    func parseCmdlet(_ entry: YAMLReader.Entry) -> CmdletDefinition? {
        let errorsBefore = reader.diagnostics.diagnostics.filter { $0.severity == .error }.count
        let name = entry.key
        if !ASCII.isCmdletName(name) {
            reader.error(at: entry.keyNode, "invalid cmdlet name '\(name)'",
                         hint: "use Verb-Noun with ASCII letters only, e.g. Get-Mailbox")
        }
        if reservedNames.contains(where: { ASCII.equalsIgnoringCase($0, name) }) {
            reader.error(at: entry.keyNode, "'\(name)' is a built-in command and cannot be redefined")
        }
        guard let fields = reader.mapping(entry.value, what: "cmdlet '\(name)'", allowed: CmdletParser.cmdletKeys)
        else { return nil }

        var synopsis: String?
        var description: String?
        var examples: [CmdletDefinition.Example] = []
        var aliases: [CmdletDefinition.Alias] = []
        var parameters: [ParameterDefinition] = []
        var parameterNodes: [String: Node] = [:]
        var backendNode: Node?
        var output = CmdletDefinition.OutputKind.text

        for field in fields {
            switch field.key {
            case "synopsis": synopsis = reader.string(field.value, what: "synopsis")
            case "description": description = reader.string(field.value, what: "description")
            case "aliases": aliases = parseAliases(field.value, cmdlet: name)
            case "examples": examples = parseExamples(field.value)
            case "parameters": (parameters, parameterNodes) = parseParameters(field.value, cmdlet: name)
            case "backend": backendNode = field.value
            case "output":
                if let text = reader.string(field.value, what: "output") {
                    if let kind = CmdletDefinition.OutputKind(rawValue: text) {
                        output = kind
                    } else {
                        reader.error(at: field.value, "unknown output kind '\(text)'",
                                     hint: "one of: \(CmdletDefinition.OutputKind.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                }
            default: break
            }
        }
        if synopsis == nil, !fields.contains(where: { $0.key == "synopsis" }) {
            reader.error(at: entry.keyNode, "cmdlet '\(name)' has no synopsis", hint: "Get-Command shows it")
        }
        guard let backendNode else {
            reader.error(at: entry.keyNode, "cmdlet '\(name)' has no backend")
            return nil
        }
        let backend = parseBackend(backendNode, parameters: parameters)
        if let backend {
            lintUnused(parameters: parameters, nodes: parameterNodes, backend: backend)
        }
        let errorsAfter = reader.diagnostics.diagnostics.filter { $0.severity == .error }.count
        guard errorsAfter == errorsBefore, let backend, let synopsis else { return nil }
        return CmdletDefinition(name: name, aliases: aliases, synopsis: synopsis, description: description, examples: examples,
                                parameters: parameters, backend: backend, output: output,
                                file: reader.file, line: reader.line(entry.keyNode))
    }

    /// `aliases: [gmbx]`: each one a valid alias name that is not a built-in.
    /// Clashes with other cmdlets and their aliases are checked by the loader,
    /// which sees every file.
    func parseAliases(_ node: Node, cmdlet: String) -> [CmdletDefinition.Alias] {
        guard let items = reader.sequence(node, what: "aliases") else { return [] }
        var result: [CmdletDefinition.Alias] = []
        for item in items {
            guard let alias = reader.string(item, what: "an alias") else { continue }
            if !ASCII.isAliasName(alias) {
                reader.error(at: item, "invalid alias '\(alias)' for '\(cmdlet)'",
                             hint: "an ASCII letter, then letters, digits or single hyphens, at most 32")
            } else if ASCII.equalsIgnoringCase(alias, cmdlet) {
                reader.error(at: item, "alias '\(alias)' is the cmdlet's own name")
            } else if let reserved = reservedNames.first(where: { ASCII.equalsIgnoringCase($0, alias) }) {
                reader.error(at: item, "alias '\(alias)' would hide the built-in command '\(reserved)'")
            } else if result.contains(where: { ASCII.equalsIgnoringCase($0.name, alias) }) {
                reader.error(at: item, "alias '\(alias)' is listed twice for '\(cmdlet)'")
            } else {
                result.append(.init(name: alias, line: reader.line(item), column: reader.column(item)))
            }
        }
        return result
    }

    func parseExamples(_ node: Node) -> [CmdletDefinition.Example] {
        guard let items = reader.sequence(node, what: "examples") else { return [] }
        var result: [CmdletDefinition.Example] = []
        for item in items {
            guard let fields = reader.mapping(item, what: "an example", allowed: CmdletParser.exampleKeys) else {
                continue
            }
            var command: String?
            var description: String?
            for field in fields {
                if field.key == "command" { command = reader.string(field.value, what: "command") }
                if field.key == "description" { description = reader.string(field.value, what: "description") }
            }
            if let command {
                result.append(.init(command: command, description: description))
            } else if !fields.contains(where: { $0.key == "command" }) {
                reader.error(at: item, "an example needs a 'command'")
            }
        }
        return result
    }

    // MARK: Parameters

    func parseParameters(_ node: Node, cmdlet: String) -> ([ParameterDefinition], [String: Node]) {
        guard let entries = reader.mapping(node, what: "parameters of '\(cmdlet)'") else { return ([], [:]) }
        var result: [ParameterDefinition] = []
        var nodes: [String: Node] = [:]
        var seen: [String: String] = [:]
        declaredParameters = []
        var positions: [Int: String] = [:]
        for entry in entries {
            let name = entry.key
            if !ASCII.isParameterName(name) {
                reader.error(at: entry.keyNode, "invalid parameter name '\(name)'",
                             hint: "an ASCII letter followed by ASCII letters or digits")
                continue
            }
            if let context = ContextVariable(placeholder: name) {
                reader.error(at: entry.keyNode,
                             "parameter '\(name)' collides with the context placeholder {\(context.rawValue)}",
                             hint: "context names (user, session, scope, node, stateDir) are reserved")
                continue
            }
            if let other = seen[ASCII.lowercased(name)] {
                reader.error(at: entry.keyNode, "parameter '\(name)' is declared twice (also as '\(other)')",
                             hint: "parameter names are case-insensitive")
                continue
            }
            seen[ASCII.lowercased(name)] = name
            declaredParameters.insert(ASCII.lowercased(name))
            guard let parameter = parseParameter(name: name, entry: entry) else { continue }
            if let position = parameter.position {
                if let other = positions[position] {
                    reader.error(at: entry.keyNode, "parameters '\(other)' and '\(name)' share position \(position)")
                }
                positions[position] = name
            }
            result.append(parameter)
            nodes[name] = entry.keyNode
        }
        return (result, nodes)
    }

    func parseParameter(name: String, entry: YAMLReader.Entry) -> ParameterDefinition? {
        // Any error inside the declaration (an unknown key included) drops the
        // parameter, so its uses are not reported a second time.
        let errorsBefore = reader.diagnostics.diagnostics.filter { $0.severity == .error }.count
        guard let fields = reader.mapping(entry.value, what: "parameter '\(name)'", allowed: CmdletParser.parameterKeys)
        else { return nil }
        var field: [String: YAMLReader.Entry] = [:]
        for f in fields { field[f.key] = f }
        guard let typeEntry = field["type"] else {
            reader.error(at: entry.keyNode, "parameter '\(name)' has no type",
                         hint: "one of: \(ParameterType.allCases.map(\.rawValue).joined(separator: ", "))")
            return nil
        }
        guard var typeText = reader.string(typeEntry.value, what: "type") else { return nil }
        let isList = typeText.hasSuffix("[]")
        if isList { typeText.removeLast(2) }
        guard let type = ParameterType(rawValue: typeText) else {
            let all = ParameterType.allCases.map(\.rawValue)
            reader.error(at: typeEntry.value, "unknown parameter type '\(typeText)'",
                         hint: ASCII.suggestion(for: typeText, among: all).map { "did you mean '\($0)'?" }
                            ?? "one of: \(all.joined(separator: ", "))")
            return nil
        }
        var ok = true
        func refuse(_ key: String, _ why: String) {
            if let f = field[key] {
                reader.error(at: f.keyNode, "'\(key)' does not apply to \(type.rawValue) parameter '\(name)'", hint: why)
                ok = false
            }
        }

        if isList && type == .switch {
            reader.error(at: typeEntry.value, "a switch cannot be a list"); ok = false
        }
        let mandatory = field["mandatory"].flatMap { reader.bool($0.value, what: "mandatory") } ?? false
        let allowLeadingDash = field["allowLeadingDash"].flatMap { reader.bool($0.value, what: "allowLeadingDash") } ?? false
        var maxItems = ParameterDefinition.defaultMaxItems
        if let f = field["maxItems"] {
            if !isList {
                reader.error(at: f.keyNode, "'maxItems' applies to list parameters (type: \(typeText)[])"); ok = false
            } else if let value = reader.nonNegativeInt(f.value, what: "maxItems") {
                if value < 1 || value > 256 { reader.error(at: f.value, "maxItems must be between 1 and 256"); ok = false }
                maxItems = value
            }
        }
        let position = field["position"].flatMap { reader.nonNegativeInt($0.value, what: "position") }
        let description = field["description"].flatMap { reader.string($0.value, what: "description") }

        var pattern: AnchoredPattern?
        if let f = field["pattern"], let source = reader.string(f.value, what: "pattern") {
            do {
                pattern = try AnchoredPattern(source)
            } catch {
                reader.error(at: f.value, "pattern of '\(name)' is not a valid regular expression",
                             hint: "ICU regular expression syntax; it always has to match the whole value")
                ok = false
            }
        }
        var allowedValues: [String]?
        if let f = field["set"], let items = reader.stringList(f.value, what: "set") {
            var seen = Set<String>()
            for (value, node) in items {
                if value.unicodeScalars.contains(where: \.isControlCharacter) {
                    reader.error(at: node, "set value contains a control character"); ok = false
                }
                if value.hasPrefix("-") {
                    reader.error(at: node, "set value '\(value)' starts with '-'",
                                 hint: "values starting with '-' can never be typed"); ok = false
                }
                if !seen.insert(ASCII.lowercased(value)).inserted {
                    reader.error(at: node, "set value '\(value)' is listed twice (case-insensitively)"); ok = false
                }
            }
            if items.isEmpty { reader.error(at: f.value, "set must not be empty"); ok = false }
            allowedValues = items.map(\.0)
        }
        var maxLength = ParameterDefinition.defaultMaxLength
        if let f = field["maxLength"], let value = reader.nonNegativeInt(f.value, what: "maxLength") {
            if value < 1 || value > ParameterDefinition.maximumMaxLength {
                reader.error(at: f.value, "maxLength must be between 1 and \(ParameterDefinition.maximumMaxLength)")
                ok = false
            }
            maxLength = value
        }
        var minimum: Int?
        var maximum: Int?
        for key in ["min", "max"] {
            guard let f = field[key] else { continue }
            let value: Int?
            switch type {
            case .int: value = reader.nonNegativeInt(f.value, what: key)
            case .size: value = reader.size(f.value, what: key)
            case .duration: value = reader.durationSeconds(f.value, what: key)
            default: value = nil
            }
            if key == "min" { minimum = value } else { maximum = value }
        }
        if let minimum, let maximum, minimum > maximum, let f = field["max"] {
            reader.error(at: f.value, "max is smaller than min for '\(name)'")
            ok = false
        }

        switch type {
        case .string:
            refuse("min", "min/max apply to int and size parameters")
            refuse("max", "min/max apply to int and size parameters")
            if field["pattern"] != nil && field["set"] != nil {
                reader.error(at: entry.keyNode, "parameter '\(name)' has both a pattern and a set",
                             hint: "use one: a set is an exact list, a pattern a shape")
                ok = false
            }
            if field["pattern"] == nil && field["set"] == nil {
                reader.warning(at: entry.keyNode, "string parameter '\(name)' has no constraint",
                               hint: "add a 'pattern' or a 'set' so only expected values reach the backend")
            }
        case .enum:
            refuse("min", "min/max apply to int and size parameters")
            refuse("max", "min/max apply to int and size parameters")
            refuse("pattern", "an enum is matched against its set")
            if field["set"] == nil {
                reader.error(at: entry.keyNode, "enum parameter '\(name)' needs a 'set' of allowed values")
                ok = false
            }
        case .int, .size, .duration:
            refuse("pattern", "a number is checked with min and max")
            refuse("set", "a number is checked with min and max")
            refuse("maxLength", "a number is checked with min and max")
            if field["min"] == nil && field["max"] == nil {
                reader.warning(at: entry.keyNode, "\(type.rawValue) parameter '\(name)' has no constraint",
                               hint: "add 'min' and/or 'max' so only expected values reach the backend")
            }
        case .datetime:
            for key in ["pattern", "set", "min", "max", "maxLength"] { refuse(key, "a date-time is checked for its shape only") }
        case .switch:
            for key in ["pattern", "set", "min", "max", "maxLength"] { refuse(key, "a switch takes no value") }
            refuse("position", "a switch is named, never positional")
            refuse("allowLeadingDash", "a switch takes no value")
            if mandatory, let f = field["mandatory"] {
                reader.error(at: f.value, "a switch cannot be mandatory"); ok = false
            }
        }
        let errorsAfter = reader.diagnostics.diagnostics.filter { $0.severity == .error }.count
        guard ok, errorsAfter == errorsBefore else { return nil }
        return ParameterDefinition(name: name, type: type, mandatory: mandatory,
                                   position: type == .switch ? nil : position, description: description,
                                   pattern: pattern, allowedValues: allowedValues, minimum: minimum,
                                   maximum: maximum, maxLength: maxLength, isList: isList, maxItems: maxItems,
                                   allowLeadingDash: allowLeadingDash)
    }

    // MARK: Backend

    func parseBackend(_ node: Node, parameters: [ParameterDefinition]) -> BackendTemplate? {
        guard let fields = reader.mapping(node, what: "backend", allowed: CmdletParser.backendKeys) else { return nil }
        var field: [String: YAMLReader.Entry] = [:]
        for f in fields { field[f.key] = f }
        var ok = true

        var executable: String?
        if let f = field["executable"], let text = reader.string(f.value, what: "executable") {
            executable = resolveExecutable(text, node: f.value)
            if executable == nil { ok = false }
        } else if field["executable"] == nil {
            reader.error(at: node, "backend has no 'executable'")
            ok = false
        }

        var argv: [BackendTemplate.Element] = []
        if let f = field["argv"], let items = reader.sequence(f.value, what: "argv") {
            for item in items {
                if case .mapping = item {
                    if let group = parseGroup(item, parameters: parameters) { argv.append(group) } else { ok = false }
                } else if let text = reader.string(item, what: "an argv element", allowEmpty: true),
                          let template = parseTemplate(text, node: item, parameters: parameters) {
                    if checkUnconditional(template, node: item, parameters: parameters, whenParameter: nil) {
                        argv.append(.single(template))
                    } else {
                        ok = false
                    }
                } else {
                    ok = false
                }
            }
        }

        var environment: [(name: String, value: TemplateString)] = []
        if let f = field["environment"], let entries = reader.mapping(f.value, what: "environment") {
            for e in entries {
                guard isEnvironmentName(e.key, node: e.keyNode) else { ok = false; continue }
                guard let text = reader.string(e.value, what: "environment variable \(e.key)", allowEmpty: true),
                      let template = parseTemplate(text, node: e.value, parameters: parameters),
                      checkUnconditional(template, node: e.value, parameters: parameters, whenParameter: nil)
                else { ok = false; continue }
                environment.append((e.key, template))
            }
        }
        environment.sort { $0.name < $1.name }

        var timeout = BackendTemplate.defaultTimeoutSeconds
        if let f = field["timeout"] {
            if let value = reader.durationSeconds(f.value, what: "timeout") {
                if value < 1 || value > BackendTemplate.maximumTimeoutSeconds {
                    reader.error(at: f.value, "timeout must be between 1s and \(PolicyDuration.format(BackendTemplate.maximumTimeoutSeconds))")
                    ok = false
                }
                timeout = value
            } else { ok = false }
        }
        var outputLimit = BackendTemplate.defaultOutputLimit
        if let f = field["outputLimit"] {
            if let value = reader.size(f.value, what: "outputLimit") {
                if value < 1 || value > BackendTemplate.maximumOutputLimit {
                    reader.error(at: f.value, "outputLimit must be between 1B and \(ByteSize.format(BackendTemplate.maximumOutputLimit))")
                    ok = false
                }
                outputLimit = value
            } else { ok = false }
        }

        var runAs: RunAsAccount?
        if let f = field["runAs"], let name = reader.string(f.value, what: "runAs") {
            let shapeOK = !name.isEmpty && name.unicodeScalars.count <= 32 && name.unicodeScalars.allSatisfy {
                ASCII.isLetter($0) || ASCII.isDigit($0) || $0 == "_" || $0 == "-" || $0 == "."
            } && !name.hasPrefix("-")
            if !shapeOK {
                reader.error(at: f.value, "runAs '\(TerminalSafe.text(name))' is not an account name"); ok = false
            } else if let account = host.account(named: name) {
                runAs = RunAsAccount(name: name, uid: account.uid, gid: account.gid)
                if account.uid == 0 {
                    reader.warning(at: f.value, "runAs '\(name)' is root", hint: "run backends as a dedicated account")
                }
                if !host.isExecutableFile(RunAsAccount.setprivPath) {
                    reader.error(at: f.value, "runAs needs \(RunAsAccount.setprivPath) (util-linux)"); ok = false
                }
            } else {
                reader.error(at: f.value, "runAs account '\(name)' does not exist on this host"); ok = false
            }
        }

        guard ok, let executable else { return nil }
        currentParameters = parameters
        lintInterpreter(executable: executable, argv: argv, node: node)
        return BackendTemplate(executable: executable, argv: argv, environment: environment,
                               timeoutSeconds: timeout, outputLimit: outputLimit, runAs: runAs)
    }

    func resolveExecutable(_ text: String, node: Node) -> String? {
        let path: String
        if text.hasPrefix("@libexec/") {
            let rest = String(text.dropFirst("@libexec/".count))
            path = (libexecDirectory.hasSuffix("/") ? libexecDirectory : libexecDirectory + "/") + rest
            if rest.isEmpty {
                reader.error(at: node, "executable '@libexec/' names no program")
                return nil
            }
        } else if text.hasPrefix("/") {
            path = text
        } else {
            reader.error(at: node, "executable '\(text)' must be an absolute path or start with @libexec/",
                         hint: "no PATH lookup is ever done")
            return nil
        }
        let components = path.split(separator: "/", omittingEmptySubsequences: false)
        if components.contains("..") || components.contains(".") || path.hasSuffix("/") {
            reader.error(at: node, "executable path '\(text)' must be a plain path without '.', '..' or a trailing '/'")
            return nil
        }
        if path.unicodeScalars.contains(where: \.isControlCharacter) {
            reader.error(at: node, "executable path contains a control character")
            return nil
        }
        if !host.isExecutableFile(path) {
            reader.warning(at: node, "executable '\(path)' does not exist or is not executable (yet)")
        } else {
            lintOwnership(path, node: node)
        }
        return path
    }

    func parseGroup(_ node: Node, parameters: [ParameterDefinition]) -> BackendTemplate.Element? {
        guard let fields = reader.mapping(node, what: "an argv group", allowed: CmdletParser.groupKeys) else { return nil }
        var whenName: String?
        var items: [TemplateString] = []
        var ok = true
        for f in fields {
            switch f.key {
            case "when":
                guard let text = reader.string(f.value, what: "when") else { ok = false; continue }
                if let p = parameters.first(where: { ASCII.equalsIgnoringCase($0.name, text) }) {
                    whenName = p.name
                } else if declaredParameters.contains(ASCII.lowercased(text)) {
                    ok = false
                } else {
                    reader.error(at: f.value, "'when: \(text)' names no declared parameter",
                                 hint: ASCII.suggestion(for: text, among: parameters.map(\.name)).map { "did you mean '\($0)'?" })
                    ok = false
                }
            case "argv":
                guard let list = reader.sequence(f.value, what: "argv") else { ok = false; continue }
                for item in list {
                    if case .mapping = item {
                        reader.error(at: item, "argv groups cannot be nested"); ok = false; continue
                    }
                    guard let text = reader.string(item, what: "an argv element", allowEmpty: true),
                          let template = parseTemplate(text, node: item, parameters: parameters)
                    else { ok = false; continue }
                    items.append(template)
                }
            default: break
            }
        }
        if !fields.contains(where: { $0.key == "when" }) {
            reader.error(at: node, "an argv group needs 'when: ParameterName'"); ok = false
        }
        if !fields.contains(where: { $0.key == "argv" }) {
            reader.error(at: node, "an argv group needs an 'argv' list"); ok = false
        }
        guard ok, let whenName else { return nil }
        for (index, template) in items.enumerated() {
            let itemNode: Node = {
                if case .mapping(let m) = node, let list = m["argv"], case .sequence(let s) = list, index < s.count {
                    return s[index]
                }
                return node
            }()
            if !checkUnconditional(template, node: itemNode, parameters: parameters, whenParameter: whenName) {
                ok = false
            }
        }
        return ok ? .group(when: whenName, argv: items) : nil
    }

    /// An element outside a `when:` group must only use parameters that are
    /// always bound (mandatory); inside a group, also the group's own one.
    /// Switches carry no value and may only appear as `when:`.
    func checkUnconditional(_ template: TemplateString, node: Node, parameters: [ParameterDefinition],
                            whenParameter: String?) -> Bool {
        var ok = true
        for name in template.parameterNames {
            guard let p = parameters.first(where: { $0.name == name }) else { continue }
            if p.type == .switch {
                reader.error(at: node, "switch parameter '\(name)' has no value to put in a template",
                             hint: "use an argv group: {when: \(name), argv: [...]}")
                ok = false
            } else if p.isList && p.name != whenParameter {
                reader.error(at: node, "list parameter '\(name)' can only be used inside its own 'when:' group",
                             hint: "the group is repeated once per item: {when: \(name), argv: [--opt, \"{\(name)}\"]}")
                ok = false
            } else if !p.mandatory && p.name != whenParameter {
                reader.error(at: node, "'{\(name)}' names an optional parameter outside its 'when:' group",
                             hint: "wrap it as {when: \(name), argv: [...]} so it is dropped when not given")
                ok = false
            }
        }
        return ok
    }

    /// Splits `text` at `{Placeholder}`s. Braces are always placeholders;
    /// a stray brace is an error rather than a literal, so a template means
    /// exactly what it looks like.
    func parseTemplate(_ text: String, node: Node, parameters: [ParameterDefinition]) -> TemplateString? {
        if text.unicodeScalars.contains(where: \.isControlCharacter) {
            reader.error(at: node, "template '\(TerminalSafe.text(text))' contains a control character")
            return nil
        }
        var segments: [TemplateString.Segment] = []
        var literal = ""
        var iterator = text.unicodeScalars.makeIterator()
        var ok = true
        while let scalar = iterator.next() {
            if scalar == "}" {
                reader.error(at: node, "template '\(text)' has a '}' without '{'")
                return nil
            }
            guard scalar == "{" else {
                literal.unicodeScalars.append(scalar)
                continue
            }
            var name = ""
            var closed = false
            while let inner = iterator.next() {
                if inner == "}" { closed = true; break }
                if inner == "{" { break }
                name.unicodeScalars.append(inner)
            }
            guard closed else {
                reader.error(at: node, "template '\(text)' has an unclosed '{'")
                return nil
            }
            if !literal.isEmpty { segments.append(.literal(literal)); literal = "" }
            if let context = ContextVariable(placeholder: name) {
                segments.append(.context(context))
            } else if let p = parameters.first(where: { ASCII.equalsIgnoringCase($0.name, name) }) {
                segments.append(.parameter(p.name))
            } else if declaredParameters.contains(ASCII.lowercased(name)) {
                ok = false // already reported where the parameter is declared
            } else {
                let candidates = parameters.map(\.name) + ContextVariable.allCases.map(\.rawValue)
                reader.error(at: node, "unknown placeholder '{\(name)}' in template '\(text)'",
                             hint: ASCII.suggestion(for: name, among: candidates).map { "did you mean '{\($0)}'?" }
                                ?? "use a declared parameter or one of {user}, {session}, {scope}, {node}, {stateDir}")
                ok = false
            }
        }
        if !literal.isEmpty { segments.append(.literal(literal)) }
        return ok ? TemplateString(segments: segments) : nil
    }

    func isEnvironmentName(_ name: String, node: Node) -> Bool {
        let scalars = Array(name.unicodeScalars)
        let shapeOK = !scalars.isEmpty && scalars.count <= 64
            && scalars.enumerated().allSatisfy { i, s in
                (s.value >= 0x41 && s.value <= 0x5a) || s == "_" || (i > 0 && ASCII.isDigit(s))
            }
        guard shapeOK else {
            reader.error(at: node, "invalid environment variable name '\(name)'", hint: "use [A-Z_][A-Z0-9_]*")
            return false
        }
        if name == "PATH" || name == "LANG" {
            reader.error(at: node, "\(name) is set by the gateway and cannot be overridden")
            return false
        }
        if name.hasPrefix("LD_") || name.hasPrefix("DYLD_") || name.hasPrefix("GCONV_") || name.hasPrefix("MALLOC_")
            || ["IFS", "ENV", "BASH_ENV", "SHELLOPTS", "PS4", "PYTHONPATH", "PYTHONSTARTUP", "PERL5LIB",
                "PERL5OPT", "RUBYOPT", "NODE_OPTIONS", "LOCPATH", "NLSPATH", "HOSTALIASES", "TMPDIR"].contains(name) {
            reader.error(at: node, "\(name) changes how programs load or run code and is refused")
            return false
        }
        return true
    }

    // MARK: Lint

    func lintUnused(parameters: [ParameterDefinition], nodes: [String: Node], backend: BackendTemplate) {
        var used = Set<String>()
        for element in backend.argv {
            switch element {
            case .single(let t): used.formUnion(t.parameterNames)
            case .group(let when, let items):
                used.insert(when)
                for t in items { used.formUnion(t.parameterNames) }
            }
        }
        for (_, t) in backend.environment { used.formUnion(t.parameterNames) }
        for p in parameters where !used.contains(p.name) {
            if let node = nodes[p.name] {
                reader.warning(at: node, "parameter '\(p.name)' is never passed to the backend")
            }
        }
    }

    /// Whoever can write the backend (or any directory above it) can run
    /// code as the gateway's backend user. World-writable (without the
    /// sticky bit on a directory) anywhere on the path is an error, and so is
    /// the program or its own directory being owned by another non-root
    /// account. Group-writable, owned by the (non-root) account running this
    /// check, or another owner further up the path, are warnings: a
    /// developer's build tree or a CI checkout is the usual case there, while
    /// production backends should be root-owned all the way up.
    func lintOwnership(_ path: String, node: Node) {
        let euid = host.effectiveUserID
        // Symlinks' own modes mean nothing; judge what is really executed.
        let real = host.resolvingSymlinks(path)
        var current = real
        var checked = 0
        while !current.isEmpty, checked < 64 {
            checked += 1
            guard let status = host.status(of: current) else { break }
            let mode = status.mode, owner = status.owner
            let sticky = status.isDirectory && mode & 0o1000 != 0  // S_ISVTX
            let what = current == real ? "backend '\(path)'" : "directory '\(current)' above backend '\(path)'"
            if mode & 0o002 != 0 && !sticky {
                reader.error(at: node, "\(what) is writable by every user",
                             hint: "chmod o-w; anyone could replace the program the gateway runs")
            } else if mode & 0o020 != 0 && !sticky {
                reader.warning(at: node, "\(what) is writable by its group",
                               hint: "chmod g-w unless the group is trusted like root")
            }
            if owner != 0 {
                // The program and its own directory must not belong to another
                // account; further up, another owner is reported as a warning
                // (checkouts and build trees often sit in a user's home).
                let near = checked <= 2
                if owner == euid || !near {
                    reader.warning(at: node, "\(what) is owned by uid \(owner)\(owner == euid ? " (this account)" : ""), not root",
                                   hint: "install production backends root-owned, e.g. under /usr/libexec")
                } else {
                    reader.error(at: node, "\(what) is owned by uid \(owner), a non-root account that could replace it",
                                 hint: "chown root and chmod go-w")
                }
            }
            if current == "/" { break }
            let parent = (current as NSString).deletingLastPathComponent
            current = parent.isEmpty ? "/" : parent
        }
    }

    func lintInterpreter(executable: String, argv: [BackendTemplate.Element], node: Node) {
        let base = executable.split(separator: "/").last.map(String.init) ?? executable
        let isInterpreter = CmdletParser.interpreters.contains(base)
            || base.hasPrefix("python") || base.hasPrefix("perl") || base.hasPrefix("ruby")
        guard isInterpreter else { return }
        var literals: [String] = []
        var hasPlaceholder = false
        for element in argv {
            let templates: [TemplateString]
            switch element {
            case .single(let t): templates = [t]
            case .group(_, let items): templates = items
            }
            for t in templates {
                if !t.parameterNames.isEmpty { hasPlaceholder = true }
                for case .literal(let s) in t.segments { literals.append(ASCII.lowercased(s)) }
            }
        }
        // The element that follows a code flag is read as a program.
        var flat: [TemplateString] = []
        for element in argv {
            switch element {
            case .single(let t): flat.append(t)
            case .group(_, let items): flat.append(contentsOf: items)
            }
        }
        var codeParameters: [String] = []
        for (i, t) in flat.enumerated() {
            let text = ASCII.lowercased(t.segments.compactMap { if case .literal(let s) = $0 { return s } else { return nil } }.joined())
            let isFlag = t.parameterNames.isEmpty && CmdletParser.codeFlags.contains(text)
            if isFlag, i + 1 < flat.count { codeParameters += flat[i + 1].parameterNames }
            // `-c{X}` / `-Command:{X}` glued to the flag.
            if !t.parameterNames.isEmpty, CmdletParser.codeFlags.contains(where: { !$0.isEmpty && text.hasPrefix($0) }) {
                codeParameters += t.parameterNames
            }
        }
        let free = flat.flatMap(\.parameterNames).filter { name in
            guard let p = currentParameters.first(where: { $0.name == name }) else { return false }
            return p.type == .string && p.pattern == nil && p.allowedValues == nil
        }
        if !codeParameters.isEmpty {
            reader.error(at: node, "backend hands the typed value of '\(codeParameters[0])' to the interpreter '\(base)' as code",
                         hint: "a value would be run as a program; call a dedicated program with fixed code instead")
        } else if !free.isEmpty {
            reader.error(at: node, "backend hands the free string '\(free[0])' (no pattern or set) to the interpreter '\(base)'",
                         hint: "constrain the parameter with a pattern or a set, or call a dedicated program")
        } else if hasPlaceholder && literals.contains(where: { CmdletParser.codeFlags.contains($0) }) {
            reader.warning(at: node, "backend hands typed values to the interpreter '\(base)' with a code flag",
                           hint: "the values are arguments of fixed code; make sure that code never evaluates them")
        } else {
            reader.warning(at: node, "backend runs the interpreter '\(base)'",
                           hint: "prefer a dedicated program; never pass typed values as code")
        }
    }
}

/// Escapes control characters for diagnostics quoting policy text.
enum TerminalSafe {
    static func text(_ s: String) -> String {
        var out = ""
        for scalar in s.unicodeScalars {
            if scalar.isControlCharacter {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
