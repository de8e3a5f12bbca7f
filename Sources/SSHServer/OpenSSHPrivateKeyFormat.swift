import Foundation
import GatehouseCore

/// Re-encodes libssh's private key export into the `openssh-key-v1` format.
///
/// Why: libssh 0.10 (OpenSSL backend) exports ECDSA and RSA keys only as
/// PKCS#8 (`BEGIN PRIVATE KEY`), which paramiko cannot read; it has no public
/// API for the OpenSSH container. OpenSSH, asyncssh, paramiko and libssh
/// itself all read `openssh-key-v1`. ed25519 keys already come out in that
/// format and pass through unchanged. Unencrypted only (cipher and KDF "none"),
/// like sshd's own host keys.
///
/// Every buffer that holds private material (the PEM text, the DER it
/// decodes to, the private section, the result) is a `SecretBytes`, wiped
/// when it goes out of scope; the DER is parsed in place by offsets, never
/// copied into arrays. Only the public blob is an ordinary array.
enum OpenSSHPrivateKeyFormat {
    struct Failure: Error {}

    static func encode(libsshPEM pem: consuming SecretBytes, publicKey: SSHPublicKey) throws(Failure) -> SecretBytes {
        if pem.withUnsafeBytes({ contains($0, "-----BEGIN OPENSSH PRIVATE KEY-----") }) { return pem }
        guard pem.withUnsafeBytes({ contains($0, "-----BEGIN PRIVATE KEY-----") }),
              let pubBlob = Data(base64Encoded: publicKey.base64).map([UInt8].init) else { throw Failure() }
        var der = SecretBytes(capacity: pem.count)
        try pem.withUnsafeBytes { (text) throws(Failure) in try decodeBase64Body(text, into: &der) }

        var section = SecretBytes(capacity: der.count + pubBlob.count + 64)
        try der.withUnsafeBytes { (d) throws(Failure) in
            try privateSection(der: d, keyType: publicKey.type, pubBlob: pubBlob, into: &section)
        }

        var binary = SecretBytes(capacity: section.count + pubBlob.count + 64)
        try put(Array("openssh-key-v1".utf8) + [0], into: &binary)
        for s in ["none", "none", ""] { try putString(Array(s.utf8), into: &binary) }
        try putU32(1, into: &binary)
        try putString(pubBlob, into: &binary)
        try section.withUnsafeBytes { (s) throws(Failure) in try putString(s, into: &binary) }

        let header = "-----BEGIN OPENSSH PRIVATE KEY-----\n", footer = "-----END OPENSSH PRIVATE KEY-----\n"
        let encoded = (binary.count + 2) / 3 * 4
        var out = SecretBytes(capacity: header.utf8.count + encoded + encoded / lineLength + 1 + footer.utf8.count)
        try put(Array(header.utf8), into: &out)
        try binary.withUnsafeBytes { (b) throws(Failure) in try encodeBase64Lines(b, into: &out) }
        try put(Array(footer.utf8), into: &out)
        return out
    }

