/// The outcome of an authorization check. Anything but `.allow` denies:
/// callers `switch` over it and there is no "unknown" case to fall through.
public enum Decision: Equatable, Sendable {
    /// Allowed by exactly one role, named here for the audit trail.
    case allow(role: String)
    /// Denied, with a short reason that is safe to show the client.
    case deny(reason: String)

    public var isAllowed: Bool {
        if case .allow = self { return true }
        return false
    }
}
