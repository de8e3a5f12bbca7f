import Crypto
import Foundation
import GatehouseCore

/// The one-time elevation secret: 160 bits from the system CSPRNG
/// (`SystemRandomNumberGenerator`, i.e. `getrandom(2)` on Linux), written as
/// 32 RFC 4648 base32 characters in groups of four for reading aloud.
///
/// Deliberately not `CustomStringConvertible`/`Codable`: interpolating it into
/// a log or an audit event is a compile error waiting to be noticed, and the
/// only way to the text is the explicit `revealedText`.
public struct OneTimeSecret: Sendable {
    let bytes: [UInt8]

    static let byteCount = 20

    init(bytes: [UInt8]) { self.bytes = bytes }

    public static func generate() -> OneTimeSecret {
        var rng = SystemRandomNumberGenerator()
        return OneTimeSecret(bytes: (0..<byteCount).map { _ in UInt8.random(in: .min ... .max, using: &rng) })
    }

    /// The text shown to the requester, once: `ABCD-EFGH-…` (8 groups of 4).
    public var revealedText: String {
        let chars = Array(Base32.encode(bytes).utf8)
        return stride(from: 0, to: chars.count, by: 4).map {
            String(decoding: chars[$0..<min($0 + 4, chars.count)], as: UTF8.self)
        }.joined(separator: "-")
    }

    /// Parses what a user typed: case, dashes and spaces are forgiven.
    public init?(typed: [UInt8]) {
        let characters = typed.filter { !Self.isSeparator($0) }
        guard characters.count == Self.typedLength, let decoded = Base32.decode(characters) else { return nil }
        bytes = decoded
    }

    /// Characters in the typed form, without separators.
    static let typedLength = byteCount * 8 / 5

    static func isSeparator(_ c: UInt8) -> Bool { c == UInt8(ascii: "-") || c == UInt8(ascii: " ") }

    /// Whether `typed` (as read at the hidden prompt; case, dashes and spaces
    /// forgiven) is the secret with this salted hash. It is decoded into
    /// wiped storage and hashed from there: no array or string holds it.
    static func matches(typed: borrowing SecretBytes, salt: [UInt8], hash expected: [UInt8]) -> Bool {
        var decoded = SecretBytes(capacity: byteCount)
        let wellFormed = typed.withUnsafeBytes { raw in
            let characters = raw.lazy.filter { !isSeparator($0) }
            return characters.count == typedLength && Base32.decode(characters, into: { decoded.append($0) })
        }
        guard wellFormed, decoded.count == byteCount else { return false }
        return decoded.withUnsafeBytes { constantTimeEquals(saltedHash(salt: salt, secret: $0), expected) }
    }

    /// A fresh random 16-byte salt.
    static func makeSalt() -> [UInt8] {
        var rng = SystemRandomNumberGenerator()
        return (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &rng) }
    }

    /// SHA-256(salt ‖ secret). A fast hash is enough here: the secret has 160
    /// random bits, so there is nothing for a slow password hash to protect.
    /// The salt keeps equal secrets (there are none in practice) from showing.
    func hash(salt: [UInt8]) -> [UInt8] {
        bytes.withUnsafeBytes { Self.saltedHash(salt: salt, secret: $0) }
    }

    static func saltedHash(salt: [UInt8], secret: UnsafeRawBufferPointer) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: salt)
        hasher.update(bufferPointer: secret)
        return Array(hasher.finalize())
    }

    /// Constant-time comparison of two hashes.
    static func constantTimeEquals(_ actual: [UInt8], _ expected: [UInt8]) -> Bool {
        guard actual.count == expected.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<actual.count { difference |= actual[i] ^ expected[i] }
        return difference == 0
    }
}
