import Foundation
import GatehouseCore

/// A TOTP shared secret (RFC 6238) as pam_oath and authenticator apps want it.
struct TOTPSecret {
    let bytes: [UInt8]

    /// 160 bits from the system CSPRNG, the size RFC 4226 recommends.
    static func random() -> TOTPSecret {
        var rng = SystemRandomNumberGenerator()
        return TOTPSecret(bytes: (0..<20).map { _ in UInt8.random(in: .min ... .max, using: &rng) })
    }

    /// Lower-case hex: the form pam_oath's users file and `oathtool --totp` take.
    var hex: String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// RFC 4648 base32 without padding: the form authenticator apps take.
    var base32: String { Base32.encode(bytes) }

    init(bytes: [UInt8]) { self.bytes = bytes }

    init?(hex: String) {
        let chars = Array(hex.utf8)
        guard chars.count % 2 == 0, !chars.isEmpty else { return nil }
        var bytes: [UInt8] = []
        for i in stride(from: 0, to: chars.count, by: 2) {
            guard let b = UInt8(String(decoding: chars[i...i + 1], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(b)
        }
        self.bytes = bytes
    }
}
