/// The PROXY protocol, version 2 (haproxy's `doc/proxy-protocol.txt`): the
/// binary header a load balancer sends before its client's first byte, which
/// names the client's address. Pure: no descriptor, no clock, so every
/// hostile input is tested without a socket (ProxyProtocolTests).
///
/// Only version 2 is read. Version 1 (the `PROXY TCP4 …` text line), any
/// other version or command, a family other than TCP over IPv4 or IPv6, a
/// length too short for its addresses, a TLV running past the declared length
/// and a header longer than `maxLength` are errors: the caller closes the
/// connection. A reader must never take a byte past the header (the SSH
/// stream follows it), so the header is read in two steps: the fixed 16 bytes
/// (`headerLength(prefix:)` says from them how long the whole header is), then
/// exactly the rest (`parse(_:)`).
public enum ProxyProtocolV2 {
    /// `\r\n\r\n\0\r\nQUIT\n`: the twelve bytes every version 2 header starts with.
    public static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    /// The signature, the version and command byte, the family byte and the
    /// 16-bit length of what follows.
    public static let fixedLength = 16
    /// The most this reader accepts after the fixed part: an IPv6 address
    /// block (36 bytes) and TLVs. HAProxy sends far less (its largest TLVs,
    /// the TLS ones, are a few hundred bytes); the protocol allows 65535, which
    /// a peer that is not a balancer must not make us buffer.
    public static let maxPayloadLength = 4096

    /// Whether `prefix`, the first bytes read so far (at most `fixedLength`
    /// of them are looked at), can still start a version 2 header; and once
    /// all `fixedLength` are there, the length of the whole header. nil: read
    /// more (never more than `fixedLength - prefix.count` bytes). Checks each
    /// byte as it arrives, so a client that starts with `SSH-2.0-` or a
    /// version 1 line is refused at its first byte, not at a deadline.
    public static func headerLength(prefix: some Collection<UInt8>) throws(ProxyHeaderError) -> Int? {
        for (index, byte) in prefix.prefix(signature.count).enumerated() where byte != signature[index] {
            if index == 0, byte == UInt8(ascii: "P") { throw .version1 }
            throw .notProxyProtocol
        }
        guard prefix.count >= fixedLength else { return nil }
        let fixed = Array(prefix.prefix(fixedLength))
        try checkVersionAndCommand(fixed[12])
        let payload = Int(fixed[14]) << 8 | Int(fixed[15])
        guard payload <= maxPayloadLength else { throw .tooLong(payload) }
        return fixedLength + payload
    }

    /// Parses a whole header: exactly the `headerLength(prefix:)` bytes.
    public static func parse(_ header: [UInt8]) throws(ProxyHeaderError) -> ProxyHeader {
        guard let length = try headerLength(prefix: header) else { throw .truncated(have: header.count) }
        guard header.count >= length else { throw .truncated(have: header.count) }
        guard header.count == length else { throw .trailingBytes(header.count - length) }
        let command = header[12] & 0x0F
        let family = header[13] >> 4
        let transport = header[13] & 0x0F
        let payload = header[fixedLength...]
        let addressLength: Int
        switch command {
        case Command.local:
            // The balancer's own connection (a health check): the address
            // block, whatever its family, is ignored; TLVs are still checked.
            let block = family == Family.inet ? 12 : family == Family.inet6 ? 36 : family == Family.unix ? 216 : 0
            addressLength = min(block, payload.count)
            try checkTLVs(payload.dropFirst(addressLength))
            return .local
        case Command.proxy:
            guard transport == Transport.stream else { throw .unsupportedFamily(header[13]) }
            switch family {
            case Family.inet: addressLength = 12
            case Family.inet6: addressLength = 36
            default: throw .unsupportedFamily(header[13])
            }
        default:
            throw .unknownCommand(header[12])   // checkVersionAndCommand took it already
        }
        guard payload.count >= addressLength else {
            throw .addressTooShort(family: header[13], length: payload.count)
        }
        let block = Array(payload.prefix(addressLength))
        try checkTLVs(payload.dropFirst(addressLength))
        let half = (addressLength - 4) / 2
        let source = ProxyAddress(bytes: Array(block[0..<half]), port: UInt16(block[2 * half]) << 8 | UInt16(block[2 * half + 1]))
        let destination = ProxyAddress(bytes: Array(block[half..<(2 * half)]),
                                       port: UInt16(block[2 * half + 2]) << 8 | UInt16(block[2 * half + 3]))
        return .proxied(source: source, destination: destination)
    }

    private static func checkVersionAndCommand(_ byte: UInt8) throws(ProxyHeaderError) {
        guard byte >> 4 == 2 else { throw .unknownVersion(byte >> 4) }
        guard byte & 0x0F == Command.local || byte & 0x0F == Command.proxy else { throw .unknownCommand(byte) }
    }

    /// Walks the type-length-value records after the addresses: each must fit
    /// in what the header declared. Their contents are not used.
    private static func checkTLVs(_ bytes: ArraySlice<UInt8>) throws(ProxyHeaderError) {
        var index = bytes.startIndex
        while index < bytes.endIndex {
            guard bytes.endIndex - index >= 3 else { throw .malformedTLV(offset: index) }
            let length = Int(bytes[index + 1]) << 8 | Int(bytes[index + 2])
            guard bytes.endIndex - index - 3 >= length else { throw .malformedTLV(offset: index) }
            index += 3 + length
        }
    }

    enum Command {
        static let local: UInt8 = 0x0
        static let proxy: UInt8 = 0x1
    }

    enum Family {
        static let unspecified: UInt8 = 0x0
        static let inet: UInt8 = 0x1
        static let inet6: UInt8 = 0x2
        static let unix: UInt8 = 0x3
    }

