/// The server side of SSH user authentication as a pure state machine,
/// modelled on swift-nio-ssh's `UserAuthenticationStateMachine`: events in,
/// actions out, one exhaustive switch, no sockets and no libssh types.
/// `SSHConnection.authenticate` translates libssh messages into `Event`s and
/// carries out the `Action`s (replies, delegate calls, audit records).
///
/// The policy it encodes (both factors, in this order):
/// 1. only `publickey` is offered. A probe for an authorized key gets PK_OK;
///    an unauthorized key, an unreadable one, or a key type outside
///    `publicKeyAcceptedTypes` is refused at once (libssh 0.10.6 sends no reply
///    to a signature it rejects, so refusing at the probe keeps clients from
///    hanging). A valid signature for an authorized key gets partial success.
/// 2. only `keyboard-interactive` is offered, for the same user; the
///    translator runs the round through the delegate and reports how it ended.
///
/// A request for a different user name after step 1 starts over at step 1.
/// `none` is refused and not counted (as in sshd). The failure that reaches
/// `maxAuthTries` is answered by disconnecting, not with USERAUTH_FAILURE:
/// the client is waiting for that answer, so it sends nothing more and the
/// close is clean.
struct UserAuthenticationStateMachine: Sendable {
    /// What libssh says about a publickey request's signature
    /// (`SSH_PUBLICKEY_STATE_NONE`, `_VALID`, anything else).
    enum Signature: Sendable, Equatable {
        /// No signature: the client asks whether the key would do (a probe).
        case absent
        case valid
        case invalid
    }

    struct PublicKeyOffer: Sendable, Equatable {
        var key: SSHPublicKey
        /// `SHA256:...`, computed by the translator, for audit reasons.
        var fingerprint: String
        var signature: Signature
    }

    enum Request: Sendable, Equatable {
        case none
        /// nil when the key in the request could not be read.
        case publicKey(PublicKeyOffer?)
        /// `isResponse`: an INFO_RESPONSE rather than a request to start a round.
        case keyboardInteractive(isResponse: Bool)
        /// password, hostbased, gssapi-with-mic or unknown, by its audit name.
        case other(method: String)
    }

    /// How a keyboard-interactive round the machine asked for ended.
    enum KeyboardInteractiveOutcome: Sendable, Equatable {
        case succeeded
        /// The round finished and the stack said no; `reason` never holds an answer.
        case refused(reason: String)
        /// The client sent another request in the middle of the round.
        case abandoned
        /// The client disconnected or the login grace time ran out.
        case gone
    }

    enum Event: Sendable, Equatable {
        /// A USERAUTH_REQUEST (or INFO_RESPONSE) from the client.
        case request(user: String, Request)
        /// The answer to `.checkAuthorization`.
        case authorizationDecided(Bool)
        /// The answer to `.runKeyboardInteractive`.
        case keyboardInteractiveEnded(KeyboardInteractiveOutcome)
    }

    enum Method: Sendable, Equatable {
        case publicKey, keyboardInteractive
    }

    /// One outcome for the audit log (`SSHAuthDelegate.authAttempt`).
    struct Attempt: Sendable, Equatable {
        var user: String
        var method: String
        var success: Bool
        var partial: Bool
        var reason: String
    }

    enum Action: Sendable, Equatable {
        /// Offer only this method from now on (`ssh_set_auth_methods`).
        case offer(Method)
        /// Ask the delegate whether `key` is one of `user`'s; answer with `.authorizationDecided`.
        case checkAuthorization(user: String, key: SSHPublicKey)
        /// Run one keyboard-interactive round; answer with `.keyboardInteractiveEnded`.
        case runKeyboardInteractive(user: String)
        /// SSH_MSG_USERAUTH_FAILURE to the request being handled.
        case replyFailure
        /// SSH_MSG_USERAUTH_PK_OK.
        case replyPublicKeyOK
        /// SSH_MSG_USERAUTH_SUCCESS with partial success set (a failure that lists the next method).
        case replyPartialSuccess
        /// SSH_MSG_USERAUTH_SUCCESS: `user` is authenticated.
        case replySuccess(user: String)
        case audit(Attempt)
        /// Too many failures: SSH_MSG_DISCONNECT, then end authentication.
        case disconnect(user: String, failures: Int)
        /// The client is gone; end authentication.
        case connectionLost
    }

    /// An event that cannot happen in the current state: a bug in the
    /// translator, never something a client can cause.
    struct Misuse: Error, Equatable {
        let event: Event
        let state: String
    }

    private enum State: Sendable {
        case awaitingPublicKey
        case checkingKey(user: String, offer: PublicKeyOffer)
        /// `user` passed publickey; keyboard-interactive is next.
        case awaitingKeyboardInteractive(user: String)
        case runningKeyboardInteractive(user: String)
        case authenticated(user: String)
        case failed
    }

    private var state = State.awaitingPublicKey
    private(set) var failures = 0
    let maxAuthTries: Int
    let algorithms: SSHAlgorithms

    init(maxAuthTries: Int, algorithms: SSHAlgorithms) {
        self.maxAuthTries = maxAuthTries
        self.algorithms = algorithms
    }

    /// The user name once authentication succeeded.
    var authenticatedUser: String? {
        if case .authenticated(let user) = state { return user }
        return nil
    }

