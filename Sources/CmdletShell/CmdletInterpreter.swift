import CmdletPolicy
import Foundation
import GatehouseCore
import PolicyFormat

/// What the session does after a line.
public enum LineOutcome: Sendable, Equatable {
    case endSession
    case completed(exitStatus: Int32)
}

/// The gate pipeline for one line, in this order: parse → bind → authorize →
/// write the audit event → run. Any failure stops the pipeline; nothing is
/// started unless the `commandAllowed` event was recorded first.
///
/// Knows nothing of SSH: the gateway hands it bytes and a `CommandOutput`.
/// Blocking while a backend runs; call it from the session's own thread.
public final class CmdletInterpreter: Sendable {
    private let audit: AuditSink
    private let clock: Clock
    private let executor: CommandExecutor
    private let elevationHandler: (@Sendable (Int64, CommandOutput) -> Int32)?
    private let commandProvider: (any ShellCommandProvider)?

    /// - Parameters:
    ///   - elevationHandler: runs `Enter-Elevation -Id N` (the gateway
    ///     prompts for the one-time secret and redeems it). Without one the
    ///     built-in answers that elevation is unavailable here.
    ///   - commandProvider: extra commands the embedding application answers
    ///     (the Lockbox workflow); they take precedence over policy cmdlets.
    public init(audit: AuditSink, clock: Clock, executor: CommandExecutor = ProcessExecutor(),
                elevationHandler: (@Sendable (Int64, CommandOutput) -> Int32)? = nil,
                commandProvider: (any ShellCommandProvider)? = nil) {
        self.audit = audit
        self.clock = clock
        self.executor = executor
        self.elevationHandler = elevationHandler
        self.commandProvider = commandProvider
    }

    /// `willRun` hears the allowed command (which cmdlet, which grant decided)
    /// from this run's one evaluation, just before its backend starts, so the
    /// caller can act on that decision without evaluating the line again.
    public func run(line: [UInt8], claim: AccessClaim, snapshot: PolicySnapshot, context: ExecutionContext,
                    output: CommandOutput, cancellation: CancellationFlag? = nil,
                    willRun: (AllowedCommand) -> Void = { _ in }) -> LineOutcome {
        if let commandProvider, case .success(let tokens) = Lexer.tokenize(line), let head = tokens.first,
           head.kind == .bare, let outcome = runProvided(commandProvider, head: head.text, arguments: tokens.dropFirst(),
                                                         line: line, claim: claim, output: output) {
            return outcome
        }
        switch evaluate(line: line, claim: claim, snapshot: snapshot, context: context,
                        provided: commandProvider?.definitions ?? []) {
        case .empty:
            return .completed(exitStatus: 0)
        case .builtin(let result):
            return runBuiltin(result, output: output)
        case .rejected(let rejection):
            return refuse(rejection, line: line, claim: claim, output: output)
        case .allowed(let command):
            return runAllowed(command, line: line, claim: claim, snapshot: snapshot, context: context,
                              output: output, cancellation: cancellation, willRun: willRun)
        }
    }

    private func runBuiltin(_ result: BuiltinResult, output: CommandOutput) -> LineOutcome {
        if !result.stdout.isEmpty { output.stdout(Array(result.stdout.utf8)) }
        if !result.stderr.isEmpty { output.stderr(Array(result.stderr.utf8)) }
        switch result.command {
        case .exitSession:
            return .endSession
        case .enterElevation(let requestID):
            guard let elevationHandler else {
                output.stderr(Array("Enter-Elevation is not available in this session.\n".utf8))
                return .completed(exitStatus: ExitStatus.failure)
            }
            return .completed(exitStatus: elevationHandler(requestID, output))
        case .getCommand, .getHelp, .getAccessClaim:
            return .completed(exitStatus: result.exitStatus)
        }
    }

