import Foundation
import GatehouseCore
import PAMWorkers
import SSHServer

/// Decides the two authentication factors for one connection: the public key
/// against the directory, then keyboard-interactive through PAM. Every
/// attempt becomes an audit event. Confined to the connection's thread.
final class GatewayAuthenticator: SSHAuthDelegate {
    private let keys: (UserName) -> [SSHPublicKey]?
    private let pamService: String
    /// Where PAM runs: worker processes, never this thread (issue 11).
    private let pamWorkers: PAMWorkerPool
    private let audit: AuditSink
    private let clock: Clock
    private let session: SessionID
    private let peer: String
    /// Set when the audit log failed: the connection must be dropped (fail closed).
    private(set) var auditFailed = false
    /// PAM's own word on the last keyboard-interactive failure (pam_strerror; never an answer).
    private var lastPAMFailure: String?
    /// Per-user lockout after repeated second-factor failures (nil: none).
    private let lockouts: UserLockouts?
    /// Counted failures and attempts on this connection, for the per-source penalty.
    private(set) var failures = 0
    private(set) var attempts = 0

    init(keys: @escaping (UserName) -> [SSHPublicKey]?, pamService: String, pamWorkers: PAMWorkerPool,
         audit: AuditSink, clock: Clock, session: SessionID, peer: String, lockouts: UserLockouts? = nil) {
        self.lockouts = lockouts
        self.keys = keys
        self.pamService = pamService
        self.pamWorkers = pamWorkers
        self.audit = audit
        self.clock = clock
        self.session = session
        self.peer = peer
    }

    func isAuthorized(user: String, key: SSHPublicKey) -> Bool {
        guard let name = UserName(user), let allowed = keys(name) else { return false }
        return allowed.contains(key)
    }

    func keyboardInteractive(user: String, prompter: KeyboardInteractivePrompter) -> Bool {
        guard let name = UserName(user) else { return false }
        if let lockouts, lockouts.isLocked(name, now: clock.now()) {
            // Still counted, so an ongoing attack keeps the lock; PAM is not
            // asked, so no code is consumed or checked while locked.
            lockouts.recordFailure(name, now: clock.now())
            lastPAMFailure = "user locked out after repeated failures"
            prompter.inform("Too many failed attempts: this account is locked. Ask an operator to unlock it.")
            return false
        }
        let bridge = PAMPrompterBridge(prompter: prompter)
        do {
            try pamWorkers.authenticate(service: pamService, user: user, remoteHost: PreAuthLimits.host(of: peer),
                                        conversation: bridge)
            return true
        } catch {
            lastPAMFailure = "\(error)"
            if let lockouts, lockouts.recordFailure(name, now: clock.now()) {
                record(AuditEvent(time: clock.now(), kind: .userLockout, user: name.rawValue, session: session,
                                  fields: ["source": peer, "reason": "too many failed second factors"]))
            }
            return false
        }
    }

    private func record(_ event: AuditEvent) {
        do { try audit.record(event) } catch { auditFailed = true }
    }

    func authAttempt(user: String, method: String, success: Bool, partial: Bool, reason: String) {
        attempts += 1
        if !success && method != "none" { failures += 1 }
        var fields = ["method": method, "source": peer, "reason": reason]
        if partial { fields["partial"] = "true" }
        if !success, method == "keyboard-interactive", let pam = lastPAMFailure {
            fields["pam"] = pam
            lastPAMFailure = nil
        }
        let safeUser = UserName(user)?.rawValue ?? TerminalText.sanitize(String(user.prefix(64)), keepLineBreaks: false)
        let event = AuditEvent(time: clock.now(), kind: success ? .authSuccess : .authFailure,
                               user: safeUser, session: session, fields: fields)
        do { try audit.record(event) } catch { auditFailed = true }
    }
}

/// Carries PAM's conversation to the SSH client: info and error messages are
/// shown as PAM sends them, prompts become keyboard-interactive prompts with
/// PAM's echo flag. The answers go straight back to PAM and nowhere else.
final class PAMPrompterBridge: PAMConversation {
    private let prompter: KeyboardInteractivePrompter

    init(prompter: KeyboardInteractivePrompter) { self.prompter = prompter }

    func converse(_ messages: [PAMMessage]) -> [String?]? {
        var prompts: [(text: String, echo: Bool)] = []
        var promptIndexes: [Int] = []
        for (i, message) in messages.enumerated() {
            switch message.style {
            case .textInfo, .errorMessage:
                prompter.inform(message.text)
            case .promptEchoOff, .promptEchoOn:
                prompts.append((message.text, message.style == .promptEchoOn))
                promptIndexes.append(i)
            }
        }
        var replies = [String?](repeating: nil, count: messages.count)
        guard !prompts.isEmpty else { return replies }
        guard let answers = prompter.ask(instruction: "", prompts: prompts), answers.count == prompts.count else {
            return nil
        }
        for (index, answer) in zip(promptIndexes, answers) { replies[index] = answer }
        return replies
    }
}
