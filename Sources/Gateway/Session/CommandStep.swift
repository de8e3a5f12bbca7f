import CmdletShell
import GatehouseCore

/// One command line from claim to exit status, without the session around
/// it (channel, transcript, limits), so it can be tested alone.
///
/// The line is judged under ONE snapshot, taken once at its start: the claim
/// is built from that snapshot's directory, the interpreter evaluates the
/// line once against that snapshot's policy, and the grant that one
/// evaluation chose is the one whose end stops the backend. A reload while
/// it runs changes nothing for it.
struct CommandStep {
    let gateway: NetworkContext
    let privileges: SessionPrivileges
    let interpreter: CmdletInterpreter
    let session: SessionID

    /// Runs `line` with the claim as of now; `cancellation` stops its backend.
    func run(_ line: [UInt8], output: CommandOutput, cancellation: CancellationFlag) -> LineOutcome {
        let snapshot = gateway.snapshot
        let claim = privileges.claim(now: gateway.clock.now(), rules: snapshot.lockboxRules)
        return interpreter.run(line: line, claim: claim, snapshot: snapshot.policy, context: gateway.executionContext,
                               output: output, cancellation: cancellation, willRun: { command in
            watchGrant(of: command, cancellation: cancellation)
        })
    }

    /// A command an elevation allowed runs only while that elevation lasts.
    /// Its revocation reaches the backend through the registry
    /// (`SessionRegistry.grantEnded`); its expiry is one of the session's
    /// deadlines (`SessionRegistry.runningGrantExpiry`). The second look at the
    /// Lockbox closes the window between the claim and the registration: a
    /// revocation that came in between is seen here.
    private func watchGrant(of command: AllowedCommand, cancellation: CancellationFlag) {
        guard case .elevation(let requestID) = command.grant.source else { return }
        gateway.sessions.setRunningGrant(session, requestID: requestID, expires: command.grant.expires)
        let still = privileges.claim(now: gateway.clock.now(), rules: nil).grants.contains {
            $0.source == .elevation(requestID: requestID)
        }
        if !still { cancellation.cancel() }
    }
}
