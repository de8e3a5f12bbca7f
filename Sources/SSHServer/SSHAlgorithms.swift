import Foundation

/// The algorithm lists a listener offers, as comma-separated strings exactly as
/// `ssh_bind_options_set` takes them (`SSH_BIND_OPTIONS_KEY_EXCHANGE`,
/// `CIPHERS_C_S`/`S_C`, `HMAC_C_S`/`S_C`, `HOSTKEY_ALGORITHMS`,
/// `PUBKEY_ACCEPTED_KEY_TYPES`). Order is preference order.
public struct SSHAlgorithms: Sendable, Equatable {
    public var keyExchange: String
    public var ciphers: String
    public var macs: String
    public var hostKeyAlgorithms: String
    public var publicKeyAcceptedTypes: String

    public init(keyExchange: String, ciphers: String, macs: String,
                hostKeyAlgorithms: String, publicKeyAcceptedTypes: String) {
        self.keyExchange = keyExchange
        self.ciphers = ciphers
        self.macs = macs
        self.hostKeyAlgorithms = hostKeyAlgorithms
        self.publicKeyAcceptedTypes = publicKeyAcceptedTypes
    }

    /// FIPS-approved only, as measured against libssh 0.10.6 and OpenSSH 9.2
    /// (see NOTES-libssh-pam.md): no curve25519, chacha20, umac or ed25519.
    /// Needs an ECDSA or RSA (>= 3072) host key.
    public static let fips = SSHAlgorithms(
        keyExchange: "ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,"
            + "diffie-hellman-group14-sha256,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512",
        ciphers: "aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr",
        macs: "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha2-256,hmac-sha2-512",
        hostKeyAlgorithms: "ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256",
        publicKeyAcceptedTypes: "ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256")

    /// Modern defaults: the FIPS set plus curve25519, chacha20-poly1305 and
    /// ed25519, preferred first as libssh and OpenSSH do. No SHA-1, no CBC.
    public static let modern = SSHAlgorithms(
        keyExchange: "curve25519-sha256,curve25519-sha256@libssh.org,"
            + "ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,"
            + "diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group14-sha256",
        ciphers: "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,"
            + "aes256-ctr,aes192-ctr,aes128-ctr",
        macs: "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha2-256,hmac-sha2-512",
        hostKeyAlgorithms: "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,"
            + "rsa-sha2-512,rsa-sha2-256",
        publicKeyAcceptedTypes: "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,"
            + "rsa-sha2-512,rsa-sha2-256")

    static func list(_ s: String) -> [String] {
        // Foundation's `trimmingCharacters(in: .whitespaces)` and a split by
        // Character cost about 130,000 instructions per call, and `accepts`
        // runs twice a login. Algorithm names are ASCII: bytes are enough,
        // with the same result (ASCII whitespace in `.whitespaces` is space
        // and tab). Anything else takes the general path.
        guard s.utf8.allSatisfy({ $0 < 0x80 }) else {
            return s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        func isSpace(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        return s.utf8.split(separator: UInt8(ascii: ",")).compactMap { piece in
            var start = piece.startIndex
            var end = piece.endIndex
            while start < end, isSpace(piece[start]) { start = piece.index(after: start) }
            while end > start, isSpace(piece[piece.index(before: end)]) { end = piece.index(before: end) }
            return start < end ? String(Substring(piece[start..<end])) : nil
        }
    }

    /// Whether a client key of OpenSSH type `keyType` (as in authorized_keys)
    /// can sign with one of `publicKeyAcceptedTypes`. Checked at the probe
    /// stage because libssh 0.10.6 sends no reply to a signature whose
    /// algorithm it rejects, which leaves the client hanging.
    func accepts(clientKeyType keyType: String) -> Bool {
        let accepted = SSHAlgorithms.list(publicKeyAcceptedTypes)
        if keyType == "ssh-rsa" {
            return accepted.contains("rsa-sha2-256") || accepted.contains("rsa-sha2-512")
                || accepted.contains("ssh-rsa")
        }
        return accepted.contains(keyType)
    }
}

