import CLibSSH
import Foundation
import GatehouseCore

extension SSHConnection {
    /// Runs the user-authentication protocol with libssh's blocking message
    /// loop (`ssh_message_get`), because libssh 0.10 has no server callback for
    /// keyboard-interactive. Returns the authenticated user name.
    ///
    /// The policy (publickey, then keyboard-interactive; `none` refused and
    /// not counted; a disconnect after `maxAuthTries` failures) lives in
    /// `UserAuthenticationStateMachine`. This function only translates libssh
    /// messages into its events and its actions into libssh replies and
    /// delegate calls. Throws `SSHError` when the client is disconnected or
    /// the login grace time ends.
    public func authenticate(_ delegate: SSHAuthDelegate) throws -> String {
        let s = try live("authenticate")
        if let user = authenticatedUser { return user }
        ssh_set_auth_methods(s, Int32(SSH_AUTH_METHOD_PUBLICKEY))
        var machine = UserAuthenticationStateMachine(maxAuthTries: config.maxAuthTries,
                                                     algorithms: config.algorithms)
        var bannerSent = config.banner == nil
        var carried: ssh_message?     // a message that interrupted a kbd-int round

        while true {
            let msg: ssh_message
            if let c = carried {
                msg = c
                carried = nil
            } else {
                msg = try nextMessage("ssh_message_get")
            }
            var ownsMsg = true
            var prompter: Prompter?
            defer {
                prompter?.release()
                if ownsMsg { ssh_message_free(msg) }
            }

            guard UInt32(bitPattern: ssh_message_type(msg)) == SSH_REQUEST_AUTH.rawValue else {
                // Service request ("ssh-userauth") gets its accept here;
                // anything else before auth is refused.
                _ = ssh_message_reply_default(msg)
                continue
            }
            if !bannerSent, let banner = config.banner {
                bannerSent = true
                // OpenSSH prints the banner verbatim; end it with a newline so
                // the next prompt starts on its own line.
                let text = banner.hasSuffix("\n") ? banner : banner + "\n"
                if let str = ssh_string_from_char(text) {
                    _ = ssh_send_issue_banner(s, str)
                    ssh_string_free(str)
                }
            }
            let user = ssh_message_auth_user(msg).map { String(cString: $0) } ?? ""
            // The message replies go to: the request, or the last message of
            // a keyboard-interactive round.
            var replyTo: ssh_message? = msg
            var actions = try Self.step(&machine, .request(user: user, Self.request(msg)))
            do {
                while !actions.isEmpty {
                    switch actions.removeFirst() {
                    case .offer(.publicKey):
                        ssh_set_auth_methods(s, Int32(SSH_AUTH_METHOD_PUBLICKEY))
                    case .offer(.keyboardInteractive):
                        ssh_set_auth_methods(s, Int32(SSH_AUTH_METHOD_INTERACTIVE))
                    case .checkAuthorization(let user, let key):
                        actions += try Self.step(&machine, .authorizationDecided(delegate.isAuthorized(user: user, key: key)))
                    case .runKeyboardInteractive(let user):
                        ownsMsg = false      // the prompter owns it now
                        let p = Prompter(connection: self, session: s, request: msg)
                        prompter = p
                        let ok = delegate.keyboardInteractive(user: user, prompter: p)
                        let outcome: UserAuthenticationStateMachine.KeyboardInteractiveOutcome
                        switch p.finish() {
                        case .gone:
                            replyTo = nil
                            outcome = .gone
                        case .interrupted(let next):
                            replyTo = nil
                            carried = next
                            outcome = .abandoned
                        case .replyTo(let last):
                            replyTo = last
                            outcome = ok ? .succeeded : .refused(reason: p.failureReason ?? "keyboard-interactive stack refused")
                        }
                        actions += try Self.step(&machine, .keyboardInteractiveEnded(outcome))
                    case .replyFailure:
                        if let m = replyTo { _ = ssh_message_reply_default(m) }
                    case .replyPublicKeyOK:
                        if let m = replyTo { _ = ssh_message_auth_reply_pk_ok_simple(m) }
                    case .replyPartialSuccess:
                        if let m = replyTo { _ = ssh_message_auth_reply_success(m, 1) }
                    case .replySuccess:
                        if let m = replyTo { _ = ssh_message_auth_reply_success(m, 0) }
                    case .audit(let a):
                        delegate.authAttempt(user: a.user, method: a.method, success: a.success, partial: a.partial,
                                             reason: a.reason)
                    case .disconnect(let user, let failures):
                        // The name is whatever the client sent: escape it for the log.
                        logger.notice("too many authentication failures", metadata: [
                            "user": "\(TerminalText.sanitize(String(user.prefix(64)), keepLineBreaks: false))",
                        ])
                        disconnect(message: "Too many authentication failures")
                        throw SSHError(.authenticationFailed, operation: "authenticate",
                                       detail: "too many authentication failures (\(failures))")
                    case .connectionLost:
                        let timedOut = Date() >= deadline
                        throw SSHError(timedOut ? .timeout : .disconnected, operation: "keyboard-interactive",
                                       detail: timedOut ? "login grace time exceeded" : "client went away mid-round")
                    }
                }
            } catch {
                if let c = carried { ssh_message_free(c) }
                throw error
            }
            if let user = machine.authenticatedUser {
                authenticatedUser = user
                try? setTimeout(seconds: config.ioTimeoutSeconds)
                logger.info("authenticated", metadata: ["user": "\(user)"])
                return user
            }
        }
    }

