import CmdletPolicy
import CmdletShell
import Foundation
import GatehouseCore
import Lockbox
import PolicyFormat

/// Output that must reach the user's terminal but nothing that records it
/// (transcripts, logs): the one-time secret. The session's channel output
/// implements it; any other output refuses to show a secret at all.
protocol SensitiveOutput: CommandOutput {
    func sensitive(_ bytes: [UInt8])
}

/// The Lockbox workflow as shell commands, answered by the gateway itself
/// (a `ShellCommandProvider`), always available to every user: who may do
/// what is decided by the Lockbox from the directory (requester, manager,
/// tenant approver, admin), not by roles.
///
/// The commands are declared below as cmdlet definitions; the shell binds
/// them (types, abbreviations, errors) and shows them in `Get-Command`,
/// `Get-Help` and completion like any cmdlet. `Enter-Elevation` is the
/// shell's built-in (it needs the session's no-echo prompt); `Exit-Elevation`
/// ends the session's grants.
public struct LockboxCommands: ShellCommandProvider {
    let lockbox: Lockbox
    let clock: Clock
    /// Told when a grant bound to a session (perhaps another user's) ends
    /// here, so that session hears it at once: see `SessionRegistry.grantEnded`.
    let sessions: GrantEndListener?

    init(lockbox: Lockbox, clock: Clock, sessions: GrantEndListener? = nil) {
        self.lockbox = lockbox
        self.clock = clock
        self.sessions = sessions
    }

    /// A request that was active ended here: its session is woken, and a
    /// backend running under it stopped.
    private func grantEnded(_ request: LockboxRequest) {
        guard request.activatedAt != nil, let bound = request.session else { return }
        sessions?.grantEnded(session: bound, requestID: request.id)
    }

    public enum Command: String, Sendable, CaseIterable, Codable {
        case newRequest, getRequest, approve, deny, revoke, cancel, getCredential, exitElevation
    }

    public var commands: [ProvidedCommand<Command>] { Self.declared }

    /// The declarations, in the order `Get-Command` lists them.
    public static let declared: [ProvidedCommand<Command>] = Command.allCases.map { .init($0, $0.definition) }

    /// Reserved in the policy language too (the policy loader's caller
    /// passes them in), so no cmdlet or alias shadows them.
    public static let names = declared.map(\.definition.name)

    /// Shown in the session banner.
    static let bannerLine = "Elevation: New-LockboxRequest, Get-LockboxRequest [-Pending], Approve-/Deny-/Revoke-/"
        + "Cancel-LockboxRequest -Id N, Get-LockboxCredential -Id N, Enter-Elevation -Id N, Exit-Elevation."

    /// The bound parameters (a reason, a comment, an id: never a secret)
    /// and the request id, which links the line to its request in the index.
    public func auditFields(_ command: Command, parameters: [BoundParameter]) -> [String: String] {
        Self.auditFields(command, parameters: parameters)
    }

    /// The same, for a provider that answers these commands elsewhere (the monitor).
    static func auditFields(_ command: Command, parameters: [BoundParameter]) -> [String: String] {
        // No role decides: the Lockbox does, from the directory.
        var fields = ["role": "(Lockbox workflow)"]
        if !parameters.isEmpty {
            fields["parameters"] = AuditText.jsonObject(parameters.map { ($0.name, $0.value.argumentText) })
        }
        if let id = parameters.int("Id") { fields["requestID"] = String(id) }
        return fields
    }

