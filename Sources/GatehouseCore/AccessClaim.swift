import Foundation

/// One role held by a user, with where it applies and until when.
public struct RoleGrant: Hashable, Sendable, Codable {
    /// Why the user holds the role: baseline from the directory, or a redeemed Lockbox elevation.
    public enum Source: Hashable, Sendable, Codable {
        case baseline
        case elevation(requestID: Int64)
    }

    public let role: String
    /// The tenant the grant is limited to; `nil` for baseline (tenant-less, read-only) roles.
    public let scope: String?
    /// `nil` means no expiry (baseline roles only).
    public let expires: Date?
    public let source: Source

    public init(role: String, scope: String? = nil, expires: Date? = nil, source: Source = .baseline) {
        self.role = role
        self.scope = scope
        self.expires = expires
        self.source = source
    }

    /// A grant counts only strictly before its expiry.
    public func isActive(at now: Date) -> Bool {
        guard let expires else { return true }
        return now < expires
    }
}

/// What the gateway knows about the caller at one instant: who, in which
/// session, with which roles. It is computed per command, never cached, so an
/// expiry or revocation takes effect at the next command.
public struct AccessClaim: Sendable, Equatable {
    public let user: UserName
    public let session: SessionID
    public let issuedAt: Date
    public let grants: [RoleGrant]

    public init(user: UserName, session: SessionID, issuedAt: Date, grants: [RoleGrant]) {
        self.user = user
        self.session = session
        self.issuedAt = issuedAt
        self.grants = grants.filter { $0.isActive(at: issuedAt) }
    }
}
