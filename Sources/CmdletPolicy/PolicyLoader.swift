import Foundation
import Yams

/// Loads `cmdlets/*.yaml` and `roles/*.yaml` into a `PolicySnapshot`:
/// parse, then validate everything (collecting every problem), then freeze.
public enum PolicyLoader {
    /// Names the shell handles itself; a policy may not redefine them.
    public static let reservedCmdletNames = ["Exit-Session", "Get-Command", "Get-Help", "Enter-Elevation"]

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
    public static func load(directory: String, libexecDirectory: String) throws -> PolicySnapshot {
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
        return try load(sources: sources, libexecDirectory: libexecDirectory, diagnostics: diagnostics)
    }

    /// Loads policy from texts already in memory.
    public static func load(sources: [Source], libexecDirectory: String) throws -> PolicySnapshot {
        try load(sources: sources, libexecDirectory: libexecDirectory, diagnostics: DiagnosticCollector())
    }

    static func load(sources: [Source], libexecDirectory: String,
                     diagnostics: DiagnosticCollector) throws -> PolicySnapshot {
        var cmdlets: [CmdletDefinition] = []
        var rawRoles: [RawRole] = []
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
                let parser = CmdletParser(reader: reader, libexecDirectory: libexecDirectory)
                cmdlets.append(contentsOf: parser.parseFile(root, declared: &declaredNames))
            case .roles:
                rawRoles.append(contentsOf: RoleParser(reader: reader).parseFile(root))
            }
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
            for ref in raw.cmdlets {
                if let c = seenCmdlets[ASCII.lowercased(ref.name)] {
                    if resolved.contains(c.name) {
                        diagnostics.warning(raw.file, ref.line, ref.column,
                                            "cmdlet '\(ref.name)' is listed twice in role '\(raw.name)'")
                    } else {
                        resolved.append(c.name)
                    }
                } else if !declaredNames.contains(ASCII.lowercased(ref.name)) && !cmdletFileUnreadable {
                    let hint = ASCII.suggestion(for: ref.name, among: cmdletNames).map { "did you mean '\($0)'?" }
                        ?? "declare it under cmdlets/ first"
                    diagnostics.error(raw.file, ref.line, ref.column,
                                      "role '\(raw.name)' lists unknown cmdlet '\(ref.name)'", hint: hint)
                }
            }
            roles.append(RoleDefinition(name: raw.name, description: raw.description, cmdlets: resolved,
                                        maxDurationSeconds: raw.maxDurationSeconds, file: raw.file, line: raw.line))
        }

        let warnings = try diagnostics.throwIfErrors()
        return PolicySnapshot(validatedCmdlets: uniqueCmdlets, roles: roles, warnings: warnings)
    }
}

// MARK: - Roles

struct RawRole {
    struct Reference {
        let name: String
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
        guard let top = reader.mapping(root, what: "a roles file", allowed: ["roles"]) else { return [] }
        var result: [RawRole] = []
        for entry in top {
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
                        reader.error(at: item, "per-role parameter restrictions are not supported yet",
                                     hint: "list the cmdlet name only")
                        ok = false
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