    /// The unencrypted private section: check words, the key in OpenSSH's
    /// order, a comment, and 1, 2, 3... padding to the cipher block size (8).
    private static func privateSection(der: UnsafeRawBufferPointer, keyType: String, pubBlob: [UInt8],
                                       into section: inout SecretBytes) throws(Failure) {
        // PrivateKeyInfo ::= SEQUENCE { version, AlgorithmIdentifier, privateKey OCTET STRING }
        var outer = DER(der, der.indices)
        var top = try outer.sequence()
        _ = try top.next(tag: 0x02)
        _ = try top.next(tag: 0x30)
        let inner = try top.next(tag: 0x04)
        let check = UInt32.random(in: 0 ... .max)
        try putU32(check, into: &section)
        try putU32(check, into: &section)
        var innerDER = DER(der, inner)
        var seq = try innerDER.sequence()
        _ = try seq.next(tag: 0x02)
        switch keyType {
        case "ssh-rsa":
            // RSAPrivateKey ::= SEQUENCE { version, n, e, d, p, q, dp, dq, qinv }
            let n = try seq.next(tag: 0x02), e = try seq.next(tag: 0x02), d = try seq.next(tag: 0x02)
            let p = try seq.next(tag: 0x02), q = try seq.next(tag: 0x02)
            _ = try seq.next(tag: 0x02); _ = try seq.next(tag: 0x02)
            let qinv = try seq.next(tag: 0x02)
            try putString(Array("ssh-rsa".utf8), into: &section)
            for v in [n, e, d, qinv, p, q] { try putMPInt(UnsafeRawBufferPointer(rebasing: der[v]), into: &section) }
        case let t where t.hasPrefix("ecdsa-sha2-"):
            // ECPrivateKey ::= SEQUENCE { version, privateKey OCTET STRING, [0] params, [1] publicKey }
            let d = try seq.next(tag: 0x04)
            // The public blob is string(type) string(curve) string(Q).
            var r = SSHWireReader(pubBlob)
            let type = try r.string(), curve = try r.string(), point = try r.string()
            for s in [type, curve, point] { try putString(s, into: &section) }
            try putMPInt(UnsafeRawBufferPointer(rebasing: der[d]), into: &section)
        default:
            throw Failure()
        }
        // A non-empty comment: paramiko's unpadding misreads a section that
        // needs no padding and ends in an empty comment (it strips it all).
        try putString(Array("gatehouse".utf8), into: &section)
        var pad: UInt8 = 1
        while section.count % 8 != 0 {
            try putByte(pad, into: &section)
            pad += 1
        }
    }

    // MARK: - writing into a SecretBytes

    /// One byte, without a temporary array (an array of key bytes would be
    /// a copy nobody wipes).
    private static func putByte(_ b: UInt8, into out: inout SecretBytes) throws(Failure) {
        guard out.append(b) else { throw Failure() }
    }

    private static func put(_ bytes: UnsafeRawBufferPointer, into out: inout SecretBytes) throws(Failure) {
        guard out.append(contentsOf: bytes) else { throw Failure() }
    }

    private static func put(_ bytes: [UInt8], into out: inout SecretBytes) throws(Failure) {
        let ok = bytes.withUnsafeBytes { out.append(contentsOf: $0) }
        guard ok else { throw Failure() }
    }

