import Foundation
import PolicyFormat
import Yams

/// Loads `cmdlets/*.yaml` and `roles/*.yaml` into a `PolicySnapshot`:
/// parse, then validate everything (collecting every problem), then freeze.
public enum PolicyLoader {
    /// PowerShell commands that run code, load code, leave the session or
    /// write files. JEA guidance is never to make these visible; a role that
    /// lists a cmdlet with one of these names is a policy error, whatever its
    /// backend does, because a reviewer reading the role would assume the
    /// real thing.
    public static let dangerousCmdletNames = [
        "Invoke-Expression", "Invoke-Command", "Invoke-Item", "Invoke-WebRequest", "Invoke-RestMethod",
        "Start-Process", "Start-Job", "Start-ThreadJob", "New-Object", "Add-Type", "Import-Module",
        "Enter-PSSession", "New-PSSession", "Enter-PSHostProcess", "Set-ExecutionPolicy", "Register-ScheduledJob",
        "Register-ScheduledTask", "New-ScheduledTask", "Set-Alias", "New-Alias", "Set-Variable", "New-Variable",
        "Set-PSBreakpoint", "Out-File", "Set-Content", "Add-Content", "New-Item", "Copy-Item", "Move-Item",
        "Remove-Item", "Set-Item", "New-Service", "Set-Service", "Start-Service", "Invoke-CimMethod",
        "Invoke-WmiMethod", "Get-Credential", "ConvertTo-SecureString",
    ]

    /// PowerShell's own aliases of those commands (`iex`, `icm`, ...): a
    /// policy alias spelled like one reads as the real thing.
    static let dangerousAliases = ["iex", "icm", "ii", "iwr", "irm", "curl", "wget", "saps", "start", "sajb",
                                   "ipmo", "etsn", "nsn", "ni", "sc", "ac"]

    static func isDangerous(_ name: String) -> Bool {
        dangerousCmdletNames.contains { ASCII.equalsIgnoringCase($0, name) }
    }

    static func isDangerousAlias(_ name: String) -> Bool {
        isDangerous(name) || dangerousAliases.contains { ASCII.equalsIgnoringCase($0, name) }
    }

    /// Which part of the policy a source file holds.
    public enum SourceKind: Sendable {
        case cmdlets
        case roles
    }

    /// One policy file's text, for loading from memory (tests, `policy check`).
    public struct Source: Sendable {
        public let kind: SourceKind
        public let file: String
        public let text: String

        public init(kind: SourceKind, file: String, text: String) {
            self.kind = kind
            self.file = file
            self.text = text
        }
    }

    /// Reads `<directory>/cmdlets/*.yaml` and `<directory>/roles/*.yaml`
    /// (`.yml` too), in sorted order so the result never depends on the file
    /// system's listing order. `@libexec/` in an executable resolves against
    /// `libexecDirectory`. Throws `PolicyLoadError` listing every error.
    ///
    /// `reservedNames` are the commands the caller answers before policy
    /// cmdlets (the shell's built-ins and formatters, the gateway's Lockbox
    /// commands): a cmdlet or alias spelled like one would never run, so it
    /// is an error. The caller knows them; this layer does not.
    /// `host` answers every question about the machine (accounts, backend
    /// files); the loader asks nothing else of it.
    public static func load(directory: String, libexecDirectory: String,
                            reservedNames: [String], host: HostInspector) throws -> PolicySnapshot {
        let diagnostics = DiagnosticCollector()
        var sources: [Source] = []
        for (sub, kind) in [("cmdlets", SourceKind.cmdlets), ("roles", SourceKind.roles)] {
            let dir = (directory as NSString).appendingPathComponent(sub)
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else {
                diagnostics.error(dir, 0, 0, "cannot read policy directory",
                                  hint: "a policy directory holds cmdlets/ and roles/")
                continue
            }
            for name in names.sorted() where !name.hasPrefix(".") && (name.hasSuffix(".yaml") || name.hasSuffix(".yml")) {
                let path = (dir as NSString).appendingPathComponent(name)
                guard let data = FileManager.default.contents(atPath: path) else {
                    diagnostics.error(path, 0, 0, "cannot read file")
                    continue
                }
                guard let text = String(data: data, encoding: .utf8) else {
                    diagnostics.error(path, 0, 0, "file is not valid UTF-8")
                    continue
                }
                sources.append(Source(kind: kind, file: path, text: text))
            }
        }
        return try load(sources: sources, libexecDirectory: libexecDirectory, reservedNames: reservedNames,
                        host: host, diagnostics: diagnostics)
    }

