/// A failed PAM call: the Linux-PAM return code and its `pam_strerror` text.
///
/// The text comes from PAM itself, never from the conversation, so it carries
/// no answer the user typed and is safe for the audit log. Tell the client
/// only that authentication failed. It lives beside the worker protocol, not
/// in PAMAuth, because the daemon receives it from a worker without linking
/// libpam; the named codes are in PAMAuth (`PAMError+Codes.swift`).
public struct PAMError: Error, CustomStringConvertible, Equatable, Sendable {
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
}