    enum Transport {
        static let stream: UInt8 = 0x1
    }

    /// A version 2 header for `source` → `destination` (both IPv4 or both
    /// IPv6) with `tlvs` appended; `local` gives the LOCAL command with an
    /// unspecified family. For tests and tools; the gateway never sends one.
    public static func encode(source: ProxyAddress?, destination: ProxyAddress?, tlvs: [(UInt8, [UInt8])] = []) -> [UInt8] {
        var payload = [UInt8]()
        var header = signature
        if let source, let destination, source.bytes.count == destination.bytes.count {
            header += [0x21, source.bytes.count == 4 ? 0x11 : 0x21]
            payload = source.bytes + destination.bytes
                + [UInt8(source.port >> 8), UInt8(source.port & 0xFF), UInt8(destination.port >> 8), UInt8(destination.port & 0xFF)]
        } else {
            header += [0x20, 0x00]
        }
        for (type, value) in tlvs {
            payload += [type, UInt8(value.count >> 8), UInt8(value.count & 0xFF)] + value
        }
        return header + [UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)] + payload
    }
}

/// What a version 2 header said.
public enum ProxyHeader: Equatable, Sendable {
    /// LOCAL: the balancer's own connection (its health check); the
    /// connection's real endpoints stand.
    case local
    /// PROXY over TCP: the client's address and port, and the address it
    /// connected to on the balancer.
    case proxied(source: ProxyAddress, destination: ProxyAddress)
}

/// An IPv4 (4 bytes) or IPv6 (16 bytes) address and a port, from a header.
public struct ProxyAddress: Equatable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]
    public let port: UInt16

    public init(bytes: [UInt8], port: UInt16) {
        self.bytes = bytes
        self.port = port
    }

    /// `ip:port`, or `[ipv6]:port`, as `SSHConnection.peerAddress` spells a peer.
    public var description: String {
        bytes.count == 4 ? "\(host):\(port)" : "[\(host)]:\(port)"
    }

    /// The address alone: dotted quad, or RFC 5952 IPv6 (an IPv4-mapped one
    /// as `::ffff:a.b.c.d`, as the kernel names such a peer).
    public var host: String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        return AddressText.ipv6(bytes)
    }
}

/// Why a connection from a balancer was closed before SSH. `description` is
/// for the log and the audit event (it holds no byte of the peer's beyond
/// numbers).
public enum ProxyHeaderError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The first bytes are not the version 2 signature (no header at all:
    /// an SSH client speaking directly).
    case notProxyProtocol
    /// A version 1 text header (`PROXY …`): not accepted.
    case version1
    case unknownVersion(UInt8)
    case unknownCommand(UInt8)
    /// Not TCP over IPv4 or IPv6 (the family and transport byte).
    case unsupportedFamily(UInt8)
    case addressTooShort(family: UInt8, length: Int)
    /// The declared length after the fixed part is above `maxPayloadLength`.
    case tooLong(Int)
    case malformedTLV(offset: Int)
    /// The peer closed before the whole header arrived.
    case truncated(have: Int)
    /// More bytes than the header declared were handed to `parse` (a caller's bug).
    case trailingBytes(Int)
    /// The header did not arrive in time.
    case timeout(seconds: Int)
    /// Reading the socket failed.
    case io(String)

    public var description: String {
        switch self {
        case .notProxyProtocol: return "no PROXY protocol v2 header (the first bytes are not its signature)"
        case .version1: return "a PROXY protocol v1 (text) header; only v2 is accepted"
        case .unknownVersion(let v): return "PROXY protocol version \(v); only 2 is accepted"
        case .unknownCommand(let b): return "unknown PROXY command byte 0x\(String(b, radix: 16))"
        case .unsupportedFamily(let b): return "unsupported address family/transport 0x\(String(b, radix: 16)); only TCP over IPv4 or IPv6"
        case .addressTooShort(let f, let n): return "\(n) bytes of address data for family 0x\(String(f, radix: 16))"
        case .tooLong(let n): return "header declares \(n) bytes, more than \(ProxyProtocolV2.maxPayloadLength)"
        case .malformedTLV(let o): return "a TLV at offset \(o) runs past the header's declared length"
        case .truncated(let n): return "the connection closed after \(n) bytes of the header"
        case .trailingBytes(let n): return "\(n) bytes after the header"
        case .timeout(let s): return "no complete header within \(s)s"
        case .io(let s): return "reading the header failed: \(s)"
        }
    }
}

/// Text forms of binary addresses, without `inet_ntop` (pure, so it is tested with the parser).
enum AddressText {
    /// RFC 5952: lower case, leading zeros dropped, the longest run (of at
    /// least two) of zero groups as `::`, an IPv4-mapped address as `::ffff:a.b.c.d`.
    static func ipv6(_ bytes: [UInt8]) -> String {
        precondition(bytes.count == 16)
        if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF {
            return "::ffff:" + bytes[12...].map(String.init).joined(separator: ".")
        }
        let groups = (0..<8).map { Int(bytes[2 * $0]) << 8 | Int(bytes[2 * $0 + 1]) }
        var best = (start: -1, length: 0)
        var run = (start: -1, length: 0)
        for (i, g) in groups.enumerated() {
            if g == 0 {
                run = run.start < 0 ? (i, 1) : (run.start, run.length + 1)
                if run.length > best.length { best = run }
            } else {
                run = (-1, 0)
            }
        }
        func hex(_ range: Range<Int>) -> String { groups[range].map { String($0, radix: 16) }.joined(separator: ":") }
        guard best.length >= 2 else { return hex(0..<8) }
        return hex(0..<best.start) + "::" + hex((best.start + best.length)..<8)
    }
}
