import CPAM
import PAMWorkers

/// The Linux-PAM return codes the project names, each from its `PAM_*` constant.
extension PAMError {
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
    /// `PAM_SYSTEM_ERR`: a failure that is not the user's (no stack, a transaction used after its end).
    public static let systemError = Int32(PAM_SYSTEM_ERR)
}
