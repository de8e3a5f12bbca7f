import CmdletPolicy
import GatehouseCore
import PolicyFormat

/// Values the gateway (not the user, not the claim) supplies to templates.
///
/// `{user}`, `{session}` and `{scope}` are deliberately not here: they come
/// from the access claim and from the deciding grant, so nothing but the
/// claim can ever choose them.
public struct ExecutionContext: Sendable, Equatable {
    /// This gateway node's name (`{node}`).
    public let node: String
    /// The gateway's state directory (`{stateDir}`).
    public let stateDir: String
    /// The backend's working directory; fixed, never chosen by the user.
    public let workingDirectory: String

    public init(node: String, stateDir: String, workingDirectory: String) {
        self.node = node
        self.stateDir = stateDir
        self.workingDirectory = workingDirectory
    }
}

/// The pipeline stage that refused a line.
public enum RejectionStage: String, Sendable, Equatable {
    case parse
    case bind
    case authorize
}

/// Why a line was refused, with the exit status the shell reports for it.
public struct Rejection: Sendable, Equatable {
    public enum Reason: String, Sendable, Equatable {
        /// Lexer/parser error, or arguments that do not bind (exit 2).
        case invalid
        /// No such cmdlet (exit 127).
        case unknownCmdlet
        /// The cmdlet exists but no single role of the claim permits it (exit 126).
        case notPermitted
    }

    public let stage: RejectionStage
    public let reason: Reason
    /// One line, safe to show the client.
    public let message: String
    /// 1-based column in the typed line, when the problem has a place.
    public let column: Int?
    /// The cmdlet's declared name, once it is known.
    public let cmdlet: String?

    public var exitStatus: Int32 {
        switch reason {
        case .invalid: return ExitStatus.usage
        case .unknownCmdlet: return ExitStatus.notFound
        case .notPermitted: return ExitStatus.notPermitted
        }
    }
}

/// Exit-status conventions of the shell (POSIX shell and `timeout(1)` habits).
public enum ExitStatus {
    /// Syntax or argument error.
    public static let usage: Int32 = 2
    /// A built-in failed softly (e.g. `Get-Help` found nothing).
    public static let failure: Int32 = 1
    /// The backend ran out of time.
    public static let timedOut: Int32 = 124
    /// The audit log could not be written; nothing ran.
    public static let auditUnavailable: Int32 = 125
    /// Not permitted by the claim.
    public static let notPermitted: Int32 = 126
    /// Unknown cmdlet, or the backend could not be started.
    public static let notFound: Int32 = 127
}

/// A built-in the shell answers itself.
public enum BuiltinCommand: Sendable, Equatable {
    /// `exit` or `Exit-Session`.
    case exitSession
    case getCommand
    case getHelp(name: String?)
    /// `Get-AccessClaim`: user, roles, scope and expiry as evaluated now.
    case getAccessClaim
    /// `Enter-Elevation -Id N`: the gateway prompts for the secret.
    case enterElevation(requestID: Int64)
}

/// A built-in with the text it prints (computed purely from claim and policy).
public struct BuiltinResult: Sendable, Equatable {
    public let command: BuiltinCommand
    public let stdout: String
    public let stderr: String
    public let exitStatus: Int32
}

/// A line that passed parse, bind and authorize: everything needed to audit
/// and run it, and nothing that still needs interpreting.
public struct AllowedCommand: Sendable {
    public let cmdlet: CmdletDefinition
    public let role: String
    public let grant: RoleGrant
    public let parameters: [BoundParameter]
    /// argv[0] is the executable's absolute path.
    public let argv: [String]
    /// The declared variables only; the executor adds PATH and LANG.
    public let environment: [String: String]
    public let timeoutSeconds: Int
    public let outputLimit: Int
    /// Formatter stages after `|` (only for `output: json` cmdlets). A json
    /// cmdlet without any is rendered as a table.
    public let formatters: [FormatterStage]
}

/// The result of evaluating one line, before anything runs.
public enum Evaluation: Sendable {
    /// Empty or whitespace-only: nothing to do, nothing to audit.
    case empty
    case builtin(BuiltinResult)
    case rejected(Rejection)
    case allowed(AllowedCommand)
}

/// Names the shell answers itself (ASCII case-insensitive).
public enum ShellBuiltins {
    static let names = ["exit", "Exit-Session", "Get-Command", "Get-Help", "Get-AccessClaim", "Enter-Elevation"]

    /// What a policy may not name a cmdlet or alias, because the shell would
    /// answer the line first: the built-ins and the formatters. The policy
    /// loader's caller hands these in (with its own commands, if any).
    public static let reservedNames = names + Pipeline.formatterNames

    static func match(_ word: String) -> String? { names.first { ASCII.equalsIgnoringCase($0, word) } }
}

