import Foundation
import GatehouseCore
import PAMWorkers
import SSHServer

/// The session side's half of authentication for one connection: libssh
/// asks, the monitor decides. The public key is checked by the monitor
/// against the directory; keyboard-interactive is PAM in the monitor, whose
/// messages this relays to the client and whose answers it relays back.
/// Every attempt becomes an audit event (written by the monitor). Confined
/// to the connection's thread.
final class GatewayAuthenticator: SSHAuthDelegate {
    private let monitor: MonitorClient
    private let connection: UInt64
    private let session: SessionID
    private let peer: String
    /// The balancer the connection came through (its PROXY header named `peer`).
    private let balancer: String?
    /// Set when the audit log failed or the monitor is gone: the connection
    /// must be dropped (fail closed).
    private(set) var auditFailed = false
    /// PAM's own word on the last keyboard-interactive failure (pam_strerror; never an answer).
    private var lastPAMFailure: String?
    /// Counted failures and attempts on this connection, for the per-source penalty.
    private(set) var failures = 0
    private(set) var attempts = 0

    init(monitor: MonitorClient, connection: UInt64, session: SessionID, peer: String, balancer: String? = nil) {
        self.monitor = monitor
        self.connection = connection
        self.session = session
        self.peer = peer
        self.balancer = balancer
    }

    func isAuthorized(user: String, key: SSHPublicKey) -> Bool {
        guard let call = try? monitor.call(connection, .publicKey(user: user, key: key.openSSHLine)),
              case .authorized(let authorized) = call.reply else { return false }
        return authorized
    }

    func keyboardInteractive(user: String, prompter: KeyboardInteractivePrompter) -> Bool {
        let bridge = PAMPrompterBridge(prompter: prompter)
        var request = MonitorRequest.keyboardInteractive(user: user, session: session, source: peer)
        while true {
            guard let call = try? monitor.call(connection, request) else {
                lastPAMFailure = "the monitor did not answer"
                return false
            }
            switch call.reply {
            case .pamMessages(let messages):
                request = .pamAnswers(bridge.converse(messages.map(\.message)))
            case .pamResult(let success, let failure, let notice):
                if let notice { prompter.inform(notice) }
                lastPAMFailure = failure
                return success
            default:
                lastPAMFailure = "the monitor's answer did not fit"
                return false
            }
        }
    }

    func authAttempt(user: String, method: String, success: Bool, partial: Bool, reason: String) {
        attempts += 1
        if !success && method != "none" { failures += 1 }
        var fields = ["method": method, "source": peer, "reason": reason]
        if partial { fields["partial"] = "true" }
        if let balancer { fields["balancer"] = balancer }
        if !success, method == "keyboard-interactive", let pam = lastPAMFailure {
            fields["pam"] = pam
            lastPAMFailure = nil
        }
        let safeUser = UserName(user)?.rawValue ?? TerminalText.sanitize(String(user.prefix(64)), keepLineBreaks: false)
        let request = MonitorRequest.preAuthAudit(kind: success ? .authSuccess : .authFailure, user: safeUser,
                                                  session: session, fields: fields)
        // Describing: posted in order without a round trip. A failed audit
        // log still refuses the login, at its gating session.start.
        do { try monitor.post(connection, request) } catch { auditFailed = true }
    }
}

/// Carries PAM's conversation to the SSH client: info and error messages are
/// shown as PAM sends them, prompts become keyboard-interactive prompts with
/// PAM's echo flag. The answers go straight back to PAM and nowhere else.
final class PAMPrompterBridge {
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
