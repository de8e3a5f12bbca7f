import CmdletShell
import GatehouseCore

/// One command line from claim to exit status, without the session around
/// it (channel, transcript, limits), so it can be tested alone.
///
/// The line is judged under ONE snapshot, taken once at its start: the claim
/// is built from that snapshot's directory, the interpreter evaluates the
/// line once against that snapshot's policy, and the grant watch starts
/// from that one evaluation. A reload while it runs changes nothing for it.
struct CommandStep {
    let gateway: GatewayContext
    let interpreter: CmdletInterpreter
    let user: UserName
    let session: SessionID

    /// Runs `line` with the claim as of now; `cancellation` stops its backend.
    func run(_ line: [UInt8], output: CommandOutput, cancellation: CancellationFlag) -> LineOutcome {
        let snapshot = gateway.snapshot
        let claim = gateway.lockbox.claim(user: user, session: session, now: gateway.clock.now(),
                                          rules: snapshot.lockboxRules)
        var watch: GrantWatch?
        defer { watch?.stop() }
        return interpreter.run(line: line, claim: claim, snapshot: snapshot.policy, context: gateway.executionContext,
                               output: output, cancellation: cancellation, willRun: { command in
            watch = GrantWatch.start(command, claim: claim, lockbox: gateway.lockbox, clock: gateway.clock,
                                     cancellation: cancellation)
        })
    }
}