    /// Loads policy from texts already in memory.
    public static func load(sources: [Source], libexecDirectory: String,
                            reservedNames: [String], host: HostInspector) throws -> PolicySnapshot {
        try load(sources: sources, libexecDirectory: libexecDirectory, reservedNames: reservedNames, host: host,
                 diagnostics: DiagnosticCollector())
    }

    static func load(sources: [Source], libexecDirectory: String, reservedNames: [String], host: HostInspector,
                     diagnostics: DiagnosticCollector) throws -> PolicySnapshot {
        var cmdlets: [CmdletDefinition] = []
        var rawRoles: [RawRole] = []
        var rawDenyRules: [RawDenyRule] = []
        // Names of cmdlets that were declared but failed validation: roles
        // naming them get no second, misleading "unknown cmdlet" error.
        var declaredNames = Set<String>()
        var cmdletFileUnreadable = false
        for source in sources {
            let reader = YAMLReader(file: source.file, diagnostics: diagnostics)
            guard let root = reader.compose(source.text) else {
                if source.kind == .cmdlets { cmdletFileUnreadable = true }
                continue
            }
            switch source.kind {
            case .cmdlets:
                let parser = CmdletParser(reader: reader, libexecDirectory: libexecDirectory,
                                          reservedNames: reservedNames, host: host)
                cmdlets.append(contentsOf: parser.parseFile(root, declared: &declaredNames))
            case .roles:
                rawRoles.append(contentsOf: RoleParser(reader: reader).parseFile(root, deny: &rawDenyRules))
            }
        }

        for c in cmdlets where isDangerous(c.name) {
            diagnostics.warning(c.file, c.line, 0, "cmdlet '\(c.name)' has the name of a dangerous PowerShell command",
                                hint: "choose a name that says what the backend really does")
        }

        // Names are unique across files, ASCII case-insensitively.
        var seenCmdlets: [String: CmdletDefinition] = [:]
        var uniqueCmdlets: [CmdletDefinition] = []
        for c in cmdlets {
            let key = ASCII.lowercased(c.name)
            if let first = seenCmdlets[key] {
                diagnostics.error(c.file, c.line, 0, "cmdlet '\(c.name)' is defined twice",
                                  hint: "first defined at \(first.file):\(first.line)")
            } else {
                seenCmdlets[key] = c
                uniqueCmdlets.append(c)
            }
        }

        // An alias is unique across the policy and never another cmdlet's name.
        var seenAliases: [String: (cmdlet: CmdletDefinition, alias: CmdletDefinition.Alias)] = [:]
        for c in uniqueCmdlets {
            for alias in c.aliases {
                let key = ASCII.lowercased(alias.name)
                if let other = seenCmdlets[key] {
                    diagnostics.error(c.file, alias.line, alias.column, "alias '\(alias.name)' of '\(c.name)' is the name of "
                                      + "cmdlet '\(other.name)'", hint: "defined at \(other.file):\(other.line)")
                } else if let first = seenAliases[key] {
                    diagnostics.error(c.file, alias.line, alias.column, "alias '\(alias.name)' of '\(c.name)' is already an alias "
                                      + "of '\(first.cmdlet.name)'", hint: "at \(first.cmdlet.file):\(first.alias.line)")
                } else if isDangerousAlias(alias.name) {
                    diagnostics.error(c.file, alias.line, alias.column, "alias '\(alias.name)' of '\(c.name)' has the name of a "
                                      + "dangerous PowerShell command")
                } else {
                    seenAliases[key] = (c, alias)
                }
            }
        }

        var seenRoles: [String: RawRole] = [:]
        var roles: [RoleDefinition] = []
        let cmdletNames = uniqueCmdlets.map(\.name)
        for raw in rawRoles {
            let key = ASCII.lowercased(raw.name)
            if let first = seenRoles[key] {
                diagnostics.error(raw.file, raw.line, raw.column, "role '\(raw.name)' is defined twice",
                                  hint: "first defined at \(first.file):\(first.line)")
                continue
            }
            seenRoles[key] = raw
            var resolved: [String] = []
            var restrictions: [String: [ParameterRestriction]] = [:]
            for ref in raw.cmdlets {
                if isDangerous(ref.name) {
                    diagnostics.error(raw.file, ref.line, ref.column,
                                      "role '\(raw.name)' makes the dangerous command '\(ref.name)' visible",
                                      hint: "it runs code, loads code, leaves the session or writes files; "
                                          + "expose a narrow purpose-built cmdlet instead")
                }
                if let c = seenCmdlets[ASCII.lowercased(ref.name)] {
                    if !ref.restrictions.isEmpty {
                        restrictions[ASCII.lowercased(c.name)] = resolveRestrictions(ref.restrictions, of: c, role: raw,
                                                                                       diagnostics: diagnostics)
                    }
                    if resolved.contains(c.name) {
                        diagnostics.warning(raw.file, ref.line, ref.column,
                                            "cmdlet '\(ref.name)' is listed twice in role '\(raw.name)'")
                    } else {
                        resolved.append(c.name)
                    }
                } else if !declaredNames.contains(ASCII.lowercased(ref.name)) && !cmdletFileUnreadable {
                    let hint = seenAliases[ASCII.lowercased(ref.name)].map { "that is an alias of '\($0.cmdlet.name)'; "
                        + "roles name cmdlets by their own name" }
                        ?? ASCII.suggestion(for: ref.name, among: cmdletNames).map { "did you mean '\($0)'?" }
                        ?? "declare it under cmdlets/ first"
                    diagnostics.error(raw.file, ref.line, ref.column,
                                      "role '\(raw.name)' lists unknown cmdlet '\(ref.name)'", hint: hint)
                }
            }
            roles.append(RoleDefinition(name: raw.name, description: raw.description, cmdlets: resolved,
                                        restrictions: restrictions, maxDurationSeconds: raw.maxDurationSeconds, file: raw.file, line: raw.line))
        }

        var denyRules: [DenyRule] = []
        for raw in rawDenyRules {
            guard let c = seenCmdlets[ASCII.lowercased(raw.cmdlet)] else {
                if !declaredNames.contains(ASCII.lowercased(raw.cmdlet)) && !cmdletFileUnreadable {
                    diagnostics.error(raw.file, raw.line, raw.column, "deny rule names unknown cmdlet '\(raw.cmdlet)'",
                                      hint: seenAliases[ASCII.lowercased(raw.cmdlet)].map {
                                          "that is an alias of '\($0.cmdlet.name)'; deny rules name cmdlets by their own name"
                                      } ?? ASCII.suggestion(for: raw.cmdlet, among: cmdletNames).map { "did you mean '\($0)'?" })
                }
                continue
            }
            let owner = RawRole(name: "deny rule", description: nil, cmdlets: [], maxDurationSeconds: nil,
                                file: raw.file, line: raw.line, column: raw.column)
            let conditions = resolveRestrictions(raw.conditions, of: c, role: owner, diagnostics: diagnostics)
            guard conditions.count == raw.conditions.count else { continue }
            denyRules.append(DenyRule(cmdlet: c.name, conditions: conditions, reason: raw.reason, file: raw.file,
                                      line: raw.line))
        }

        let warnings = try diagnostics.throwIfErrors()
        return PolicySnapshot(validatedCmdlets: uniqueCmdlets, roles: roles, denyRules: denyRules, warnings: warnings)
    }
}

