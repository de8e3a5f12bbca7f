import Foundation
import GatehouseCore
import PAMAuth

/// The second factor for one user, decided by the monitor: the lockout
/// first, then the PAM stack, whose conversation reaches the client through
/// `conversation`.
enum SecondFactor {
    /// Runs the PAM stack for the user through the conversation; throws PAM's error.
    typealias Check = @Sendable (_ service: String, _ user: UserName, _ conversation: PAMConversation) throws -> Void

    /// The real one: one PAM transaction (start, authenticate, account management, end).
    static let pam: Check = { service, user, conversation in
        let transaction = try PAMTransaction(service: service, user: user.rawValue, conversation: conversation)
        defer { transaction.end() }
        try transaction.authenticate()
        try transaction.accountManagement()
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

    static func check(_ user: UserName, service: String, lockouts: UserLockouts?, clock: Clock,
                      conversation: PAMConversation, pam: Check) -> Outcome {
        if let lockouts, lockouts.isLocked(user, now: clock.now()) {
            // Still counted, so an ongoing attack keeps the lock; PAM is not
            // asked, so no code is consumed or checked while locked.
            lockouts.recordFailure(user, now: clock.now())
            return Outcome(success: false, failure: "user locked out after repeated failures",
                           notice: "Too many failed attempts: this account is locked. Ask an operator to unlock it.",
                           lockedOut: false)
        }
        do {
            try pam(service, user, conversation)
            return Outcome(success: true, failure: nil, notice: nil, lockedOut: false)
        } catch {
            let lockedOut = lockouts?.recordFailure(user, now: clock.now()) ?? false
            return Outcome(success: false, failure: "\(error)", notice: nil, lockedOut: lockedOut)
        }
    }
}
