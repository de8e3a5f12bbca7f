import CLibSSH

/// Every failure in this module: which operation failed, why, and libssh's own
/// text where there is one.
///
/// `detail` is copied out of `ssh_get_error()` at once, because the next libssh
/// call on the same session overwrites it. It never contains a key, password
/// or keyboard-interactive answer: libssh does not put those in error text and
/// this module never adds them.
public struct SSHError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure, so the caller can choose an audit event and a
    /// client-facing message without parsing text.
    public enum Kind: String, Sendable {
        /// A libssh call returned `SSH_ERROR`.
        case library
        /// Bad `SSHServerConfig` (port, algorithm lists, host key type).
        case configuration
        /// The host key file is missing, unreadable, too permissive or invalid.
        case hostKey
        /// The peer went away (EOF, reset, disconnect message).
        case disconnected
        /// The login grace time ran out before authentication finished, or
        /// (after it) a write waited `ioTimeoutSeconds` for a client that
        /// does not read.
        case timeout
        /// Authentication ended without success (too many failures).
        case authenticationFailed
        /// `SSHListener.close()` was called.
        case closed
        /// A channel operation on a channel that is already closed.
        case channelClosed
        /// A file-system call failed (writing the host key).
        case io
        /// `accept` found the descriptor table full and had no reserve
        /// descriptor left to give up (see `SSHListener.accept(headroom:)`).
        case outOfDescriptors
    }

    public let kind: Kind
    /// The C function or step that failed, e.g. `"ssh_handle_key_exchange"`.
    public let operation: String
    /// `ssh_get_error()` text or our own explanation.
    public let detail: String

    public init(_ kind: Kind, operation: String, detail: String) {
        self.kind = kind
        self.operation = operation
        self.detail = detail
    }

    public var description: String { "\(operation): \(detail) [\(kind.rawValue)]" }
}

/// `ssh_get_error` for a session or bind, copied into a Swift string at once.
func lastError(_ handle: OpaquePointer?) -> String {
    guard let handle else { return "no handle" }
    guard let text = ssh_get_error(UnsafeMutableRawPointer(handle)) else { return "unknown libssh error" }
    let s = String(cString: text)
    return s.isEmpty ? "unknown libssh error" : s
}

/// The one place libssh return codes become Swift errors.
///
/// - `SSH_OK` (0): success, returns `true`.
/// - `SSH_AGAIN` (-2): "not yet", not an error; returns `false`.
/// - anything else (`SSH_ERROR`, -1): throws with `ssh_get_error()` copied out.
@discardableResult
func check(_ rc: Int32, _ operation: String, _ handle: OpaquePointer?,
           kind: SSHError.Kind = .library) throws -> Bool {
    switch rc {
    case SSH_OK: return true
    case SSH_AGAIN: return false
    default: throw SSHError(kind, operation: operation, detail: lastError(handle))
    }
}
