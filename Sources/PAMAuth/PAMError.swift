import CPAM

/// A failed PAM call: the Linux-PAM return code and its `pam_strerror` text.
///
/// The text comes from PAM itself, never from the conversation, so it carries
/// no answer the user typed and is safe for the audit log. Tell the client
/// only that authentication failed.
public struct PAMError: Error, CustomStringConvertible, Sendable {
    /// The raw PAM return code (`PAM_AUTH_ERR`, `PAM_ACCT_EXPIRED`, ...).
    public let code: Int32
    /// `pam_strerror(handle, code)`, copied out at once.
    public let message: String
    /// The PAM function that failed, e.g. `"pam_authenticate"`.
    public let operation: String

    public init(code: Int32, message: String, operation: String = "") {
        self.code = code
        self.message = message
        self.operation = operation
    }

    public var description: String {
        operation.isEmpty ? "PAM error \(code): \(message)" : "\(operation): \(message) (PAM code \(code))"
    }

    /// `PAM_AUTH_ERR`: the credentials were wrong.
    public static let authError = Int32(PAM_AUTH_ERR)
    /// `PAM_CONV_ERR`: the conversation failed (client gave up, timed out, disconnected).
    public static let conversationError = Int32(PAM_CONV_ERR)
    /// `PAM_MAXTRIES`: a module's retry limit was reached.
    public static let maxTries = Int32(PAM_MAXTRIES)
    /// `PAM_USER_UNKNOWN`: no such user for this stack.
    public static let userUnknown = Int32(PAM_USER_UNKNOWN)
    /// `PAM_ACCT_EXPIRED`: `pam_acct_mgmt` refused an expired account.
    public static let accountExpired = Int32(PAM_ACCT_EXPIRED)
    /// `PAM_NEW_AUTHTOK_REQD`: the account requires a password change (treated as a denial here).
    public static let newAuthTokenRequired = Int32(PAM_NEW_AUTHTOK_REQD)
}
