import Foundation
import GatehouseCore
import PAMWorkers

/// The second factor for one user, decided by the monitor: the lockout
/// first, then the PAM stack, whose conversation reaches the client through
/// `conversation`.
enum SecondFactor {
    /// Runs the PAM stack for the user through the conversation; throws PAM's error.
    typealias Check = @Sendable (_ service: String, _ user: UserName, _ remoteHost: String,
                                 _ conversation: PAMConversation) throws -> Void

    /// The real one: one PAM transaction in a worker process of `pool`
    /// (start, authenticate, account management, end).
    static func pam(_ pool: PAMWorkerPool) -> Check {
        { service, user, remoteHost, conversation in
            try pool.authenticate(service: service, user: user.rawValue, remoteHost: remoteHost,
                                  conversation: conversation)
        }
    }

    struct Outcome: Equatable {
        let success: Bool
        /// PAM's own word on a failure (pam_strerror), never an answer.
        let failure: String?
        /// For the client: why nothing was asked (a lockout).
        let notice: String?
        /// This failure locked the user out (the monitor audits it).
        let lockedOut: Bool
    }

    static func check(_ user: UserName, service: String, remoteHost: String, lockouts: UserLockouts?, clock: Clock,
                      conversation: PAMConversation, pam: Check) -> Outcome {
        let lockState = lockouts?.state(user, now: clock.now()) ?? .open
        if lockState == .unavailable {
            // The shared store (a fleet's PostgreSQL) cannot say whether the
            // user is locked: refuse rather than let guesses go uncounted.
            return Outcome(success: false, failure: "lockout state unavailable (shared store unreachable)",
                           notice: "The gateway cannot reach its shared database; second factors are refused until it is back. Try again later.",
                           lockedOut: false)
        }
        if let lockouts, lockState == .locked {
            // Still counted, so an ongoing attack keeps the lock; PAM is not
            // asked, so no code is consumed or checked while locked.
            lockouts.recordFailure(user, now: clock.now())
            return Outcome(success: false, failure: "user locked out after repeated failures",
                           notice: "Too many failed attempts: this account is locked. Ask an operator to unlock it.",
                           lockedOut: false)
        }
        do {
            try pam(service, user, remoteHost, conversation)
            return Outcome(success: true, failure: nil, notice: nil, lockedOut: false)
        } catch {
            let lockedOut = lockouts?.recordFailure(user, now: clock.now()) ?? false
            return Outcome(success: false, failure: "\(error)", notice: nil, lockedOut: lockedOut)
        }
    }
}
