import CLibSSH
import Foundation

/// A client or host public key as OpenSSH writes it: key type plus base64 blob.
///
/// Two keys are the same key when type and blob match, which is exactly the
/// comparison sshd makes against `authorized_keys`; comments and options are
/// not part of the identity.
public struct SSHPublicKey: Hashable, Sendable, CustomStringConvertible {
    /// OpenSSH key type, e.g. `ecdsa-sha2-nistp256`, `ssh-ed25519`, `ssh-rsa`.
    public let type: String
    /// Base64 of the SSH wire-format public key blob.
    public let base64: String

    /// Parses one authorized_keys line: `[options] type base64 [comment]`.
    /// Returns nil for blank lines, comments, and blobs that do not decode or
    /// whose embedded type disagrees with the stated one.
    public init?(authorizedKeysLine: String) {
        let line = authorizedKeysLine.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !line.isEmpty, !line.hasPrefix("#") else { return nil }
        let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        // The key type is the first field that names a known family; anything
        // before it is options (which we do not interpret).
        guard let i = fields.firstIndex(where: SSHPublicKey.looksLikeKeyType), i + 1 < fields.count else {
            return nil
        }
        self.init(type: fields[i], base64: fields[i + 1])
    }

    /// Builds a key from its parts, checking that the blob's embedded type
    /// string matches `type`.
    public init?(type: String, base64: String) {
        guard let blob = Data(base64Encoded: base64), blob.count >= 4 else { return nil }
        let bytes = [UInt8](blob)
        let n = Int(bytes[0]) << 24 | Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3])
        guard n > 0, n <= 64, 4 + n <= bytes.count,
              String(decoding: bytes[4..<(4 + n)], as: UTF8.self) == type else { return nil }
        self.type = type
        self.base64 = base64
    }

    /// `type base64`, ready for authorized_keys or (prefixed with a host
    /// pattern) known_hosts.
    public var openSSHLine: String { "\(type) \(base64)" }

    public var description: String { openSSHLine }

    /// SHA-256 fingerprint in OpenSSH's `SHA256:...` form (unpadded base64),
    /// for logs: it identifies the key without printing the whole blob.
    public var fingerprintSHA256: String {
        SSHPublicKey.libsshFingerprint(type: type, base64: base64) ?? "SHA256:?"
    }

    /// `ssh_pki_import_pubkey_base64` + `ssh_get_publickey_hash` +
    /// `ssh_get_fingerprint_hash`.
    static func libsshFingerprint(type: String, base64: String) -> String? {
        guard let key = SSHKey.importPublicKey(type: type, base64: base64) else { return nil }
        var hash: UnsafeMutablePointer<UInt8>?
        var len = 0
        guard key.withHandle({ ssh_get_publickey_hash($0, SSH_PUBLICKEY_HASH_SHA256, &hash, &len) }) == 0,
              let digest = hash else {
            return nil
        }
        defer { ssh_clean_pubkey_hash(&hash) }
        guard let text = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, digest, len) else { return nil }
        defer { ssh_string_free_char(text) }
        return String(cString: text)
    }

    /// Exports a libssh key's public half (`ssh_pki_export_pubkey_base64`,
    /// `ssh_key_type_to_char`). `key` is borrowed: an `SSHKey`'s handle or
    /// the key an auth message owns.
    init?(libsshKey key: ssh_key) {
        var b64: UnsafeMutablePointer<CChar>?
        guard ssh_pki_export_pubkey_base64(key, &b64) == SSH_OK, let b64 else { return nil }
        defer { ssh_string_free_char(b64) }
        guard let typeName = ssh_key_type_to_char(ssh_key_type(key)) else { return nil }
        self.init(type: String(cString: typeName), base64: String(cString: b64))
    }

    private static func looksLikeKeyType(_ s: String) -> Bool {
        s.hasPrefix("ssh-") || s.hasPrefix("ecdsa-sha2-") || s.hasPrefix("sk-")
    }
}
