import CLibSSH
import Foundation
import GatehouseCore

/// The one owner of a libssh `ssh_key`: `ssh_key_free` runs exactly once, in
/// `deinit`, unless `release()` hands the key to libssh.
///
/// `~Copyable`, so no second copy can free it again, and a throwing caller
/// frees it just by leaving scope (modelled on GRDB's `Statement` and
/// swift-system's `FileDescriptor`). Keys that libssh lends out (the key inside
/// an auth message) are not wrapped: they belong to their message.
struct SSHKey: ~Copyable {
    private let handle: ssh_key

    private init(adopting handle: ssh_key) { self.handle = handle }

    deinit { ssh_key_free(handle) }

    /// `ssh_pki_generate`.
    static func generate(_ type: SSHKeyType) throws -> SSHKey {
        let (kt, bits): (ssh_keytypes_e, Int32)
        switch type {
        case .ecdsaP256: (kt, bits) = (SSH_KEYTYPE_ECDSA_P256, 256)
        case .ecdsaP384: (kt, bits) = (SSH_KEYTYPE_ECDSA_P384, 384)
        case .rsa3072: (kt, bits) = (SSH_KEYTYPE_RSA, 3072)
        case .ed25519: (kt, bits) = (SSH_KEYTYPE_ED25519, 0)
        }
        var key: ssh_key?
        guard ssh_pki_generate(kt, bits, &key) == SSH_OK, let key else {
            throw SSHError(.library, operation: "ssh_pki_generate", detail: "cannot generate \(type.rawValue) key")
        }
        return SSHKey(adopting: key)
    }

    /// `ssh_pki_import_privkey_file`, unencrypted keys only.
    static func importPrivateKeyFile(_ path: String) throws -> SSHKey {
        var key: ssh_key?
        guard ssh_pki_import_privkey_file(path, nil, nil, nil, &key) == SSH_OK, let key else {
            throw SSHError(.hostKey, operation: "ssh_pki_import_privkey_file", detail: "\(path): cannot read private key")
        }
        return SSHKey(adopting: key)
    }

    /// `ssh_pki_import_privkey_base64` of the key's text (unencrypted),
    /// read straight from the secret's buffer, which must end in a NUL.
    static func importPrivateKey(text: borrowing SecretBytes) throws -> SSHKey {
        var key: ssh_key?
        let rc = text.withUnsafeBytes { bytes -> Int32 in
            guard bytes.last == 0, let base = bytes.baseAddress?.assumingMemoryBound(to: CChar.self) else { return SSH_ERROR }
            return ssh_pki_import_privkey_base64(base, nil, nil, nil, &key)
        }
        guard rc == SSH_OK, let key else {
            throw SSHError(.hostKey, operation: "ssh_pki_import_privkey_base64", detail: "cannot read the host key passed")
        }
        return SSHKey(adopting: key)
    }

    /// `ssh_pki_import_pubkey_base64`; nil for a blob libssh cannot read.
    static func importPublicKey(type: String, base64: String) -> SSHKey? {
        var key: ssh_key?
        guard ssh_pki_import_pubkey_base64(base64, ssh_key_type_from_name(type), &key) == SSH_OK, let key else {
            return nil
        }
        return SSHKey(adopting: key)
    }

    /// The public half (`ssh_pki_export_pubkey_base64`).
    var publicKey: SSHPublicKey? { SSHPublicKey(libsshKey: handle) }

    /// `ssh_pki_export_privkey_base64` without a passphrase: the PEM text,
    /// moved into a `SecretBytes` and wiped from libssh's returned buffer.
    /// libssh's own intermediate buffers (its BIO / OpenSSL copies) are
    /// beyond our reach and are not claimed to be wiped.
    func exportPrivateKeyPEM() throws -> SecretBytes {
        var pem: UnsafeMutablePointer<CChar>?
        guard ssh_pki_export_privkey_base64(handle, nil, nil, nil, &pem) == SSH_OK, let pem else {
            throw SSHError(.library, operation: "ssh_pki_export_privkey_base64", detail: "cannot export private key")
        }
        defer { ssh_string_free_char(pem) }
        return SecretBytes(takingFrom: UnsafeMutableRawBufferPointer(start: pem, count: strlen(pem)))
    }

    /// Lends the handle to a libssh call that does not keep it.
    func withHandle<R, E: Error>(_ body: (ssh_key) throws(E) -> R) throws(E) -> R { try body(handle) }

    /// Gives the handle up without freeing it, for a libssh call that takes
    /// ownership (`SSH_BIND_OPTIONS_IMPORT_KEY`).
    consuming func release() -> ssh_key {
        let h = handle
        discard self
        return h
    }
}