extension PolicyLoader {
    /// Turns a role's written restrictions into checked ones. Every value a
    /// restriction names must be one the definition itself accepts: a
    /// restriction can only narrow, and must not even look wider.
    static func resolveRestrictions(_ raws: [RawRole.RawRestriction], of cmdlet: CmdletDefinition, role: RawRole,
                                    diagnostics: DiagnosticCollector) -> [ParameterRestriction] {
        var result: [ParameterRestriction] = []
        for raw in raws {
            func error(_ message: String, hint: String? = nil) {
                diagnostics.error(role.file, raw.line, raw.column, message, hint: hint)
            }
            guard let p = cmdlet.parameter(named: raw.parameter) else {
                error("role '\(role.name)' restricts unknown parameter '\(raw.parameter)' of '\(cmdlet.name)'",
                      hint: ASCII.suggestion(for: raw.parameter, among: cmdlet.parameters.map(\.name)).map { "did you mean '\($0)'?" })
                continue
            }
            var ok = true
            if raw.pattern != nil && !(p.type == .string) {
                error("'pattern' does not apply to \(p.typeName) parameter '\(p.name)'"); ok = false
            }
            if let set = raw.set {
                if !(p.type == .string || p.type == .enum) {
                    error("'set' does not apply to \(p.typeName) parameter '\(p.name)'"); ok = false
                }
                for value in set {
                    if case .failure(let e) = p.validate(value) {
                        error("restriction value '\(value)' is not allowed by '\(cmdlet.name)' itself (\(e.message))",
                              hint: "a role can only narrow a cmdlet's definition"); ok = false
                    }
                }
            }
            func bound(_ text: String?, _ key: String) -> Int? {
                guard let text else { return nil }
                let value: Int?
                switch p.type {
                case .int: value = ASCII.parseNonNegativeInt(text)
                case .size: value = ByteSize.parse(text)
                case .duration: value = PolicyDuration.parseSeconds(text)
                default:
                    error("'\(key)' does not apply to \(p.typeName) parameter '\(p.name)'"); ok = false
                    return nil
                }
                guard let value else {
                    error("'\(key)' of '\(p.name)' is not a valid \(p.type.rawValue)"); ok = false
                    return nil
                }
                if let lo = p.minimum, value < lo {
                    error("'\(key)' of '\(p.name)' is below the cmdlet's own min", hint: "a role can only narrow"); ok = false
                }
                if let hi = p.maximum, value > hi {
                    error("'\(key)' of '\(p.name)' is above the cmdlet's own max", hint: "a role can only narrow"); ok = false
                }
                return value
            }
            let minimum = bound(raw.min, "min"), maximum = bound(raw.max, "max")
            if let minimum, let maximum, minimum > maximum { error("max is smaller than min for '\(p.name)'"); ok = false }
            if raw.forbidden && p.mandatory {
                error("'\(p.name)' is mandatory for '\(cmdlet.name)' and cannot be forbidden",
                      hint: "leave the cmdlet out of the role instead"); ok = false
            }
            guard ok else { continue }
            result.append(ParameterRestriction(parameter: p.name, forbidden: raw.forbidden, pattern: raw.pattern,
                                               allowedValues: raw.set, minimum: minimum, maximum: maximum,
                                               file: role.file, line: raw.line))
        }
        return result
    }
}