    /// One machine step; a misuse is a bug here, reported as a library error.
    private static func step(_ machine: inout UserAuthenticationStateMachine,
                             _ event: UserAuthenticationStateMachine.Event) throws -> [UserAuthenticationStateMachine.Action] {
        do {
            return try machine.handle(event)
        } catch {
            throw SSHError(.library, operation: "authenticate", detail: "auth state machine: \(error.state) got \(error.event)")
        }
    }

    /// The machine's view of a USERAUTH message (`ssh_message_subtype`,
    /// `ssh_message_auth_pubkey`, `ssh_message_auth_publickey_state`,
    /// `ssh_message_auth_kbdint_is_response`). The key stays the message's.
    private static func request(_ msg: ssh_message) -> UserAuthenticationStateMachine.Request {
        switch UInt32(bitPattern: ssh_message_subtype(msg)) {
        case SSH_AUTH_METHOD_NONE:
            return .none
        case SSH_AUTH_METHOD_PUBLICKEY:
            guard let raw = gh_message_auth_pubkey(msg), let key = SSHPublicKey(libsshKey: raw) else {
                return .publicKey(nil)
            }
            let signature: UserAuthenticationStateMachine.Signature
            switch gh_message_auth_publickey_state(msg) {
            case SSH_PUBLICKEY_STATE_NONE.rawValue: signature = .absent
            case SSH_PUBLICKEY_STATE_VALID.rawValue: signature = .valid
            default: signature = .invalid
            }
            return .publicKey(.init(key: key, fingerprint: key.fingerprintSHA256, signature: signature))
        case SSH_AUTH_METHOD_INTERACTIVE:
            return .keyboardInteractive(isResponse: ssh_message_auth_kbdint_is_response(msg) != 0)
        case SSH_AUTH_METHOD_PASSWORD: return .other(method: "password")
        case SSH_AUTH_METHOD_HOSTBASED: return .other(method: "hostbased")
        case SSH_AUTH_METHOD_GSSAPI_MIC: return .other(method: "gssapi-with-mic")
        default: return .other(method: "unknown")
        }
    }

    /// `ssh_message_get` bounded by what is left of the login grace time.
    /// Throws `.timeout` or `.disconnected` when no message arrives.
    func nextMessage(_ op: String) throws -> ssh_message {
        let s = try live(op)
        let remaining = deadline.timeIntervalSinceNow
        guard remaining > 0 else {
            disconnect(message: "Login grace time exceeded")
            throw SSHError(.timeout, operation: op, detail: "login grace time exceeded")
        }
        try setTimeout(seconds: Int(remaining.rounded(.up)))
        guard let m = ssh_message_get(s) else {
            let timedOut = Date() >= deadline
            let detail = errorText()
            if timedOut { disconnect(message: "Login grace time exceeded") }
            throw SSHError(timedOut ? .timeout : .disconnected, operation: op, detail: detail)
        }
        return m
    }
}

/// Drives RFC 4256 info requests for one keyboard-interactive round. Owns the
/// most recent message of the round (the request, then each response), which
/// is the one libssh needs to reply to.
final class Prompter: KeyboardInteractivePrompter {
    static let maxPrompts = 8
    static let maxAnswerBytes = 1024
    static let maxTextBytes = 4096

    enum Outcome {
        /// The round ended normally; reply to this message.
        case replyTo(ssh_message)
        /// The client sent another request mid-round; handle it next.
        case interrupted(ssh_message)
        /// Disconnected or timed out.
        case gone
    }

    private unowned let connection: SSHConnection
    private let session: ssh_session
    private var current: ssh_message?
    private var interruption: ssh_message?
    private var isGone = false
    private var pendingInfo: [String] = []
    /// Why the round failed on our side (never contains an answer).
    private(set) var failureReason: String?

