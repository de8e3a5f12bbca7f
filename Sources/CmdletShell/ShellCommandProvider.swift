import GatehouseCore

/// Commands the embedding application answers itself, beside policy cmdlets
/// and the shell's built-ins: the gateway's Lockbox workflow
/// (`New-LockboxRequest`, `Approve-LockboxRequest`, ...). They need state the
/// shell must not know about (a store, the directory's managers), and their
/// authorization is relational ("is this the requester's manager"), which
/// roles cannot express, so the provider authorizes them itself.
///
/// The line still goes through the same lexer first, so a provider command
/// receives tokens, never raw text, and cannot be used to smuggle anything.
public protocol ShellCommandProvider: Sendable {
    /// The command's own spelling when `name` (as typed, any ASCII case) is
    /// one of the provider's commands; nil otherwise.
    func commandName(_ name: String) -> String?
    /// What the line's audit event records besides the line: the parsed
    /// parameters, a request id. Never a secret. Empty when unparsable (the
    /// command itself then reports the usage error).
    func auditFields(command: String, arguments: ArraySlice<Token>) -> [String: String]
    /// Runs the command; returns its exit status. Output goes to `output`.
    func run(name: String, arguments: ArraySlice<Token>, claim: AccessClaim, output: CommandOutput) -> Int32
}
