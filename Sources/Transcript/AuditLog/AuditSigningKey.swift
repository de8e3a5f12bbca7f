import Crypto
import Foundation
import GatehouseCore

/// The Ed25519 key that signs audit checkpoints. It lives in the state
/// directory (`audit-signing.key`, mode 0600, created on first start); its
/// public half is written beside it (`audit-signing.pub`) for reviewers, who
/// may also keep a copy elsewhere and pass it to `gatehouse audit verify`.
// unchecked: swift-crypto 3.x does not mark Curve25519 keys Sendable; this
// one is immutable after init and signing does not mutate it.
public struct AuditSigningKey: @unchecked Sendable {
    public static let privateFileName = "audit-signing.key"
    public static let publicFileName = "audit-signing.pub"

    let privateKey: Curve25519.Signing.PrivateKey
    public var publicKey: Curve25519.Signing.PublicKey { privateKey.publicKey }
    /// A short, stable name for the key that checkpoints carry.
    public var keyID: String { Self.keyID(of: publicKey) }

    public init(privateKey: Curve25519.Signing.PrivateKey) { self.privateKey = privateKey }

    /// Loads the key from `directory`, creating it (0600, `O_EXCL`) if absent.
    public static func loadOrCreate(in directory: String) throws -> AuditSigningKey {
        let path = directory + "/" + privateFileName
        if FileManager.default.fileExists(atPath: path) {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw AuditLogError.badKey(path: path, reason: "exists but cannot be read")
            }
            guard let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)),
                  let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw) else {
                throw AuditLogError.badKey(path: path, reason: "not a base64 Ed25519 private key")
            }
            let signing = AuditSigningKey(privateKey: key)
            try? writePublic(signing.publicKey, directory: directory)
            return signing
        }
        let key = Curve25519.Signing.PrivateKey()
        do throws(Errno) {
            let file = try OwnedFileDescriptor(opening: path, flags: O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                                               permissions: 0o600)
            try file.writeAll(Array((key.rawRepresentation.base64EncodedString() + "\n").utf8))
            try file.synchronize()
            try file.close()
        } catch {
            throw AuditLogError.io(path: path, errno: error.rawValue)
        }
        try writePublic(key.publicKey, directory: directory)
        return AuditSigningKey(privateKey: key)
    }

    static func writePublic(_ key: Curve25519.Signing.PublicKey, directory: String) throws {
        let path = directory + "/" + publicFileName
        let text = key.rawRepresentation.base64EncodedString() + "\n"
        if (try? String(contentsOfFile: path, encoding: .utf8)) == text { return }
        try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        chmod(path, 0o644)
    }

    /// Reads a public key file written by `loadOrCreate` (base64 raw key).
    public static func readPublicKey(path: String) throws -> Curve25519.Signing.PublicKey {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw AuditLogError.badKey(path: path, reason: "cannot be read")
        }
        guard let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)),
              let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else {
            throw AuditLogError.badKey(path: path, reason: "not a base64 Ed25519 public key")
        }
        return key
    }

    public static func keyID(of key: Curve25519.Signing.PublicKey) -> String {
        SHA256.hash(data: key.rawRepresentation).prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    /// What a checkpoint signs: the sequence number and hash of the last
    /// event it covers. Fixed text, so other tools can check it too.
    public static func checkpointMessage(seq: Int, hash: String) -> Data {
        Data("gatehouse-audit-checkpoint-v1\n\(seq)\n\(hash)\n".utf8)
    }

    func sign(seq: Int, hash: String) throws -> String {
        try privateKey.signature(for: Self.checkpointMessage(seq: seq, hash: hash)).base64EncodedString()
    }
}