    init(connection: SSHConnection, session: ssh_session, request: ssh_message) {
        self.connection = connection
        self.session = session
        self.current = request
    }

    func inform(_ text: String) {
        guard !text.isEmpty else { return }
        let total = pendingInfo.reduce(0) { $0 + $1.utf8.count }
        guard total + text.utf8.count <= Prompter.maxTextBytes else { return }
        pendingInfo.append(text)
    }

    func ask(instruction: String, prompts: [(text: String, echo: Bool)]) -> [String]? {
        guard current != nil, interruption == nil, !isGone else { return nil }
        guard prompts.count <= Prompter.maxPrompts else {
            failureReason = "too many prompts (\(prompts.count))"
            return nil
        }
        let info = pendingInfo + (instruction.isEmpty ? [] : [instruction])
        pendingInfo.removeAll()
        guard send(instruction: info.joined(separator: "\n"), prompts: prompts) else { return nil }
        guard let response = awaitResponse() else { return nil }
        let n = Int(ssh_userauth_kbdint_getnanswers(session))
        guard n == prompts.count else {
            failureReason = "client answered \(max(n, 0)) of \(prompts.count) prompts"
            _ = response
            return nil
        }
        var answers: [String] = []
        answers.reserveCapacity(n)
        for i in 0..<n {
            guard let a = ssh_userauth_kbdint_getanswer(session, UInt32(i)) else {
                failureReason = "missing answer"
                return nil
            }
            guard strlen(a) <= Prompter.maxAnswerBytes else {
                failureReason = "answer too long"
                return nil
            }
            answers.append(String(cString: a))
        }
        return answers
    }

    /// Sends leftover PAM text as a zero-prompt info request (as OpenSSH does),
    /// then says which message the final reply goes to.
    func finish() -> Outcome {
        if !pendingInfo.isEmpty, current != nil, interruption == nil, !isGone {
            let text = pendingInfo.joined(separator: "\n")
            pendingInfo.removeAll()
            if send(instruction: text, prompts: []) { _ = awaitResponse() }
        }
        if let i = interruption { interruption = nil; return .interrupted(i) }
        if isGone { return .gone }
        guard let c = current else { return .gone }
        return .replyTo(c)
    }

    /// Frees the message this round still owns.
    func release() {
        if let c = current { ssh_message_free(c) }
        current = nil
        if let i = interruption { ssh_message_free(i) }
        interruption = nil
    }

    deinit { release() }

    /// `ssh_message_auth_interactive_request` on the latest message.
    private func send(instruction: String, prompts: [(text: String, echo: Bool)]) -> Bool {
        guard let msg = current else { return false }
        let cPrompts = prompts.map { strdup(Prompter.clean($0.text)) }
        defer { cPrompts.forEach { free($0) } }
        var ptrs: [UnsafePointer<CChar>?] = cPrompts.map { UnsafePointer($0) }
        var echo: [CChar] = prompts.map { $0.echo ? 1 : 0 }
        let rc = ptrs.withUnsafeMutableBufferPointer { p in
            echo.withUnsafeMutableBufferPointer { e in
                ssh_message_auth_interactive_request(msg, "", Prompter.clean(instruction), UInt32(prompts.count),
                                                     p.baseAddress, e.baseAddress)
            }
        }
        if rc != SSH_OK {
            isGone = true
            return false
        }
        return true
    }

    /// Waits for SSH_MSG_USERAUTH_INFO_RESPONSE. Anything else ends the round.
    private func awaitResponse() -> ssh_message? {
        let m: ssh_message
        do {
            m = try connection.nextMessage("ssh_message_get(kbdint)")
        } catch {
            isGone = true
            return nil
        }
        if UInt32(bitPattern: ssh_message_type(m)) == SSH_REQUEST_AUTH.rawValue,
           UInt32(bitPattern: ssh_message_subtype(m)) == SSH_AUTH_METHOD_INTERACTIVE,
           ssh_message_auth_kbdint_is_response(m) != 0 {
            if let old = current { ssh_message_free(old) }
            current = m
            return m
        }
        interruption = m
        return nil
    }

    /// Keeps prompt text printable: PAM modules are trusted, but a client's
    /// terminal should never receive raw control sequences from us.
    static func clean(_ s: String) -> String {
        let kept = s.unicodeScalars.filter { $0 == "\n" || !$0.isControlCharacter }
        return String(String.UnicodeScalarView(kept)).prefixBytes(maxTextBytes)
    }
}

extension String {
    func prefixBytes(_ n: Int) -> String {
        guard utf8.count > n else { return self }
        var out = ""
        for ch in self {
            if out.utf8.count + String(ch).utf8.count > n { break }
            out.append(ch)
        }
        return out
    }
}