    /// True once nothing more can happen: success, too many failures, or the client left.
    var isFinished: Bool {
        switch state {
        case .authenticated, .failed: return true
        case .awaitingPublicKey, .checkingKey, .awaitingKeyboardInteractive, .runningKeyboardInteractive: return false
        }
    }

    mutating func handle(_ event: Event) throws(Misuse) -> [Action] {
        switch (state, event) {
        case (.awaitingPublicKey, .request(let user, let request)):
            return received(request, from: user, keyUser: nil)

        case (.awaitingKeyboardInteractive(let keyUser), .request(let user, let request)):
            guard user == keyUser else {
                state = .awaitingPublicKey
                return [.offer(.publicKey)] + received(request, from: user, keyUser: nil)
            }
            return received(request, from: user, keyUser: keyUser)

        case (.checkingKey(let user, let offer), .authorizationDecided(let authorized)):
            return decided(authorized, user: user, offer: offer)

        case (.runningKeyboardInteractive(let user), .keyboardInteractiveEnded(let outcome)):
            return ended(outcome, user: user)

        case (.awaitingPublicKey, .authorizationDecided), (.awaitingPublicKey, .keyboardInteractiveEnded),
             (.checkingKey, .request), (.checkingKey, .keyboardInteractiveEnded),
             (.awaitingKeyboardInteractive, .authorizationDecided),
             (.awaitingKeyboardInteractive, .keyboardInteractiveEnded),
             (.runningKeyboardInteractive, .request), (.runningKeyboardInteractive, .authorizationDecided),
             (.authenticated, _), (.failed, _):
            throw Misuse(event: event, state: String(describing: state))
        }
    }

    /// A client request while no delegate call is outstanding. `keyUser`: who
    /// passed publickey on this connection (always the requesting user, or nil).
    private mutating func received(_ request: Request, from user: String, keyUser: String?) -> [Action] {
        switch request {
        case .none:
            return fail(user, "none", "method none is not allowed", counted: false)
        case .publicKey(nil):
            return fail(user, "publickey", "unreadable public key")
        case .publicKey(let offer?):
            if keyUser != nil {
                return fail(user, "publickey", "publickey already done; keyboard-interactive required")
            }
            guard algorithms.accepts(clientKeyType: offer.key.type) else {
                return fail(user, "publickey", "key type \(offer.key.type) not accepted (\(offer.fingerprint))")
            }
            state = .checkingKey(user: user, offer: offer)
            return [.checkAuthorization(user: user, key: offer.key)]
        case .keyboardInteractive(isResponse: true):
            return fail(user, "keyboard-interactive", "unexpected response")
        case .keyboardInteractive(isResponse: false):
            guard keyUser == user else { return fail(user, "keyboard-interactive", "publickey required first") }
            state = .runningKeyboardInteractive(user: user)
            return [.runKeyboardInteractive(user: user)]
        case .other(let method):
            return fail(user, method, "method \(method) is not allowed")
        }
    }

    private mutating func decided(_ authorized: Bool, user: String, offer: PublicKeyOffer) -> [Action] {
        state = .awaitingPublicKey
        let key = "\(offer.key.type) \(offer.fingerprint)"
        switch (offer.signature, authorized) {
        case (.absent, true):
            return [.replyPublicKeyOK]
        case (.valid, true):
            state = .awaitingKeyboardInteractive(user: user)
            return [.offer(.keyboardInteractive), .replyPartialSuccess,
                    .audit(Attempt(user: user, method: "publickey", success: true, partial: true,
                                   reason: "key accepted (\(key)); keyboard-interactive required"))]
        case (.absent, false), (.valid, false):
            return fail(user, "publickey", "key not authorized (\(key))")
        case (.invalid, _):
            return fail(user, "publickey", "invalid signature (\(key))")
        }
    }

    private mutating func ended(_ outcome: KeyboardInteractiveOutcome, user: String) -> [Action] {
        switch outcome {
        case .succeeded:
            state = .authenticated(user: user)
            return [.replySuccess(user: user),
                    .audit(Attempt(user: user, method: "keyboard-interactive", success: true, partial: false,
                                   reason: "authenticated"))]
        case .refused(let reason):
            state = .awaitingKeyboardInteractive(user: user)
            return fail(user, "keyboard-interactive", reason)
        case .abandoned:
            // The request that interrupted the round comes next and gets the reply.
            state = .awaitingKeyboardInteractive(user: user)
            return fail(user, "keyboard-interactive", "client abandoned the round", reply: false)
        case .gone:
            state = .failed
            return fail(user, "keyboard-interactive", "client disconnected or timed out", counted: false, reply: false)
                + [.connectionLost]
        }
    }

    /// Records a refusal; a counted one that reaches `maxAuthTries` ends in
    /// a disconnect instead of a reply.
    private mutating func fail(_ user: String, _ method: String, _ reason: String,
                               counted: Bool = true, reply: Bool = true) -> [Action] {
        var actions: [Action] = [.audit(Attempt(user: user, method: method, success: false, partial: false,
                                                reason: reason))]
        if counted {
            failures += 1
            if failures >= maxAuthTries {
                state = .failed
                actions.append(.disconnect(user: user, failures: failures))
                return actions
            }
        }
        if reply { actions.append(.replyFailure) }
        return actions
    }
}
