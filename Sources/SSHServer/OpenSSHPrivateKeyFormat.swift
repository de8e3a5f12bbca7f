import Foundation

/// Re-encodes libssh's private key export into the `openssh-key-v1` format.
///
/// Why: libssh 0.10 (OpenSSL backend) exports ECDSA and RSA keys only as
/// PKCS#8 (`BEGIN PRIVATE KEY`), which paramiko cannot read; it has no public
/// API for the OpenSSH container. OpenSSH, asyncssh, paramiko and libssh
/// itself all read `openssh-key-v1`. ed25519 keys already come out in that
/// format and pass through unchanged. Unencrypted only (cipher and KDF "none"),
/// like sshd's own host keys.
enum OpenSSHPrivateKeyFormat {
    struct Failure: Error {}

    static func encode(libsshPEM pem: String, publicKey: SSHPublicKey) throws -> String {
        if pem.contains("BEGIN OPENSSH PRIVATE KEY") { return pem }
        guard pem.contains("BEGIN PRIVATE KEY") else { throw Failure() }
        let body = pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        guard let der = Data(base64Encoded: body).map([UInt8].init),
              let pubBlob = Data(base64Encoded: publicKey.base64).map([UInt8].init) else { throw Failure() }
        // PrivateKeyInfo ::= SEQUENCE { version, AlgorithmIdentifier, privateKey OCTET STRING }
        var outer = DER(der)
        var top = try outer.sequence()
        _ = try top.next(tag: 0x02)
        _ = try top.next(tag: 0x30)
        let inner = try top.next(tag: 0x04)
        var priv = SSHWire()
        switch publicKey.type {
        case "ssh-rsa":
            // RSAPrivateKey ::= SEQUENCE { version, n, e, d, p, q, dp, dq, qinv }
            var innerDER = DER(inner)
            var seq = try innerDER.sequence()
            _ = try seq.next(tag: 0x02)
            let n = try seq.next(tag: 0x02), e = try seq.next(tag: 0x02), d = try seq.next(tag: 0x02)
            let p = try seq.next(tag: 0x02), q = try seq.next(tag: 0x02)
            _ = try seq.next(tag: 0x02); _ = try seq.next(tag: 0x02)
            let qinv = try seq.next(tag: 0x02)
            priv.string("ssh-rsa")
            for v in [n, e, d, qinv, p, q] { priv.mpint(v) }
        case let t where t.hasPrefix("ecdsa-sha2-"):
            // ECPrivateKey ::= SEQUENCE { version, privateKey OCTET STRING, [0] params, [1] publicKey }
            var innerDER = DER(inner)
            var seq = try innerDER.sequence()
            _ = try seq.next(tag: 0x02)
            let d = try seq.next(tag: 0x04)
            // The public blob is string(type) string(curve) string(Q).
            var r = SSHWireReader(pubBlob)
            let type = try r.string(), curve = try r.string(), point = try r.string()
            priv.string(type); priv.string(curve); priv.string(point)
            priv.mpint(d)
        default:
            throw Failure()
        }
        // A non-empty comment: paramiko's unpadding misreads a section that
        // needs no padding and ends in an empty comment (it strips it all).
        priv.string("gatehouse")
        var section = SSHWire()
        let check = UInt32.random(in: 0 ... .max)
        section.u32(check); section.u32(check)
        section.bytes += priv.bytes
        var pad: UInt8 = 1
        while section.bytes.count % 8 != 0 { section.bytes.append(pad); pad += 1 }

        var out = SSHWire()
        out.bytes += Array("openssh-key-v1".utf8) + [0]
        out.string("none"); out.string("none"); out.string([UInt8]())
        out.u32(1)
        out.string(pubBlob)
        out.string(section.bytes)
        let b64 = Data(out.bytes).base64EncodedString()
        var lines: [Substring] = []
        var i = b64.startIndex
        while i < b64.endIndex {
            let j = b64.index(i, offsetBy: 70, limitedBy: b64.endIndex) ?? b64.endIndex
            lines.append(b64[i..<j]); i = j
        }
        // Wipe the private material we assembled.
        for k in section.bytes.indices { section.bytes[k] = 0 }
        return "-----BEGIN OPENSSH PRIVATE KEY-----\n" + lines.joined(separator: "\n")
            + "\n-----END OPENSSH PRIVATE KEY-----\n"
    }

    /// Minimal DER reader: definite lengths only, which is all PKCS#8 uses.
    struct DER {
        var bytes: [UInt8]
        var pos = 0
        init(_ b: [UInt8]) { bytes = b }

        mutating func sequence() throws -> DER { DER(try next(tag: 0x30)) }

        mutating func next(tag: UInt8) throws -> [UInt8] {
            guard pos + 2 <= bytes.count, bytes[pos] == tag else { throw Failure() }
            pos += 1
            var len = Int(bytes[pos]); pos += 1
            if len & 0x80 != 0 {
                let n = len & 0x7f
                guard n >= 1, n <= 4, pos + n <= bytes.count else { throw Failure() }
                len = 0
                for _ in 0..<n { len = len << 8 | Int(bytes[pos]); pos += 1 }
            }
            guard pos + len <= bytes.count else { throw Failure() }
            defer { pos += len }
            return Array(bytes[pos..<(pos + len)])
        }
    }

    struct SSHWire {
        var bytes: [UInt8] = []
        mutating func u32(_ v: UInt32) { bytes += [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
        mutating func string(_ s: String) { string(Array(s.utf8)) }
        mutating func string(_ b: [UInt8]) { u32(UInt32(b.count)); bytes += b }
        /// RFC 4251 mpint from unsigned big-endian bytes (DER INTEGERs are
        /// already minimal two's complement, which this preserves).
        mutating func mpint(_ raw: [UInt8]) {
            var v = Array(raw.drop(while: { $0 == 0 }))
            if let f = v.first, f & 0x80 != 0 { v.insert(0, at: 0) }
            string(v)
        }
    }

    struct SSHWireReader {
        let bytes: [UInt8]
        var pos = 0
        init(_ b: [UInt8]) { bytes = b }
        mutating func string() throws -> [UInt8] {
            guard pos + 4 <= bytes.count else { throw Failure() }
            let n = Int(bytes[pos]) << 24 | Int(bytes[pos + 1]) << 16 | Int(bytes[pos + 2]) << 8 | Int(bytes[pos + 3])
            pos += 4
            guard n >= 0, pos + n <= bytes.count else { throw Failure() }
            defer { pos += n }
            return Array(bytes[pos..<(pos + n)])
        }
    }
}
