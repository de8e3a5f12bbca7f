import Foundation

/// A gateway user name as it arrived in the SSH `USERAUTH_REQUEST`.
///
/// Names are restricted to a conservative ASCII alphabet so that a user name can
/// never smuggle control characters into logs, transcripts or a backend's argv.
public struct UserName: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    public let rawValue: String

    /// Accepts `[a-z_][a-z0-9._-]{0,31}` (the POSIX portable user-name shape, lower case).
    public init?(_ raw: String) {
        guard UserName.isValid(raw) else { return nil }
        rawValue = raw
    }

    public static func isValid(_ raw: String) -> Bool {
        let bytes = Array(raw.utf8)
        guard (1...32).contains(bytes.count) else { return false }
        for (i, b) in bytes.enumerated() {
            let lower = (b >= 0x61 && b <= 0x7a) || b == 0x5f
            let rest = (b >= 0x30 && b <= 0x39) || b == 0x2e || b == 0x2d
            if i == 0 ? !lower : !(lower || rest) { return false }
        }
        return true
    }

    public var description: String { rawValue }
    public static func < (a: UserName, b: UserName) -> Bool { a.rawValue < b.rawValue }

    public init(from decoder: Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        guard let name = UserName(raw) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "invalid user name"))
        }
        self = name
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}

/// Identifies one SSH connection from accept to close; it ties audit events,
/// transcripts and (later) Lockbox grants to a single session.
public struct SessionID: Hashable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// 96 random bits, hex: unguessable, so a session id in a log reveals nothing usable.
    public static func random() -> SessionID {
        var rng = SystemRandomNumberGenerator()
        let words = (0..<3).map { _ in String(format: "%08x", UInt32.random(in: .min ... .max, using: &rng)) }
        return SessionID(rawValue: words.joined())
    }

    public var description: String { rawValue }
}
