import CmdletShell
import Foundation
import GatehouseCore
import Lockbox

/// The session's side of elevation: the hidden secret prompt of
/// `Enter-Elevation`, binding the grant to this session, telling the user
/// when a grant ends, and stopping a backend whose grant ended.
extension SessionRunner {
    /// `Enter-Elevation -Id N`: opens the hidden prompt; the next line typed
    /// on this channel is the secret (ShellChannel sends the very next byte
    /// to it). The secret never reaches the interpreter, the audit log or a
    /// transcript.
    func beginElevation(_ requestID: Int64, output: CommandOutput) -> Int32 {
        guard let channelOutput = output as? ChannelOutput, channelOutput.state.isInteractive else {
            output.stderr(Array(("Enter-Elevation needs an interactive session (ssh -t): the secret is typed at a "
                                 + "hidden prompt and the elevation lives as long as the session.\n").utf8))
            return ExitStatus.failure
        }
        let state = channelOutput.state
        state.openSecretPrompt(requestID: requestID)
        write(state, Array("Secret for request \(requestID) (input is hidden): ".utf8), stderr: false, raw: true)
        return 0
    }

    /// Redeems the typed secret and binds the grant to this session. The
    /// secret is wiped when this returns (SecretBytes' deinit).
    func finishElevation(_ requestID: Int64, secret: consuming SecretBytes, on state: ShellChannel) {
        // Enter was not echoed at the hidden prompt: end its line.
        if state.pty != nil { write(state, [0x0a], stderr: false) }
        guard let privileges else { return }
        do {
            let request = try privileges.redeem(requestID, secret: secret)
            if let grant = request.grant { knownElevations[request.id] = grant }
            let left = Int((request.expiresAt ?? gateway.clock.now()).timeIntervalSince(gateway.clock.now()))
            write(state, Array(("Elevated: \(request.role) in \(request.scope) for \(ElevationPrompt.format(left)), "
                                + "in this session only. Exit-Elevation ends it early.\n").utf8), stderr: false)
            state.lastStatus = 0
        } catch let error as LockboxError {
            write(state, Array((error.message + "\n").utf8), stderr: true)
            state.lastStatus = ExitStatus.failure
        } catch {
            write(state, Array("The Lockbox is unavailable; nothing was redeemed.\n".utf8), stderr: true)
            state.lastStatus = ExitStatus.failure
        }
    }

    /// Writes the one-time secret to the channel only. Deliberately not
    /// `write(_:_:stderr:)`: session recording hooks in there, and a secret
    /// must never reach a transcript or a log.
    func writeUnrecorded(_ state: ShellChannel, _ bytes: [UInt8]) {
        guard state.channel.isOpen else { return }
        recorder.marker("gatehouse: output withheld (one-time secret shown to the requester)")
        try? state.channel.write(state.terminalBytes(bytes), stderr: false)
    }

    /// `[MailboxAdmin@contoso 59m]` while elevated, so the user always sees
    /// which rights they are using and for how long.
    /// A session that never redeemed a grant (nearly all) asks the Lockbox
    /// nothing here: grants join a session only through `finishElevation`.
    func elevationPromptSuffix() -> String {
        guard let privileges, !knownElevations.isEmpty else { return "" }
        let now = gateway.clock.now()
        let claim = privileges.claim(now: now, rules: nil)
        let parts = claim.grants.compactMap { g -> String? in
            guard case .elevation = g.source, let expires = g.expires else { return nil }
            let left = max(0, Int(expires.timeIntervalSince(now).rounded(.up)))
            return "\(g.role)@\(g.scope ?? "?") \(ElevationPrompt.format(left))"
        }
        return parts.isEmpty ? "" : " [" + parts.joined(separator: ", ") + "]"
    }

    /// Compares the session's elevations with the last look and tells the
    /// user about each one that ended, and why. Called before each command and
    /// after each wake-up of the session loop: a grant's expiry is one of the
    /// loop's deadlines, and a revocation from another session writes the
    /// session's wake pipe, so either is announced at once; the next
    /// command's claim already excludes it either way.
    ///
    /// Grants join a session only through `finishElevation`, which records
    /// them, so a session that holds none (nearly every idle one) costs
    /// nothing here; the daemon's sweeper records expiries meanwhile.
    func noticeEndedElevations(on current: ShellChannel?) {
        guard let privileges, !knownElevations.isEmpty else { return }
        let now = gateway.clock.now()
        var active: [Int64: RoleGrant] = [:]
        for grant in privileges.claim(now: now, rules: nil).grants {
            if case .elevation(let id) = grant.source { active[id] = grant }
        }
        let ended = knownElevations.filter { active[$0.key] == nil }
        knownElevations = active
        // A grant that timed out leaves the claim at once; record its expiry
        // now rather than at the next throttled sweep.
        if !ended.isEmpty { privileges.sweep() }
        for (id, grant) in ended.sorted(by: { $0.key < $1.key }) {
            let request = privileges.ownRequest(id)
            let why: String
            switch request?.state {
            case .revoked?:
                why = "revoked by \(request?.endedBy?.rawValue ?? "an approver")"
                    + (request?.endReason.map { " (\(TerminalText.sanitize($0, keepLineBreaks: false)))" } ?? "")
            case .cancelled? where request?.endReason == "Exit-Elevation":
                continue // the user asked for it and was already told
            case .cancelled?: why = request?.endReason ?? "cancelled"
            default: why = "its time is up"
            }
            let text = "\nElevation \(id) (\(grant.role) in \(grant.scope ?? "?")) ended: \(why). "
                + "Commands run with your baseline rights again.\n"
            let targets = current.map { [$0] } ?? channels.values.filter { $0.isInteractive && $0.channel.isOpen }
            for state in targets {
                write(state, Array(text.utf8), stderr: true)
                if current == nil && !state.isSecretPromptOpen { prompt(state) }
            }
        }
    }
}

/// Lets the session's interpreter call back into its runner without a
/// retain cycle; the runner outlives its interpreter.
// unchecked: the interpreter calls its handler only inside `run`, on the session's own thread.
final class UnownedRunner: @unchecked Sendable {
    unowned let runner: SessionRunner
    init(_ runner: SessionRunner) { self.runner = runner }
}
