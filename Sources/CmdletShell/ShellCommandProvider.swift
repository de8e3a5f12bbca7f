import CmdletPolicy
import GatehouseCore

/// Commands the embedding application answers itself, beside policy cmdlets
/// and the shell's built-ins: the gateway's Lockbox workflow
/// (`New-LockboxRequest`, `Approve-LockboxRequest`, ...). They need state the
/// shell must not know about (a store, the directory's managers), and their
/// authorization is relational ("is this the requester's manager"), which
/// roles cannot express, so the provider authorizes them itself.
///
/// Each command is declared as a `CmdletDefinition`, so the shell binds its
/// parameters with the same `Binder` as a policy cmdlet (types, abbreviations,
/// errors) and shows it in `Get-Command`, `Get-Help` and completion. The
/// provider only ever sees bound, typed parameters and its own `Command`
/// value, never tokens or a name to compare.
public protocol ShellCommandProvider: Sendable {
    /// The provider's own name for each command, so its dispatch is an
    /// exhaustive switch rather than string comparisons.
    associatedtype Command: Sendable

    /// Every command, with its declaration.
    var commands: [ProvidedCommand<Command>] { get }
    /// What the line's audit event records besides the line and the
    /// command's name: the bound parameters, a request id, what stands in
    /// for the deciding role. Never a secret.
    func auditFields(_ command: Command, parameters: [BoundParameter]) -> [String: String]
    /// Runs the command; returns its exit status. Output goes to `output`.
    func run(_ command: Command, parameters: [BoundParameter], claim: AccessClaim, output: CommandOutput) -> Int32
}

/// One provider command: the provider's value and the declaration the shell binds against.
public struct ProvidedCommand<Command: Sendable>: Sendable {
    public let command: Command
    public let definition: CmdletDefinition

    public init(_ command: Command, _ definition: CmdletDefinition) {
        self.command = command
        self.definition = definition
    }
}

extension ShellCommandProvider {
    /// The declarations alone, for help, `Get-Command` and completion.
    public var definitions: [CmdletDefinition] { commands.map(\.definition) }

    /// The command `name` (as typed, any ASCII case) names, if it is one of ours.
    func command(named name: String) -> ProvidedCommand<Command>? {
        commands.first { $0.definition.isNamed(name) }
    }
}