    private static func putU32(_ v: UInt32, into out: inout SecretBytes) throws(Failure) {
        try put([UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)], into: &out)
    }

    private static func putString(_ b: UnsafeRawBufferPointer, into out: inout SecretBytes) throws(Failure) {
        try putU32(UInt32(b.count), into: &out)
        try put(b, into: &out)
    }

    private static func putString(_ b: [UInt8], into out: inout SecretBytes) throws(Failure) {
        try putU32(UInt32(b.count), into: &out)
        try put(b, into: &out)
    }

    /// RFC 4251 mpint from unsigned big-endian bytes (DER INTEGERs are
    /// already minimal two's complement, which this preserves).
    private static func putMPInt(_ raw: UnsafeRawBufferPointer, into out: inout SecretBytes) throws(Failure) {
        let start = raw.firstIndex(where: { $0 != 0 }) ?? raw.endIndex
        let v = UnsafeRawBufferPointer(rebasing: raw[start...])
        let sign = (v.first ?? 0) & 0x80 != 0
        try putU32(UInt32(v.count + (sign ? 1 : 0)), into: &out)
        if sign { try putByte(0, into: &out) }
        try put(v, into: &out)
    }

    // MARK: - base64 without intermediate strings

    private static let lineLength = 70
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    private static func contains(_ haystack: UnsafeRawBufferPointer, _ needle: String) -> Bool {
        let n = Array(needle.utf8)
        guard haystack.count >= n.count else { return false }
        for i in 0...(haystack.count - n.count) where haystack[i] == n[0] {
            if (0..<n.count).allSatisfy({ haystack[i + $0] == n[$0] }) { return true }
        }
        return false
    }

    /// Decodes the base64 lines of a PEM body (every line not starting with
    /// "-"), four characters at a time, straight into `out`.
    private static func decodeBase64Body(_ text: UnsafeRawBufferPointer, into out: inout SecretBytes) throws(Failure) {
        var quad: UInt32 = 0, have = 0, padding = 0
        var lineStart = true, skipLine = false
        for c in text {
            if c == 0x0A { lineStart = true; skipLine = false; continue }
            if lineStart { skipLine = c == UInt8(ascii: "-"); lineStart = false }
            if skipLine || c == 0x0D || c == 0x20 { continue }
            let v: UInt32
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): v = UInt32(c - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): v = UInt32(c - UInt8(ascii: "a")) + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = UInt32(c - UInt8(ascii: "0")) + 52
            case UInt8(ascii: "+"): v = 62
            case UInt8(ascii: "/"): v = 63
            case UInt8(ascii: "="): v = 0; padding += 1
            default: throw Failure()
            }
            guard padding == 0 || c == UInt8(ascii: "=") else { throw Failure() }
            quad = quad << 6 | v
            have += 1
            if have == 4 {
                guard padding <= 2 else { throw Failure() }
                try putByte(UInt8(quad >> 16 & 0xff), into: &out)
                if padding < 2 { try putByte(UInt8(quad >> 8 & 0xff), into: &out) }
                if padding < 1 { try putByte(UInt8(quad & 0xff), into: &out) }
                quad = 0
                have = 0
            }
        }
        guard have == 0 else { throw Failure() }
    }

    /// Base64 of `data` in lines of `lineLength` characters, each ending in "\n".
    private static func encodeBase64Lines(_ data: UnsafeRawBufferPointer, into out: inout SecretBytes) throws(Failure) {
        var column = 0
        var i = 0
        func emit(_ c: UInt8, into out: inout SecretBytes) throws(Failure) {
            try putByte(c, into: &out)
            column += 1
            if column == lineLength {
                try putByte(0x0A, into: &out)
                column = 0
            }
        }
        while i < data.count {
            let n = min(3, data.count - i)
            let b0 = UInt32(data[i]), b1 = n > 1 ? UInt32(data[i + 1]) : 0, b2 = n > 2 ? UInt32(data[i + 2]) : 0
            let triple = b0 << 16 | b1 << 8 | b2
            try emit(alphabet[Int(triple >> 18 & 63)], into: &out)
            try emit(alphabet[Int(triple >> 12 & 63)], into: &out)
            try emit(n > 1 ? alphabet[Int(triple >> 6 & 63)] : UInt8(ascii: "="), into: &out)
            try emit(n > 2 ? alphabet[Int(triple & 63)] : UInt8(ascii: "="), into: &out)
            i += 3
        }
        if column != 0 { try putByte(0x0A, into: &out) }
    }

    // MARK: - reading

    /// Minimal DER reader over a borrowed buffer: definite lengths only, which
    /// is all PKCS#8 uses. Yields ranges of the buffer, never copies.
    struct DER {
        let bytes: UnsafeRawBufferPointer
        var pos: Int
        let end: Int
        init(_ b: UnsafeRawBufferPointer, _ range: Range<Int>) { bytes = b; pos = range.lowerBound; end = range.upperBound }

        mutating func sequence() throws(Failure) -> DER { DER(bytes, try next(tag: 0x30)) }

        mutating func next(tag: UInt8) throws(Failure) -> Range<Int> {
            guard pos + 2 <= end, bytes[pos] == tag else { throw Failure() }
            pos += 1
            var len = Int(bytes[pos]); pos += 1
            if len & 0x80 != 0 {
                let n = len & 0x7f
                guard n >= 1, n <= 4, pos + n <= end else { throw Failure() }
                len = 0
                for _ in 0..<n { len = len << 8 | Int(bytes[pos]); pos += 1 }
            }
            guard pos + len <= end else { throw Failure() }
            defer { pos += len }
            return pos..<(pos + len)
        }
    }

    /// Reads SSH strings out of the public blob (public data, so arrays are fine).
    struct SSHWireReader {
        let bytes: [UInt8]
        var pos = 0
        init(_ b: [UInt8]) { bytes = b }
        mutating func string() throws(Failure) -> [UInt8] {
            guard pos + 4 <= bytes.count else { throw Failure() }
            let n = Int(bytes[pos]) << 24 | Int(bytes[pos + 1]) << 16 | Int(bytes[pos + 2]) << 8 | Int(bytes[pos + 3])
            pos += 4
            guard n >= 0, pos + n <= bytes.count else { throw Failure() }
            defer { pos += n }
            return Array(bytes[pos..<(pos + n)])
        }
    }
}
