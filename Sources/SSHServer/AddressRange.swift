import Glibc

/// An IPv4 or IPv6 address with a prefix length (`10.0.0.0/24`, `fd00::/8`;
/// a bare address is a /32 or /128): the balancers whose PROXY headers the
/// gateway reads (`proxyProtocolFrom`).
public struct AddressRange: Equatable, Sendable, CustomStringConvertible {
    /// 4 or 16 bytes, with the bits past the prefix cleared.
    public let network: [UInt8]
    public let prefixLength: Int

    /// Parses `text`; nil for anything but a numeric address with an
    /// optional `/prefix` in range (no host names: a balancer is named by
    /// its address, and a name lookup must not decide whom to trust).
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = Self.bytes(of: String(parts[0])) else { return nil }
        let bits = address.count * 8
        var prefix = bits
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].utf8.count <= 3, parts[1].utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                  let n = Int(parts[1]), n <= bits else { return nil }
            prefix = n
        }
        prefixLength = prefix
        network = Self.masked(address, prefix)
    }

    /// Whether `host` (an address as `PreAuthLimits.host(of:)` gives it) is
    /// inside. An IPv4-mapped IPv6 peer (`::ffff:10.0.0.1`, a dual-stack
    /// listener's view of an IPv4 client) matches the IPv4 ranges.
    public func contains(host: String) -> Bool {
        guard var address = Self.bytes(of: host) else { return false }
        if address.count == 16, network.count == 4, address[0..<10].allSatisfy({ $0 == 0 }),
           address[10] == 0xFF, address[11] == 0xFF {
            address = Array(address[12...])
        }
        return address.count == network.count && Self.masked(address, prefixLength) == network
    }

    public var description: String {
        let host = network.count == 4 ? network.map(String.init).joined(separator: ".") : AddressText.ipv6(network)
        return prefixLength == network.count * 8 ? host : "\(host)/\(prefixLength)"
    }

    /// `inet_pton` for either family; nil for anything else.
    static func bytes(of text: String) -> [UInt8]? {
        guard !text.isEmpty, text.utf8.count <= 45 else { return nil }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }

    private static func masked(_ address: [UInt8], _ prefix: Int) -> [UInt8] {
        address.enumerated().map { index, byte in
            let keep = max(0, min(8, prefix - index * 8))
            return keep == 8 ? byte : byte & UInt8(truncatingIfNeeded: 0xFF << (8 - keep))
        }
    }
}

extension Array where Element == AddressRange {
    /// Whether any range holds `host`.
    public func contains(host: String) -> Bool { contains { $0.contains(host: host) } }
}