    private func refuse(_ rejection: Rejection, line: [UInt8], claim: AccessClaim, output: CommandOutput) -> LineOutcome {
        var fields = ["line": AuditText.line(line), "stage": rejection.stage.rawValue,
                      "reason": rejection.message, "decision": rejection.reason.rawValue]
        if let cmdlet = rejection.cmdlet { fields["cmdlet"] = cmdlet }
        if let column = rejection.column { fields["column"] = String(column) }
        // A denied line stays denied whether or not the audit write works;
        // there is nothing to fail closed on, so the error is not surfaced.
        try? audit.record(AuditEvent(time: clock.now(), kind: .commandDenied, user: claim.user.rawValue,
                                     session: claim.session, fields: fields))
        let place = rejection.column.map { " (column \($0))" } ?? ""
        // On a terminal a caret points at the column; over exec the error
        // stays one line, for scripts.
        let pointer = output.terminalColumns == nil ? "" : rejection.column.map { Self.caret(under: $0, of: line) } ?? ""
        output.stderr(Array((pointer + TerminalText.sanitize(rejection.message, keepLineBreaks: false) + place + "\n").utf8))
        return .completed(exitStatus: rejection.exitStatus)
    }

    /// The line as the terminal shows it, and a caret under `column` (1-based,
    /// in scalars), as a shell points at a syntax error; empty when the line
    /// is too long to show on one row.
    static func caret(under column: Int, of line: [UInt8]) -> String {
        let scalars = String(decoding: line, as: UTF8.self).unicodeScalars
        guard column >= 1, column <= scalars.count + 1 else { return "" }
        let shown = TerminalText.sanitize(String(scalars), keepLineBreaks: false)
        let before = TerminalText.sanitize(String(String.UnicodeScalarView(scalars.prefix(column - 1))),
                                           keepLineBreaks: false)
        let offset = TerminalText.columns(before)
        guard TerminalText.columns(shown) <= 160 else { return "" }
        return shown + "\n" + String(repeating: " ", count: offset) + "^\n"
    }

    /// A command the embedding application answers (the Lockbox workflow),
    /// or nil when `head` is none of the provider's. Its arguments bind like
    /// a cmdlet's, and a line that does not bind is refused and audited as
    /// one; a bound line is audited before it runs, failing closed, and its
    /// exit status after. Its own decisions (an approval refused) are the
    /// provider's events.
    private func runProvided<Provider: ShellCommandProvider>(
        _ provider: Provider, head: String, arguments: ArraySlice<Token>, line: [UInt8], claim: AccessClaim,
        output: CommandOutput) -> LineOutcome? {
        guard let provided = provider.command(named: head) else { return nil }
        let name = provided.definition.name
        let parameters: [BoundParameter]
        switch Binder.bind(arguments, to: provided.definition) {
        case .success(let bound): parameters = bound
        case .failure(let e):
            return refuse(Rejection(stage: .bind, reason: .invalid, message: e.message, column: e.column, cmdlet: name),
                          line: line, claim: claim, output: output)
        }
        var fields = provider.auditFields(provided.command, parameters: parameters)
        fields["line"] = AuditText.line(line)
        fields["cmdlet"] = name
        if let refused = recordAllowed(fields, claim: claim, output: output) { return refused }
        let started = clock.now()
        let status = provider.run(provided.command, parameters: parameters, claim: claim, output: output)
        recordFinished(["cmdlet": name, "exitStatus": String(status)], since: started, claim: claim)
        return .completed(exitStatus: status)
    }

    /// The allowed line, written and flushed before anything runs; when the
    /// audit log cannot take it, the command is refused (125): fail closed.
    private func recordAllowed(_ fields: [String: String], claim: AccessClaim, output: CommandOutput) -> LineOutcome? {
        do {
            try audit.record(AuditEvent(time: clock.now(), kind: .commandAllowed, user: claim.user.rawValue,
                                        session: claim.session, fields: fields))
            return nil
        } catch {
            output.stderr(Array("audit log unavailable; command refused\n".utf8))
            return .completed(exitStatus: ExitStatus.auditUnavailable)
        }
    }

    /// How the command ended. It already ran, so a failed write here cannot
    /// undo it; the sticky audit failure ends the session next.
    private func recordFinished(_ fields: [String: String], since started: Date, claim: AccessClaim) {
        var fields = fields
        fields["durationMs"] = String(Int((max(0, clock.now().timeIntervalSince(started)) * 1000).rounded()))
        try? audit.record(AuditEvent(time: clock.now(), kind: .commandFinished, user: claim.user.rawValue,
                                     session: claim.session, fields: fields))
    }

