/// The Gateway's side of authentication. `SSHConnection.authenticate` owns the
/// protocol (which methods are offered, partial success, retry limits); the
/// delegate owns the decisions (whose key is this, does PAM accept this user).
///
/// All methods are called on the connection's thread and may block.
public protocol SSHAuthDelegate: AnyObject {
    /// Is this key one of `user`'s authorized keys? Called for probes and
    /// signed attempts. Anything but `true` denies.
    func isAuthorized(user: String, key: SSHPublicKey) -> Bool
    /// Run the keyboard-interactive stack (the Gateway runs PAM here), using
    /// `prompter` to talk to the client. true = success. Only called after the
    /// same user has passed publickey on this connection.
    func keyboardInteractive(user: String, prompter: KeyboardInteractivePrompter) -> Bool
    /// Every auth outcome, for the audit log. `method`: "publickey" |
    /// "keyboard-interactive" | "none" | "password" | "hostbased" |
    /// "gssapi-with-mic" | "unknown". `reason` never contains an answer, code
    /// or password.
    func authAttempt(user: String, method: String, success: Bool, partial: Bool, reason: String)
}

/// Talks to the client during one keyboard-interactive round (RFC 4256).
/// Valid only inside `SSHAuthDelegate.keyboardInteractive`, on that thread.
public protocol KeyboardInteractivePrompter: AnyObject {
    /// Sends one SSH_MSG_USERAUTH_INFO_REQUEST and waits for the client's
    /// answers. nil when the client gave up, answered a different number of
    /// prompts, disconnected or timed out. At most 8 prompts; answers longer
    /// than 1024 bytes fail the round.
    func ask(instruction: String, prompts: [(text: String, echo: Bool)]) -> [String]?
    /// Text PAM wants shown (PAM_TEXT_INFO / PAM_ERROR_MSG): sent with the next
    /// prompt's instruction, or, if none follows before auth ends, as a
    /// zero-prompt info request (as OpenSSH does).
    func inform(_ text: String)
}