// MARK: - Roles

struct RawDenyRule {
    let cmdlet: String
    let conditions: [RawRole.RawRestriction]
    let reason: String?
    let file: String
    let line: Int
    let column: Int
}

struct RawRole {
    struct Reference {
        let name: String
        let line: Int
        let column: Int
        var restrictions: [RawRestriction] = []
    }

    /// A restriction as written; checked against the cmdlet once all
    /// cmdlets are loaded.
    struct RawRestriction {
        let parameter: String
        let forbidden: Bool
        let pattern: AnchoredPattern?
        let set: [String]?
        /// Raw texts: their unit depends on the parameter's type.
        let min: String?
        let max: String?
        let line: Int
        let column: Int
    }

    let name: String
    let description: String?
    let cmdlets: [Reference]
    let maxDurationSeconds: Int?
    let file: String
    let line: Int
    let column: Int
}

struct RoleParser {
    let reader: YAMLReader

    static let roleKeys = ["description", "cmdlets", "maxDuration"]

    func parseFile(_ root: Node) -> [RawRole] {
        parseFile(root, deny: nil)
    }

    /// Roles, and (when `deny` is given) the file's top-level `deny:` rules.
    func parseFile(_ root: Node, deny: UnsafeMutablePointer<[RawDenyRule]>?) -> [RawRole] {
        guard let top = reader.mapping(root, what: "a roles file", allowed: ["roles", "deny"]) else { return [] }
        var result: [RawRole] = []
        for entry in top {
            if entry.key == "deny" {
                guard let items = reader.sequence(entry.value, what: "deny") else { continue }
                for item in items {
                    if let rule = parseDenyRule(item) { deny?.pointee.append(rule) }
                }
                continue
            }
            guard let roles = reader.mapping(entry.value, what: "'roles'") else { continue }
            for role in roles {
                if let parsed = parseRole(role) { result.append(parsed) }
            }
        }
        return result
    }