    private func runAllowed(_ command: AllowedCommand, line: [UInt8], claim: AccessClaim, snapshot: PolicySnapshot,
                            context: ExecutionContext, output: CommandOutput, cancellation: CancellationFlag?,
                            willRun: (AllowedCommand) -> Void) -> LineOutcome {
        var fields = [
            "line": AuditText.line(line),
            "cmdlet": command.cmdlet.name,
            "role": command.role,
            "argv": AuditText.jsonArray(command.argv),
            "parameters": AuditText.jsonObject(command.parameters.map { ($0.name, $0.value.argumentText) }),
            "environmentNames": command.environment.keys.sorted().joined(separator: ","),
        ]
        // The rule that decided: where the deciding role lists the cmdlet, so
        // a reviewer can open the policy at that line.
        if let role = snapshot.role(named: command.role) {
            fields["rule"] = "\(role.file):\(role.line)"
        }
        if let scope = command.grant.scope { fields["scope"] = scope }
        if !command.formatters.isEmpty {
            fields["formatters"] = command.formatters.map(PolicyTestReport.describe).joined(separator: " | ")
        }
        if case .elevation(let requestID) = command.grant.source { fields["requestID"] = String(requestID) }
        if let refused = recordAllowed(fields, claim: claim, output: output) { return refused }
        willRun(command)

        let started = clock.now()
        let request = ExecutionRequest(argv: command.argv, environment: command.environment,
                                       workingDirectory: context.workingDirectory,
                                       timeoutSeconds: Double(command.timeoutSeconds), outputLimit: command.outputLimit,
                                       line: line)
        var finished = ["cmdlet": command.cmdlet.name]
        var status: Int32
        let capture = command.cmdlet.output == .json ? CapturingOutput(inner: output) : nil
        do {
            let result = try executor.run(request, output: capture ?? output, cancellation: cancellation)
            status = result.exitStatus
            finished["exitStatus"] = String(result.exitStatus)
            finished["stdoutBytes"] = String(result.stdoutBytes)
            finished["stderrBytes"] = String(result.stderrBytes)
            finished["timedOut"] = String(result.timedOut)
            finished["cancelled"] = String(result.cancelled)
            finished["interrupted"] = String(result.interrupted)
            finished["truncated"] = String(result.truncated)
            if result.interrupted {
                output.stderr(Array("\(command.cmdlet.name) was interrupted (Ctrl-C).\n".utf8))
            } else if result.timedOut {
                output.stderr(Array("\(command.cmdlet.name) timed out after \(PolicyDuration.format(command.timeoutSeconds)) and was stopped.\n".utf8))
            } else if result.cancelled {
                output.stderr(Array("\(command.cmdlet.name) was stopped: \(cancellation?.reason ?? "its elevation ended").\n".utf8))
            }
            if let capture, !capture.captured.isEmpty, !result.timedOut, !result.interrupted, !result.truncated {
                switch Pipeline.render(json: capture.captured, stages: command.formatters,
                                       columns: output.terminalColumns) {
                case .success(let text): if !text.isEmpty { output.stdout(Array(text.utf8)) }
                case .failure(let error):
                    output.stderr(Array("\(command.cmdlet.name): \(error.message)\n".utf8))
                    finished["formatError"] = error.message
                    if status == 0 { status = ExitStatus.failure }
                }
            } else if let capture, result.truncated, !capture.captured.isEmpty {
                output.stderr(Array("\(command.cmdlet.name): the output was cut at the output limit; objects are not shown.\n".utf8))
            }
        } catch {
            status = ExitStatus.notFound
            finished["exitStatus"] = String(status)
            finished["error"] = String(describing: error)
            output.stderr(Array("\(command.cmdlet.name): the backend could not be started.\n".utf8))
        }
        recordFinished(finished, since: started, claim: claim)
        return .completed(exitStatus: status)
    }
}

/// Text for audit fields: sanitised, bounded, and unambiguous.
public enum AuditText {
    /// The typed line, sanitised (invalid UTF-8 shows as U+FFFD) and bounded.
    static func line(_ bytes: [UInt8]) -> String {
        let bounded = bytes.count > Lexer.maxLineBytes ? Array(bytes.prefix(Lexer.maxLineBytes)) : bytes
        let text = TerminalText.sanitize(bounded, keepLineBreaks: false)
        return bytes.count > Lexer.maxLineBytes ? text + "…[\(bytes.count) bytes]" : text
    }

    public static func jsonArray(_ items: [String]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: items, options: [.withoutEscapingSlashes])) ?? Data("[]".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    public static func jsonObject(_ pairs: [(String, String)]) -> String {
        var dict: [String: String] = [:]
        for (k, v) in pairs { dict[k] = v }
        let data = (try? JSONSerialization.data(withJSONObject: dict, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
