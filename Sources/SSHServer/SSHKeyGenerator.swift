import CLibSSH
import Foundation

/// Creates key pairs: the listener's host key on first start, and client keys
/// for tests and the demo.
public enum SSHKeyGenerator {
    /// Generates a key pair (`ssh_pki_generate`), writes the private key in
    /// OpenSSH's `openssh-key-v1` format (libssh exports ECDSA/RSA only as
    /// PKCS#8, which paramiko cannot read, so `OpenSSHPrivateKeyFormat`
    /// re-encodes it; OpenSSH `ssh -i`, paramiko, asyncssh and libssh read it) to
    /// `privateKeyPath` with mode 0600, atomically (temp file, fsync, rename,
    /// fsync of the directory), and returns the public key. The parent
    /// directory is created with mode 0700 if missing. An existing file is
    /// replaced.
    public static func generate(type: SSHKeyType, privateKeyPath: String) throws -> SSHPublicKey {
        let key = try makeKey(type)
        defer { ssh_key_free(key) }
        guard let pub = SSHPublicKey(libsshKey: key) else {
            throw SSHError(.library, operation: "ssh_pki_export_pubkey_base64", detail: "cannot export public key")
        }
        var pem: UnsafeMutablePointer<CChar>?
        guard ssh_pki_export_privkey_base64(key, nil, nil, nil, &pem) == SSH_OK, let pem else {
            throw SSHError(.library, operation: "ssh_pki_export_privkey_base64", detail: "cannot export private key")
        }
        let exported = String(cString: pem)
        memset(pem, 0, strlen(pem))
        ssh_string_free_char(pem)
        let text: String
        do {
            text = try OpenSSHPrivateKeyFormat.encode(libsshPEM: exported, publicKey: pub)
        } catch {
            throw SSHError(.library, operation: "openssh-key-v1 encode",
                           detail: "cannot re-encode the \(type.rawValue) private key")
        }
        var bytes = Array(text.utf8)
        if bytes.last != 0x0A { bytes.append(0x0A) }
        defer { for i in bytes.indices { bytes[i] = 0 } }
        try writeAtomically(bytes, to: privateKeyPath)
        return pub
    }

    static func makeKey(_ type: SSHKeyType) throws -> ssh_key {
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
        return key
    }

    /// Creates `dir` (and missing parents) with mode 0700.
    static func makeDirectory(_ dir: String) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) {
            guard isDir.boolValue else {
                throw SSHError(.io, operation: "mkdir", detail: "\(dir) exists and is not a directory")
            }
            return
        }
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw SSHError(.io, operation: "mkdir", detail: "\(dir): \(error.localizedDescription)")
        }
    }

    /// temp file (O_EXCL, 0600) → write → fsync → rename → fsync(dir), so a
    /// crash leaves either the old file or the complete new one, never a torn
    /// or world-readable key.
    static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent.isEmpty
            ? "." : (path as NSString).deletingLastPathComponent
        try makeDirectory(dir)
        let tmp = "\(path).tmp.\(getpid()).\(UInt32.random(in: 0 ... .max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw posixError("open", tmp) }
        var ok = false
        defer {
            if !ok { unlink(tmp) }
        }
        do {
            defer { close(fd) }
            guard fchmod(fd, 0o600) == 0 else { throw posixError("fchmod", tmp) }
            var off = 0
            while off < bytes.count {
                let n = bytes[off...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw posixError("write", tmp)
                }
                off += n
            }
            guard fsync(fd) == 0 else { throw posixError("fsync", tmp) }
        }
        guard rename(tmp, path) == 0 else { throw posixError("rename", path) }
        ok = true
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }

    static func posixError(_ op: String, _ path: String) -> SSHError {
        SSHError(.io, operation: op, detail: "\(path): \(String(cString: strerror(errno)))")
    }
}