    static func isRoleName(_ name: String) -> Bool {
        let scalars = Array(name.unicodeScalars)
        guard let first = scalars.first, ASCII.isLetter(first), scalars.count <= 64 else { return false }
        return scalars.allSatisfy { ASCII.isLetter($0) || ASCII.isDigit($0) || $0 == "-" || $0 == "_" || $0 == "." }
    }

    static let restrictionKeys = ["pattern", "set", "min", "max", "forbidden"]
    static let denyKeys = ["cmdlet", "parameters", "reason"]

    /// `- {cmdlet: Set-Mailbox, parameters: {Identity: {pattern: '^admin.*$'}}, reason: ...}`
    func parseDenyRule(_ node: Node) -> RawDenyRule? {
        guard let fields = reader.mapping(node, what: "a deny rule", allowed: RoleParser.denyKeys) else { return nil }
        var cmdlet: String?
        var reason: String?
        var conditions: [RawRole.RawRestriction] = []
        var ok = true
        for f in fields {
            switch f.key {
            case "cmdlet": cmdlet = reader.string(f.value, what: "cmdlet")
            case "reason": reason = reader.string(f.value, what: "reason")
            default:
                guard let parsed = parseConditions(f.value) else { ok = false; continue }
                conditions = parsed
                if conditions.contains(where: \.forbidden) {
                    reader.error(at: f.value, "'forbidden' has no meaning in a deny rule",
                                 hint: "a deny rule matches values; list the values to refuse")
                    ok = false
                }
            }
        }
        guard let cmdlet else {
            reader.error(at: node, "a deny rule needs 'cmdlet'")
            return nil
        }
        guard ok else { return nil }
        return RawDenyRule(cmdlet: cmdlet, conditions: conditions, reason: reason, file: reader.file,
                           line: reader.line(node), column: reader.column(node))
    }

