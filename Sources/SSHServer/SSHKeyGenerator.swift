import Foundation
import GatehouseCore

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
        let key = try SSHKey.generate(type)
        guard let pub = key.publicKey else {
            throw SSHError(.library, operation: "ssh_pki_export_pubkey_base64", detail: "cannot export public key")
        }
        let pem = try key.exportPrivateKeyPEM()
        let text: SecretBytes
        do {
            text = try OpenSSHPrivateKeyFormat.encode(libsshPEM: pem, publicKey: pub)
        } catch {
            throw SSHError(.library, operation: "openssh-key-v1 encode",
                           detail: "cannot re-encode the \(type.rawValue) private key")
        }
        try writeAtomically(text, to: privateKeyPath)
        return pub
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

    /// temp file (O_EXCL, 0600) → write → fsync → close → rename → fsync(dir),
    /// so a crash leaves either the old file or the complete new one, never a
    /// torn or world-readable key. Writes straight from the secret's buffer
    /// (a final newline is added if the text lacks one), so no copy is made.
    static func writeAtomically(_ secret: borrowing SecretBytes, to path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent.isEmpty
            ? "." : (path as NSString).deletingLastPathComponent
        try makeDirectory(dir)
        let tmp = "\(path).tmp.\(getpid()).\(UInt32.random(in: 0 ... .max))"
        let file = try io("open", tmp) { () throws(Errno) in
            try OwnedFileDescriptor(opening: tmp, flags: O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                                    permissions: 0o600)
        }
        var ok = false
        defer {
            if !ok { unlink(tmp) }
        }
        // open's 0600 passes through the umask, which may take bits away
        // (0400 would stop the next regeneration); this makes it exactly 0600.
        try io("fchmod", tmp) { () throws(Errno) in try file.setPermissions(0o600) }
        let endsInNewline = secret.withUnsafeBytes { $0.last == 0x0A }
        try io("write", tmp) { () throws(Errno) in
            try secret.withUnsafeBytes { raw throws(Errno) in try file.writeAll(raw) }
            if !endsInNewline { try file.writeAll([0x0A]) }
        }
        try io("fsync", tmp) { () throws(Errno) in try file.synchronize() }
        do throws(Errno) {
            try file.close()    // consumed here, so not inside `io`
        } catch {
            throw ioError("close", tmp, error)
        }
        guard rename(tmp, path) == 0 else { throw posixError("rename", path) }
        ok = true
        // Makes the rename itself durable. The key is in place either way, so
        // a directory that cannot be opened or synced is not an error.
        do throws(Errno) {
            try OwnedFileDescriptor(opening: dir, flags: O_RDONLY | O_DIRECTORY | O_CLOEXEC).synchronize()
        } catch {}
    }

    /// Runs `body`, reporting its failure as an `SSHError` for `op` on `path`.
    private static func io<T: ~Copyable>(_ op: String, _ path: String, _ body: () throws(Errno) -> T) throws(SSHError) -> T {
        do {
            return try body()
        } catch {
            throw ioError(op, path, error)
        }
    }

    private static func ioError(_ op: String, _ path: String, _ error: Errno) -> SSHError {
        SSHError(.io, operation: op, detail: "\(path): \(error)")
    }

    static func posixError(_ op: String, _ path: String) -> SSHError {
        SSHError(.io, operation: op, detail: "\(path): \(String(cString: strerror(errno)))")
    }
}
