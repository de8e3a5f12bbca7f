/// RFC 4648 base32 (upper case, no padding): the form authenticator apps take
/// for TOTP secrets, and the form one-time elevation secrets are read aloud in.
public enum Base32 {
    public static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)

    public static func encode(_ data: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((data.count * 8 + 4) / 5)
        data.withUnsafeBytes { encode($0, into: { out.append($0) }) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Encodes character by character into `emit`, so a secret can be
    /// encoded into storage that is wiped (`SecretBytes`) rather than into a
    /// `String`.
    public static func encode(_ data: UnsafeRawBufferPointer, into emit: (UInt8) -> Void) {
        var buffer: UInt32 = 0
        var bits = 0
        defer { buffer = 0 }
        for byte in data {
            buffer = (buffer << 8) | UInt32(byte)
            bits += 8
            while bits >= 5 {
                bits -= 5
                emit(alphabet[Int((buffer >> UInt32(bits)) & 31)])
            }
            buffer &= (1 << UInt32(bits)) - 1
        }
        if bits > 0 { emit(alphabet[Int((buffer << UInt32(5 - bits)) & 31)]) }
    }

    /// The bytes `text` encodes (letters in either case, no padding, no
    /// separators); nil at the first character outside the alphabet. Bits
    /// left over after the last whole byte are dropped, as `encode` pads them.
    public static func decode(_ text: some Sequence<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        return decode(text, into: { out.append($0) }) ? out : nil
    }

    /// Decodes byte by byte into `emit`, so a secret can be decoded into
    /// storage that is wiped (`SecretBytes`) rather than into an array.
    /// Returns false at the first character outside the alphabet.
    public static func decode(_ text: some Sequence<UInt8>, into emit: (UInt8) -> Void) -> Bool {
        var buffer: UInt32 = 0
        var bits = 0
        defer { buffer = 0 }
        for c in text {
            let upper = (c >= 0x61 && c <= 0x7a) ? c - 0x20 : c
            guard let v = alphabet.firstIndex(of: upper) else { return false }
            buffer = ((buffer << 5) | UInt32(v)) & 0xfff
            bits += 5
            if bits >= 8 {
                bits -= 8
                emit(UInt8((buffer >> UInt32(bits)) & 0xff))
            }
        }
        return true
    }
}