    /// The `parameters:` mapping of a restriction or a deny rule.
    func parseConditions(_ node: Node) -> [RawRole.RawRestriction]? {
        guard let parameters = reader.mapping(node, what: "parameters") else { return nil }
        var ok = true
        var restrictions: [RawRole.RawRestriction] = []
        for p in parameters {
            guard let keys = reader.mapping(p.value, what: "restriction of '\(p.key)'", allowed: RoleParser.restrictionKeys)
            else { ok = false; continue }
            var pattern: AnchoredPattern?
            var set: [String]?
            var min: String?, max: String?
            var forbidden = false
            for k in keys {
                switch k.key {
                case "pattern":
                    if let text = reader.string(k.value, what: "pattern") {
                        do { pattern = try AnchoredPattern(text) } catch {
                            reader.error(at: k.value, "pattern is not a valid regular expression"); ok = false
                        }
                    }
                case "set":
                    set = reader.stringList(k.value, what: "set")?.map(\.0)
                    if set?.isEmpty == true { reader.error(at: k.value, "set must not be empty"); ok = false }
                case "min": min = reader.string(k.value, what: "min")
                case "max": max = reader.string(k.value, what: "max")
                case "forbidden": forbidden = reader.bool(k.value, what: "forbidden") ?? false
                default: break
                }
            }
            if keys.isEmpty { reader.error(at: p.keyNode, "restriction of '\(p.key)' is empty"); ok = false }
            restrictions.append(.init(parameter: p.key, forbidden: forbidden, pattern: pattern, set: set, min: min,
                                      max: max, line: reader.line(p.keyNode), column: reader.column(p.keyNode)))
        }
        return ok ? restrictions : nil
    }

    /// `- Set-Mailbox: {parameters: {Identity: {pattern: ...}, Force: {forbidden: true}}}`
    func parseRestrictedCmdlet(_ node: Node) -> RawRole.Reference? {
        guard let entries = reader.mapping(node, what: "a restricted cmdlet entry"), entries.count == 1,
              let entry = entries.first else {
            reader.error(at: node, "a restricted cmdlet entry is one 'Cmdlet-Name: {parameters: ...}' mapping")
            return nil
        }
        guard let fields = reader.mapping(entry.value, what: "restrictions of '\(entry.key)'", allowed: ["parameters"]),
              let parametersField = fields.first(where: { $0.key == "parameters" }) else {
            if case .mapping = entry.value {
                reader.error(at: entry.keyNode, "restrictions of '\(entry.key)' need a 'parameters' mapping")
            }
            return nil
        }
        guard let restrictions = parseConditions(parametersField.value) else { return nil }
        return .init(name: entry.key, line: reader.line(entry.keyNode), column: reader.column(entry.keyNode),
                     restrictions: restrictions)
    }

    func parseRole(_ entry: YAMLReader.Entry) -> RawRole? {
        var ok = true
        if !RoleParser.isRoleName(entry.key) {
            reader.error(at: entry.keyNode, "invalid role name '\(entry.key)'",
                         hint: "ASCII letters, digits, '-', '_' and '.', starting with a letter")
            ok = false
        }
        guard let fields = reader.mapping(entry.value, what: "role '\(entry.key)'", allowed: RoleParser.roleKeys)
        else { return nil }
        var description: String?
        var cmdlets: [RawRole.Reference]?
        var maxDuration: Int?
        for field in fields {
            switch field.key {
            case "description":
                description = reader.string(field.value, what: "description")
            case "cmdlets":
                guard let items = reader.sequence(field.value, what: "cmdlets") else { ok = false; continue }
                var refs: [RawRole.Reference] = []
                for item in items {
                    if case .mapping = item {
                        if let ref = parseRestrictedCmdlet(item) { refs.append(ref) } else { ok = false }
                        continue
                    }
                    guard let name = reader.string(item, what: "a cmdlet name") else { ok = false; continue }
                    refs.append(.init(name: name, line: reader.line(item), column: reader.column(item)))
                }
                cmdlets = refs
            case "maxDuration":
                maxDuration = reader.durationSeconds(field.value, what: "maxDuration")
                if maxDuration == 0 {
                    reader.error(at: field.value, "maxDuration must be longer than zero")
                    ok = false
                }
            default:
                break
            }
        }
        guard let cmdlets else {
            reader.error(at: entry.keyNode, "role '\(entry.key)' has no 'cmdlets' list",
                         hint: "write 'cmdlets: []' for a role that allows nothing")
            return nil
        }
        guard ok else { return nil }
        return RawRole(name: entry.key, description: description, cmdlets: cmdlets,
                       maxDurationSeconds: maxDuration, file: reader.file,
                       line: reader.line(entry.keyNode), column: reader.column(entry.keyNode))
    }
}