/// Evaluates one line: lex → parse → bind (cmdlet and formatters) → authorize
/// → expand the template.
/// Pure: it reads nothing, writes nothing and starts nothing, so the daemon
/// and `gatehouse policy test` share exactly this code path.
/// - Parameter provided: the embedding application's own commands (see
///   `ShellCommandProvider`), for `Get-Help` and `Get-Command` to show.
public func evaluate(line: [UInt8], claim: AccessClaim, snapshot: PolicySnapshot,
                     context: ExecutionContext, provided: [CmdletDefinition] = []) -> Evaluation {
    let tokens: [Token]
    switch Lexer.tokenize(line) {
    case .success(let t): tokens = t
    case .failure(let e):
        return .rejected(Rejection(stage: .parse, reason: .invalid, message: e.message, column: e.column, cmdlet: nil))
    }
    guard let head = tokens.first else { return .empty }
    guard head.kind == .bare else {
        let message: String
        switch head.kind {
        case .parameter: message = "a command line starts with a cmdlet name, not a parameter"
        default: message = "a command line starts with a cmdlet name, not a quoted string"
        }
        return .rejected(Rejection(stage: .parse, reason: .invalid, message: message, column: head.column, cmdlet: nil))
    }
    // Split at '|': the first run is the command, the rest are formatters.
    var segments: [ArraySlice<Token>] = []
    var start = tokens.startIndex
    for (i, token) in tokens.enumerated() where token.kind == .pipe {
        segments.append(tokens[start..<i])
        start = i + 1
    }
    segments.append(tokens[start..<tokens.endIndex])
    if let empty = segments.indices.first(where: { segments[$0].isEmpty }) {
        let pipeColumn = empty == 0 ? head.column
            : (tokens.filter { $0.kind == .pipe }.dropFirst(empty - 1).first?.column ?? head.column)
        return .rejected(Rejection(stage: .parse, reason: .invalid, message: "empty element in the pipeline",
                                   column: pipeColumn, cmdlet: nil))
    }
    let arguments = segments[0].dropFirst()
    if let builtin = ShellBuiltins.match(head.text) {
        if segments.count > 1, let pipe = tokens.first(where: { $0.kind == .pipe }) {
            return .rejected(Rejection(stage: .parse, reason: .invalid, message: "\(builtin) cannot be piped",
                                       column: pipe.column, cmdlet: builtin))
        }
        return Builtins.evaluate(builtin, arguments: arguments, claim: claim, snapshot: snapshot, provided: provided)
    }
    guard let cmdlet = snapshot.cmdlet(named: head.text) else {
        var message = Pipeline.isFormatter(head.text)
            ? "'\(Display.clip(head.text))' is a formatter: use it after '|' behind a cmdlet."
            : "Unknown cmdlet '\(Display.clip(head.text))'."
        if !Pipeline.isFormatter(head.text) {
            // Only names this caller may see now are ever suggested.
            let visible = Authorizer.visibleCmdlets(claim: claim, snapshot: snapshot).flatMap { [$0.name] + $0.aliases.map(\.name) }
                + provided.map(\.name) + ShellBuiltins.names
            if let near = ASCII.suggestion(for: head.text, among: visible) { message += " Did you mean \(near)?" }
            message += " Get-Command lists what you may run."
        }
        return .rejected(Rejection(stage: .bind, reason: .unknownCmdlet, message: message,
                                   column: head.column, cmdlet: nil))
    }
    // A cmdlet no role of the claim lists is refused before its arguments are
    // looked at, so binding errors never describe a cmdlet the caller cannot
    // see.
    if !Authorizer.isListed(cmdlet: cmdlet, claim: claim, snapshot: snapshot) {
        return .rejected(Rejection(stage: .authorize, reason: .notPermitted,
                                   message: Authorizer.notPermitted(cmdlet, claim), column: nil, cmdlet: cmdlet.name))
    }
    let parameters: [BoundParameter]
    switch Binder.bind(arguments, to: cmdlet) {
    case .success(let p): parameters = p
    case .failure(let e):
        return .rejected(Rejection(stage: .bind, reason: .invalid, message: e.message, column: e.column,
                                   cmdlet: cmdlet.name))
    }
    var formatters: [FormatterStage] = []
    if segments.count > 1 {
        guard cmdlet.output == .json else {
            let pipe = tokens.first { $0.kind == .pipe }
            let formatter = segments[1].first.map { Display.clip($0.text) } ?? "a formatter"
            return .rejected(Rejection(stage: .bind, reason: .invalid,
                                       message: "\(cmdlet.name) writes text, not objects, so it cannot be piped into "
                                           + "\(formatter); run it without '| \(formatter)' and read its text "
                                           + "(Get-Help \(cmdlet.name) -Full says what it outputs)",
                                       column: pipe?.column, cmdlet: cmdlet.name))
        }
        switch Pipeline.bind(Array(segments.dropFirst())) {
        case .success(let f): formatters = f
        case .failure(let e):
            return .rejected(Rejection(stage: .bind, reason: .invalid, message: e.message, column: e.column,
                                       cmdlet: cmdlet.name))
        }
    }
    let authorization = Authorizer.authorize(cmdlet: cmdlet, parameters: parameters, claim: claim, snapshot: snapshot)
    switch authorization.decision {
    case .deny(let reason):
        return .rejected(Rejection(stage: .authorize, reason: .notPermitted, message: reason, column: nil,
                                   cmdlet: cmdlet.name))
    case .allow(let role):
        guard let grant = authorization.grant, let backend = cmdlet.backend else {
            // Unreachable by construction; deny rather than trust it.
            return .rejected(Rejection(stage: .authorize, reason: .notPermitted,
                                       message: "'\(cmdlet.name)' is not permitted.", column: nil, cmdlet: cmdlet.name))
        }
        let values = TemplateValues(claim: claim, grant: grant, context: context, parameters: parameters)
        let expanded = TemplateExpander.expand(backend, values: values)
        return .allowed(AllowedCommand(cmdlet: cmdlet, role: role, grant: grant, parameters: parameters,
                                       argv: expanded.argv, environment: expanded.environment,
                                       timeoutSeconds: backend.timeoutSeconds,
                                       outputLimit: backend.outputLimit, formatters: formatters))
    }
}