    public func run(_ command: Command, parameters p: [BoundParameter], claim: AccessClaim,
                    output: CommandOutput) -> Int32 {
        let user = claim.user
        // -Id is mandatory (and at least 1) wherever it is declared; the
        // Binder has checked that before `run` is called.
        let id = Int64(p.int("Id") ?? 0)
        do {
            switch command {
            case .newRequest:
                let r = try lockbox.submit(requester: user, role: p.string("Role") ?? "", scope: p.string("Scope") ?? "",
                                           durationSeconds: p.seconds("Duration") ?? 0, reason: p.string("Reason") ?? "",
                                           ticket: p.string("Ticket"), session: claim.session)
                let next = r.needsCustomerApproval ? "your manager, then the approver of \(r.scope)" : "your manager"
                say(output, "Request \(r.id) filed: \(r.role) in \(r.scope) for \(PolicyDuration.format(r.durationSeconds)). "
                    + "Waiting for \(next).")
            case .getRequest:
                if p.isPresent("Id") {
                    say(output, Self.detail(try lockbox.request(id: id, visibleTo: user), now: clock.now()))
                } else {
                    let pending = p.isPresent("Pending")
                    let list = pending ? try lockbox.pending(for: user) : try lockbox.requests(of: user)
                    if list.isEmpty {
                        say(output, pending ? "No requests are waiting for your approval." : "You have no Lockbox requests.")
                    } else {
                        say(output, Self.table(list, now: clock.now()))
                    }
                }
            case .approve:
                let r = try lockbox.approve(id: id, by: user, comment: p.string("Comment"), session: claim.session)
                say(output, r.state == .approved
                    ? "Request \(id) is approved. \(r.requester) can now fetch the one-time credential."
                    : "Request \(id) approved at your stage; it now waits for the approver of \(r.scope).")
            case .deny:
                _ = try lockbox.deny(id: id, by: user, reason: p.string("Reason") ?? "", session: claim.session)
                say(output, "Request \(id) is denied.")
            case .revoke:
                let r = try lockbox.revoke(id: id, by: user, reason: p.string("Reason"), session: claim.session)
                grantEnded(r)
                say(output, "Request \(id) is revoked\(r.activatedAt != nil ? "; its grant ended" : "").")
            case .cancel:
                grantEnded(try lockbox.cancel(id: id, by: user, session: claim.session))
                say(output, "Request \(id) is cancelled.")
            case .getCredential:
                guard let sensitive = output as? SensitiveOutput else {
                    output.stderr(Array("The credential can only be shown on a session's own terminal.\n".utf8))
                    return ExitStatus.usage
                }
                let secret = try lockbox.issueCredential(id: id, to: user, session: claim.session)
                say(output, "One-time credential for request \(id). It is shown only this once and works once,")
                say(output, "in one session: type it at the prompt of Enter-Elevation -Id \(id).")
                sensitive.sensitive(Array(("  " + secret.revealedText + "\n").utf8))
            case .exitElevation:
                let ended = lockbox.endElevations(session: claim.session, user: user, reason: "Exit-Elevation")
                if ended.isEmpty {
                    say(output, "You hold no elevation in this session.")
                } else {
                    for r in ended {
                        say(output, "Elevation \(r.id) (\(r.role) in \(r.scope)) ended. You have your baseline rights again.")
                    }
                }
            }
            return 0
        } catch let error as LockboxError {
            output.stderr(Array((TerminalText.sanitize(error.message, keepLineBreaks: false) + "\n").utf8))
            if case .notAuthorized = error { return ExitStatus.notPermitted }
            if case .auditUnavailable = error { return ExitStatus.auditUnavailable }
            return ExitStatus.failure
        } catch {
            output.stderr(Array("The Lockbox is unavailable; nothing was changed.\n".utf8))
            return ExitStatus.failure
        }
    }

    private func say(_ output: CommandOutput, _ text: String) {
        output.stdout(Array((text.hasSuffix("\n") ? text : text + "\n").utf8))
    }

    // MARK: - Formatting

    static func table(_ list: [LockboxRequest], now: Date) -> String {
        let header = ["Id", "State", "Requester", "Role", "Scope", "Duration", "Ticket", "Reason"]
        var rows = [header]
        for r in list {
            rows.append([String(r.id), r.state.rawValue, r.requester.rawValue, r.role, r.scope,
                         PolicyDuration.format(r.durationSeconds), r.ticket ?? "-", String(r.reason.prefix(40))])
        }
        let widths = header.indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { c, cell in
                c == row.count - 1 ? cell : cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    static func detail(_ r: LockboxRequest, now: Date) -> String {
        let iso = ISO8601DateFormatter()
        var lines = [
            ("Id", String(r.id)), ("State", r.state.rawValue), ("Requester", r.requester.rawValue), ("Role", r.role),
            ("Scope", r.scope), ("Duration", PolicyDuration.format(r.durationSeconds)), ("Reason", r.reason),
            ("Ticket", r.ticket ?? "-"), ("Created", iso.string(from: r.createdAt)),
            ("CustomerLockbox", r.needsCustomerApproval ? "required" : "not required"),
        ]
        if let m = r.managerApprover { lines.append(("ManagerApproval", m.rawValue + (r.managerComment.map { ": " + $0 } ?? ""))) }
        if let c = r.customerApprover { lines.append(("CustomerApproval", c.rawValue + (r.customerComment.map { ": " + $0 } ?? ""))) }
        if let d = r.deadline {
            let left = max(0, Int(d.timeIntervalSince(now)))
            lines.append((r.state == .active ? "Expires" : "Lapses", iso.string(from: d) + " (in \(ElevationPrompt.format(left)))"))
        }
        if let e = r.endReason { lines.append(("Ended", e + (r.endedBy.map { " (by \($0))" } ?? ""))) }
        let width = lines.map(\.0.count).max() ?? 0
        return lines.map { $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + " : " + TerminalText.sanitize($0.1, keepLineBreaks: false) }
            .joined(separator: "\n")
    }
}

/// Text for the elevated prompt and messages.
enum ElevationPrompt {
    /// `1h05m`, `4m10s`, `9s`: short enough for a prompt.
    static func format(_ seconds: Int) -> String {
        if seconds >= 3600 { return "\(seconds / 3600)h" + String(format: "%02dm", (seconds % 3600) / 60) }
        if seconds >= 60 { return "\(seconds / 60)m" + String(format: "%02ds", seconds % 60) }
        return "\(seconds)s"
    }
}

/// The same views for the operator tool (`gatehouse lockbox list/show`).
public enum LockboxFormat {
    public static func table(_ list: [LockboxRequest], now: Date) -> String { LockboxCommands.table(list, now: now) }
    public static func detail(_ request: LockboxRequest, now: Date) -> String { LockboxCommands.detail(request, now: now) }
}

/// Hears that a grant bound to a session ended (a revocation, a cancel), so
/// that session is woken and a backend running under the grant stopped:
/// the session registry where the sessions live, or the monitor's notice to
/// the session's side.
protocol GrantEndListener: Sendable {
    func grantEnded(session: SessionID, requestID: Int64)
}

extension SessionRegistry: GrantEndListener {}
