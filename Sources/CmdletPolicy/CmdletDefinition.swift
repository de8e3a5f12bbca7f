import Foundation
import PolicyFormat

/// One cmdlet as the policy declares it, validated and frozen. Policy
/// cmdlets are only made by `PolicyLoader`, so every one of them has passed
/// validation; commands an application answers itself (the gateway's Lockbox
/// workflow, the shell's `Enter-Elevation`) are declared in code with the
/// same model, so binding, help and completion treat them alike.
public struct CmdletDefinition: Sendable {
    /// The declared spelling (`Get-Mailbox`), used in messages and audit events.
    public let name: String
    /// Other names the policy declares for this cmdlet (`aliases:`), in file
    /// order. Unique across the policy and never a cmdlet or built-in name.
    public let aliases: [Alias]
    public let synopsis: String
    public let description: String?
    public let examples: [Example]
    /// In declaration order; this order is also the order of `Get-Help`.
    public let parameters: [ParameterDefinition]
    /// What runs the cmdlet; nil for a command declared in code, which its
    /// declarer answers itself and which no policy snapshot ever holds.
    public let backend: BackendTemplate?
    public let output: OutputKind
    /// Where the cmdlet was declared, for `gatehouse policy test` explanations.
    public let file: String
    public let line: Int

    public struct Alias: Sendable, Equatable {
        public let name: String
        /// Where the alias is written in the cmdlet's file.
        public let line: Int
        public let column: Int
    }

    /// True when `word` is the cmdlet's name or one of its aliases (ASCII
    /// case-insensitive).
    public func isNamed(_ word: String) -> Bool {
        ASCII.equalsIgnoringCase(name, word) || aliases.contains { ASCII.equalsIgnoringCase($0.name, word) }
    }

    public struct Example: Sendable, Equatable {
        public let command: String
        public let description: String?

        public init(command: String, description: String?) {
            self.command = command
            self.description = description
        }
    }

    /// How the backend's stdout is meant to be read. Only relayed as text in
    /// this version; `json` is accepted so formatters can be added later.
    public enum OutputKind: String, Sendable, CaseIterable {
        case text
        case json
    }

    /// A command declared in code rather than YAML: no aliases and no
    /// backend; `file` names the declaring module for explanations.
    public init(name: String, synopsis: String, description: String?, examples: [Example] = [],
                parameters: [ParameterDefinition], file: String) {
        self.init(name: name, aliases: [], synopsis: synopsis, description: description, examples: examples,
                  parameters: parameters, backend: nil, output: .text, file: file, line: 0)
    }

    init(name: String, aliases: [Alias], synopsis: String, description: String?, examples: [Example],
         parameters: [ParameterDefinition], backend: BackendTemplate?, output: OutputKind, file: String, line: Int) {
        self.name = name
        self.aliases = aliases
        self.synopsis = synopsis
        self.description = description
        self.examples = examples
        self.parameters = parameters
        self.backend = backend
        self.output = output
        self.file = file
        self.line = line
    }

    /// The declared parameter with this exact name (ASCII case-insensitive).
    public func parameter(named name: String) -> ParameterDefinition? {
        parameters.first { ASCII.equalsIgnoringCase($0.name, name) }
    }
}

/// The values a template can take from the gateway rather than from the typed
/// line. They are trusted: they come from the access claim and configuration.
public enum ContextVariable: String, Sendable, CaseIterable {
    case user
    case session
    /// The tenant of the deciding grant; a cmdlet using it needs a scoped grant.
    case scope
    case node
    case stateDir

    /// ASCII case-insensitive lookup, so `{StateDir}` and `{statedir}` agree.
    public init?(placeholder: String) {
        let key = ASCII.lowercased(placeholder)
        guard let match = ContextVariable.allCases.first(where: { ASCII.lowercased($0.rawValue) == key }) else {
            return nil
        }
        self = match
    }
}

/// A string with `{Placeholder}` holes, split at load time so that expansion
/// is pure concatenation: a value is never re-parsed, split or globbed.
public struct TemplateString: Sendable, Equatable, CustomStringConvertible {
    public enum Segment: Sendable, Equatable {
        case literal(String)
        /// A bound parameter, by its declared name.
        case parameter(String)
        case context(ContextVariable)
    }

    public let segments: [Segment]

    public init(segments: [Segment]) { self.segments = segments }

    public var parameterNames: [String] {
        segments.compactMap { if case .parameter(let n) = $0 { return n } else { return nil } }
    }

    public var contextVariables: [ContextVariable] {
        segments.compactMap { if case .context(let c) = $0 { return c } else { return nil } }
    }

    /// The template as an admin would write it.
    public var description: String {
        segments.map {
            switch $0 {
            case .literal(let s): return s
            case .parameter(let n): return "{\(n)}"
            case .context(let c): return "{\(c.rawValue)}"
            }
        }.joined()
    }
}

/// A backend's run-as account. The gateway starts `setpriv` (util-linux)
/// with numeric ids, no supplementary groups, no new privileges and no
/// inheritable capabilities, and setpriv then executes the backend: the
/// account change is done by a small, audited program, never by a shell.
public struct RunAsAccount: Sendable, Equatable {
    public let name: String
    public let uid: UInt32
    public let gid: UInt32

    public static let setprivPath = "/usr/bin/setpriv"

    /// The argv prefix that runs the rest as this account.
    public var argvPrefix: [String] {
        [RunAsAccount.setprivPath, "--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", "--no-new-privs",
         "--inh-caps=-all", "--"]
    }
}

/// The backend a cmdlet runs: an absolute executable and an argv template.
public struct BackendTemplate: Sendable {
    /// One argv element, or a group that is dropped when `when` is unbound.
    public enum Element: Sendable, Equatable {
        case single(TemplateString)
        case group(when: String, argv: [TemplateString])
    }

    /// Absolute path (`@libexec/` already resolved).
    public let executable: String
    /// Elements after argv[0]; argv[0] is always `executable`.
    public let argv: [Element]
    /// Variables added to the clean environment, sorted by name.
    public let environment: [(name: String, value: TemplateString)]
    public let timeoutSeconds: Int
    public let outputLimit: Int
    /// The account the backend runs as, resolved at load time; nil runs it
    /// as the gateway's own account.
    public let runAs: RunAsAccount?

    public static let defaultTimeoutSeconds = 30
    public static let maximumTimeoutSeconds = 3600
    public static let defaultOutputLimit = 1 << 20
    public static let maximumOutputLimit = 1 << 30

    /// Every context variable the template (argv or environment) refers to.
    public var contextVariables: Set<ContextVariable> {
        var all = Set<ContextVariable>()
        for element in argv {
            switch element {
            case .single(let t): all.formUnion(t.contextVariables)
            case .group(_, let items): for t in items { all.formUnion(t.contextVariables) }
            }
        }
        for (_, t) in environment { all.formUnion(t.contextVariables) }
        return all
    }

    /// True when the backend must be told a tenant, so only a scoped grant may run it.
    public var requiresScope: Bool { contextVariables.contains(.scope) }
}
