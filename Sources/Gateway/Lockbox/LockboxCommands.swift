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
/// `Enter-Elevation` is the shell's built-in (it needs the session's no-echo
/// prompt); `Exit-Elevation` ends the session's grants.
struct LockboxCommands: ShellCommandProvider {
    let lockbox: Lockbox
    let clock: Clock

    /// Reserved in the policy language too, so no cmdlet or alias shadows them.
    static let names = PolicyLoader.lockboxCommandNames

    /// Shown in the session banner: Get-Command lists only policy cmdlets.
    static let bannerLine = "Elevation: New-LockboxRequest, Get-LockboxRequest [-Pending], Approve-/Deny-/Revoke-/"
        + "Cancel-LockboxRequest -Id N, Get-LockboxCredential -Id N, Enter-Elevation -Id N, Exit-Elevation."

    func commandName(_ name: String) -> String? { Self.canonical(name) }

    /// The parsed parameters (a reason, a comment, an id: never a secret)
    /// and the request id, which links the line to its request in the index.
    func auditFields(command: String, arguments: ArraySlice<Token>) -> [String: String] {
        guard case .success(let args) = Self.parse(arguments, spec: Self.parameters[command] ?? [:], command: command)
        else { return [:] }
        var fields = ["parameters": AuditText.jsonObject(args.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })]
        if let id = Self.id(args["Id"]) { fields["requestID"] = String(id) }
        return fields
    }

    static func canonical(_ name: String) -> String? { names.first { ASCII.equalsIgnoringCase($0, name) } }

    func run(name: String, arguments: ArraySlice<Token>, claim: AccessClaim, output: CommandOutput) -> Int32 {
        guard let command = Self.canonical(name) else { return ExitStatus.notFound }
        let spec = Self.parameters[command] ?? [:]
        let args: [String: String]
        switch Self.parse(arguments, spec: spec, command: command) {
        case .failure(let error):
            output.stderr(Array((error.message + "\n").utf8))
            return ExitStatus.usage
        case .success(let parsed): args = parsed
        }
        let user = claim.user
        do {
            switch command {
            case "New-LockboxRequest":
                guard let seconds = PolicyDuration.parseSeconds(args["Duration"] ?? "") else {
                    return usage(output, "-Duration must be a duration such as 30m, 2h or 1d")
                }
                let r = try lockbox.submit(requester: user, role: args["Role"] ?? "", scope: args["Scope"] ?? "",
                                           durationSeconds: seconds, reason: args["Reason"] ?? "",
                                           ticket: args["Ticket"], session: claim.session)
                let next = r.needsCustomerApproval ? "your manager, then the approver of \(r.scope)" : "your manager"
                say(output, "Request \(r.id) filed: \(r.role) in \(r.scope) for \(PolicyDuration.format(r.durationSeconds)). "
                    + "Waiting for \(next).")
            case "Get-LockboxRequest":
                if let idText = args["Id"] {
                    guard let id = Self.id(idText) else { return usage(output, "-Id expects a request number") }
                    say(output, Self.detail(try lockbox.request(id: id, visibleTo: user), now: clock.now()))
                } else {
                    let list = args["Pending"] != nil ? try lockbox.pending(for: user) : try lockbox.requests(of: user)
                    if list.isEmpty {
                        say(output, args["Pending"] != nil ? "No requests are waiting for your approval."
                                                           : "You have no Lockbox requests.")
                    } else {
                        say(output, Self.table(list, now: clock.now()))
                    }
                }
            case "Approve-LockboxRequest":
                guard let id = Self.id(args["Id"]) else { return usage(output, "Approve-LockboxRequest needs -Id N") }
                let r = try lockbox.approve(id: id, by: user, comment: args["Comment"], session: claim.session)
                say(output, r.state == .approved
                    ? "Request \(id) is approved. \(r.requester) can now fetch the one-time credential."
                    : "Request \(id) approved at your stage; it now waits for the approver of \(r.scope).")
            case "Deny-LockboxRequest":
                guard let id = Self.id(args["Id"]) else { return usage(output, "Deny-LockboxRequest needs -Id N") }
                _ = try lockbox.deny(id: id, by: user, reason: args["Reason"] ?? "", session: claim.session)
                say(output, "Request \(id) is denied.")
            case "Revoke-LockboxRequest":
                guard let id = Self.id(args["Id"]) else { return usage(output, "Revoke-LockboxRequest needs -Id N") }
                let r = try lockbox.revoke(id: id, by: user, reason: args["Reason"], session: claim.session)
                say(output, "Request \(id) is revoked\(r.activatedAt != nil ? "; its grant ended" : "").")
            case "Cancel-LockboxRequest":
                guard let id = Self.id(args["Id"]) else { return usage(output, "Cancel-LockboxRequest needs -Id N") }
                _ = try lockbox.cancel(id: id, by: user, session: claim.session)
                say(output, "Request \(id) is cancelled.")
            case "Get-LockboxCredential":
                guard let id = Self.id(args["Id"]) else { return usage(output, "Get-LockboxCredential needs -Id N") }
                guard let sensitive = output as? SensitiveOutput else {
                    return usage(output, "The credential can only be shown on a session's own terminal.")
                }
                let secret = try lockbox.issueCredential(id: id, to: user, session: claim.session)
                say(output, "One-time credential for request \(id). It is shown only this once and works once,")
                say(output, "in one session: type it at the prompt of Enter-Elevation -Id \(id).")
                sensitive.sensitive(Array(("  " + secret.revealedText + "\n").utf8))
            case "Exit-Elevation":
                let ended = lockbox.endElevations(session: claim.session, user: user, reason: "Exit-Elevation")
                if ended.isEmpty {
                    say(output, "You hold no elevation in this session.")
                } else {
                    for r in ended {
                        say(output, "Elevation \(r.id) (\(r.role) in \(r.scope)) ended. You have your baseline rights again.")
                    }
                }
            default:
                return ExitStatus.notFound
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

    private func usage(_ output: CommandOutput, _ text: String) -> Int32 {
        output.stderr(Array((text + "\n").utf8))
        return ExitStatus.usage
    }

    // MARK: - Parameters

    enum Kind { case value, flag }

    /// Each command's parameters; mandatory ones are checked by the Lockbox
    /// with a message naming the rule (e.g. a missing reason).
    static let parameters: [String: [String: Kind]] = [
        "New-LockboxRequest": ["Role": .value, "Scope": .value, "Duration": .value, "Reason": .value, "Ticket": .value],
        "Get-LockboxRequest": ["Id": .value, "Pending": .flag],
        "Approve-LockboxRequest": ["Id": .value, "Comment": .value],
        "Deny-LockboxRequest": ["Id": .value, "Reason": .value],
        "Revoke-LockboxRequest": ["Id": .value, "Reason": .value],
        "Cancel-LockboxRequest": ["Id": .value],
        "Get-LockboxCredential": ["Id": .value],
        "Exit-Elevation": [:],
    ]

    /// `-Name value`, `-Name:value` and `-Flag`; names match by unique
    /// case-insensitive prefix, as policy cmdlets do. A bare value after the
    /// command counts as -Id where the command has one.
    static func parse(_ tokens: ArraySlice<Token>, spec: [String: Kind], command: String) -> Result<[String: String], UsageError> {
        var out: [String: String] = [:]
        var i = tokens.startIndex
        while i < tokens.endIndex {
            let t = tokens[i]
            i += 1
            switch t.kind {
            case .pipe:
                return .failure(UsageError("\(command) cannot be piped (column \(t.column))"))
            case .bare, .quoted:
                guard spec["Id"] != nil, out["Id"] == nil else {
                    return .failure(UsageError("\(command): unexpected value '\(TerminalText.sanitize(String(t.text.prefix(40)), keepLineBreaks: false))' (column \(t.column))"))
                }
                out["Id"] = t.text
            case .parameter(let inline):
                let matches = spec.keys.filter { ASCII.hasPrefixIgnoringCase($0, t.text) && !t.text.isEmpty }
                let exact = spec.keys.first { ASCII.equalsIgnoringCase($0, t.text) }
                guard let name = exact ?? (matches.count == 1 ? matches[0] : nil) else {
                    let known = spec.keys.sorted().map { "-" + $0 }.joined(separator: ", ")
                    return .failure(UsageError("\(command) has no parameter -\(TerminalText.sanitize(String(t.text.prefix(40)), keepLineBreaks: false))"
                                    + (known.isEmpty ? "; it takes none" : "; it takes \(known)")))
                }
                guard out[name] == nil else { return .failure(UsageError("-\(name) is given more than once")) }
                switch spec[name]! {
                case .flag:
                    if inline != nil { return .failure(UsageError("-\(name) is a switch and takes no value")) }
                    out[name] = "true"
                case .value:
                    if let inline {
                        out[name] = inline.text
                    } else if i < tokens.endIndex, tokens[i].kind == .bare || tokens[i].kind == .quoted {
                        out[name] = tokens[i].text
                        i += 1
                    } else {
                        return .failure(UsageError("-\(name) needs a value"))
                    }
                }
            }
        }
        return .success(out)
    }

    struct UsageError: Error {
        let message: String
        init(_ message: String) { self.message = message }
    }

    static func id(_ text: String?) -> Int64? {
        guard let text, let n = ASCII.parseNonNegativeInt(text), n > 0 else { return nil }
        return Int64(n)
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
