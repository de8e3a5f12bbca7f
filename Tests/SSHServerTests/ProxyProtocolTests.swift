import TestSupport
import XCTest
@testable import SSHServer

/// The PROXY protocol v2 parser (ProxyProtocol.swift) against the spec's
/// layouts and against hostile input: random bytes, every truncation of a
/// valid header, lengths that overflow, TLVs that run past the header.
final class ProxyProtocolTests: XCTestCase {
    let client4 = ProxyAddress(bytes: [127, 0, 0, 2], port: 51234)
    let front4 = ProxyAddress(bytes: [127, 0, 0, 1], port: 2222)

    /// A header as HAProxy 2.6 writes it for `send-proxy-v2` (from the spec,
    /// section 2.2): signature, 0x21 (v2, PROXY), 0x11 (TCP over IPv4),
    /// length 12, source 127.0.0.2:51234, destination 127.0.0.1:2222.
    let haproxyIPv4: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
                                0x21, 0x11, 0x00, 0x0C, 127, 0, 0, 2, 127, 0, 0, 1, 0xC8, 0x22, 0x08, 0xAE]

    func length(_ bytes: [UInt8]) throws -> Int? { try ProxyProtocolV2.headerLength(prefix: bytes) }

    func testIPv4HeaderAsHAProxySendsIt() throws {
        XCTAssertEqual(try length(Array(haproxyIPv4.prefix(16))), 28)
        XCTAssertEqual(try ProxyProtocolV2.parse(haproxyIPv4), .proxied(source: client4, destination: front4))
        XCTAssertEqual(ProxyProtocolV2.encode(source: client4, destination: front4), haproxyIPv4)
        XCTAssertEqual(client4.description, "127.0.0.2:51234")
    }

    func testIPv6HeaderAndItsText() throws {
        let source = ProxyAddress(bytes: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1], port: 22)
        let destination = ProxyAddress(bytes: [UInt8](repeating: 0, count: 15) + [1], port: 2222)
        let header = ProxyProtocolV2.encode(source: source, destination: destination)
        XCTAssertEqual(header[13], 0x21)
        XCTAssertEqual(try ProxyProtocolV2.parse(header), .proxied(source: source, destination: destination))
        XCTAssertEqual(source.description, "[2001:db8::1]:22")
        XCTAssertEqual(destination.host, "::1")
        let mapped = ProxyAddress(bytes: [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF, 10, 0, 0, 7], port: 1)
        XCTAssertEqual(mapped.host, "::ffff:10.0.0.7")
        XCTAssertEqual(AddressText.ipv6([0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1]), "1::1:0:0:1:1",
                       "the first of two equal zero runs is the one shortened (RFC 5952 4.2.3)")
        XCTAssertEqual(AddressText.ipv6([0, 1, 0, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1]), "1:0:1:1:1:1:1:1",
                       "a single zero group is not shortened")
        XCTAssertEqual(AddressText.ipv6([0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]), "1:0:0:1::1", "the longest run")
    }

    func testLocalCommandKeepsTheRealEndpoints() throws {
        let local = ProxyProtocolV2.encode(source: nil, destination: nil)
        XCTAssertEqual(local.count, 16)
        XCTAssertEqual(try length(local), 16)
        XCTAssertEqual(try ProxyProtocolV2.parse(local), .local)
        // LOCAL with an address block (allowed by the spec): ignored.
        var withBlock = haproxyIPv4
        withBlock[12] = 0x20
        XCTAssertEqual(try ProxyProtocolV2.parse(withBlock), .local)
    }

    func testTLVsAreSkippedWithinTheDeclaredLength() throws {
        let tlvs: [(UInt8, [UInt8])] = [(0x05, Array("unique-id".utf8)), (0x04, []), (0xE0, [UInt8](repeating: 7, count: 300))]
        let header = ProxyProtocolV2.encode(source: client4, destination: front4, tlvs: tlvs)
        XCTAssertEqual(try length(Array(header.prefix(16))), header.count)
        XCTAssertEqual(try ProxyProtocolV2.parse(header), .proxied(source: client4, destination: front4))
        // A TLV whose length runs one byte past the header.
        var long = header
        long[28 + 1] = 0x00
        long[28 + 2] = UInt8("unique-id".utf8.count + 1)
        // ... which makes every later TLV misaligned: some offset fails.
        XCTAssertThrowsError(try ProxyProtocolV2.parse(long)) { error in
            guard case ProxyHeaderError.malformedTLV = error else { return XCTFail("\(error)") }
        }
        // A TLV cut inside its own 3-byte type and length.
        var cut = ProxyProtocolV2.encode(source: client4, destination: front4, tlvs: [(0x05, [1, 2])])
        cut.removeLast(3)
        cut[15] = UInt8(cut.count - 16)
        XCTAssertThrowsError(try ProxyProtocolV2.parse(cut)) { error in
            XCTAssertEqual(error as? ProxyHeaderError, .malformedTLV(offset: 28))
        }
    }

    func testWhatIsRefused() {
        func refusal(_ bytes: [UInt8]) -> ProxyHeaderError? {
            do {
                if try ProxyProtocolV2.headerLength(prefix: bytes) == nil { return nil }
                _ = try ProxyProtocolV2.parse(bytes)
                return nil
            } catch { return error }
        }
        XCTAssertEqual(refusal(Array("SSH-2.0-OpenSSH_9.2\r\n".utf8)), .notProxyProtocol, "a direct SSH client, at its first byte")
        XCTAssertEqual(refusal(Array("S".utf8)), .notProxyProtocol)
        XCTAssertEqual(refusal(Array("PROXY TCP4 127.0.0.2 127.0.0.1 51234 2222\r\n".utf8)), .version1)
        var version1 = haproxyIPv4; version1[12] = 0x11
        XCTAssertEqual(refusal(version1), .unknownVersion(1))
        var command = haproxyIPv4; command[12] = 0x22
        XCTAssertEqual(refusal(command), .unknownCommand(0x22))
        var unix = haproxyIPv4; unix[13] = 0x31
        XCTAssertEqual(refusal(unix), .unsupportedFamily(0x31))
        var unspecified = haproxyIPv4; unspecified[13] = 0x00
        XCTAssertEqual(refusal(unspecified), .unsupportedFamily(0x00))
        var udp = haproxyIPv4; udp[13] = 0x12
        XCTAssertEqual(refusal(udp), .unsupportedFamily(0x12))
        var short = Array(haproxyIPv4.prefix(24)); short[15] = 8
        XCTAssertEqual(refusal(short), .addressTooShort(family: 0x11, length: 8))
        var sixShort = haproxyIPv4; sixShort[13] = 0x21   // IPv6 needs 36 bytes, has 12
        XCTAssertEqual(refusal(sixShort), .addressTooShort(family: 0x21, length: 12))
        var huge = Array(haproxyIPv4.prefix(16)); huge[14] = 0xFF; huge[15] = 0xFF
        XCTAssertEqual(refusal(huge), .tooLong(65535), "refused from the fixed part, before any of it is read")
        XCTAssertThrowsError(try ProxyProtocolV2.parse(haproxyIPv4 + Array("SSH-2.0-x\r\n".utf8))) { error in
            XCTAssertEqual(error as? ProxyHeaderError, .trailingBytes(11))
        }
    }

    /// Every prefix of a valid header either asks for more (never more than
    /// the header's remaining bytes) or, once complete, parses; `parse` of a
    /// truncated header throws `.truncated`.
    func testEveryTruncation() throws {
        let header = ProxyProtocolV2.encode(source: client4, destination: front4, tlvs: [(0x05, [1, 2, 3])])
        for cut in 0..<header.count {
            let prefix = Array(header.prefix(cut))
            if cut < 16 {
                XCTAssertNil(try length(prefix), "cut \(cut)")
            } else {
                XCTAssertEqual(try length(prefix), header.count, "cut \(cut)")
            }
            XCTAssertThrowsError(try ProxyProtocolV2.parse(prefix), "cut \(cut)") { error in
                XCTAssertEqual(error as? ProxyHeaderError, .truncated(have: cut), "cut \(cut)")
            }
        }
    }

    /// Random bytes, random bytes after a valid signature, and single-byte
    /// corruptions of a valid header: never a crash, never a length past
    /// the limit, and a header that parses only when its bytes say so.
    func testHostileInputNeverCrashes() {
        var rng = SeededGenerator(seed: 0x9E37_79B9_7F4A_7C15)
        let valid = ProxyProtocolV2.encode(source: client4, destination: front4, tlvs: [(0x01, [9, 9]), (0x05, [1])])
        var parsed = 0
        for round in 0..<40_000 {
            var bytes: [UInt8]
            switch round % 4 {
            case 0:
                bytes = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            case 1:
                bytes = ProxyProtocolV2.signature + (0..<Int.random(in: 0...80, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            case 2:
                bytes = valid
                bytes[Int.random(in: 12..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            default:
                bytes = ProxyProtocolV2.signature + [0x21, [0x11, 0x21, 0x00, 0x31].randomElement(using: &rng)!]
                let declared = Int.random(in: 0...0xFFFF, using: &rng)
                bytes += [UInt8(declared >> 8), UInt8(declared & 0xFF)]
                bytes += (0..<min(declared, 200)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            }
            do {
                if let total = try ProxyProtocolV2.headerLength(prefix: bytes) {
                    XCTAssertLessThanOrEqual(total, ProxyProtocolV2.fixedLength + ProxyProtocolV2.maxPayloadLength)
                    if bytes.count >= total {
                        if case .proxied = try ProxyProtocolV2.parse(Array(bytes.prefix(total))) { parsed += 1 }
                    }
                }
            } catch {
                XCTAssertFalse(error.description.isEmpty)   // typed: never anything but a ProxyHeaderError
            }
        }
        XCTAssertGreaterThan(parsed, 0, "some corruptions (of a port, an address, a TLV value) still parse")
    }

    func testAddressRanges() {
        XCTAssertEqual(AddressRange("10.0.0.0/24")?.description, "10.0.0.0/24")
        XCTAssertEqual(AddressRange("10.0.0.77/24")?.description, "10.0.0.0/24", "host bits are cleared")
        XCTAssertTrue(AddressRange("10.0.0.0/24")!.contains(host: "10.0.0.255"))
        XCTAssertFalse(AddressRange("10.0.0.0/24")!.contains(host: "10.0.1.0"))
        XCTAssertTrue(AddressRange("127.0.0.1")!.contains(host: "127.0.0.1"))
        XCTAssertFalse(AddressRange("127.0.0.1")!.contains(host: "127.0.0.2"))
        XCTAssertTrue(AddressRange("127.0.0.1")!.contains(host: "::ffff:127.0.0.1"), "a dual-stack socket's view of IPv4")
        XCTAssertTrue(AddressRange("fd00::/8")!.contains(host: "fd12::5"))
        XCTAssertFalse(AddressRange("fd00::/8")!.contains(host: "fe80::1"))
        XCTAssertFalse(AddressRange("::1")!.contains(host: "127.0.0.1"))
        XCTAssertTrue(AddressRange("0.0.0.0/0")!.contains(host: "192.0.2.1"))
        XCTAssertFalse(AddressRange("10.0.0.0/24")!.contains(host: "unknown"))
        XCTAssertFalse([AddressRange]().contains(host: "127.0.0.1"))
        for bad in ["", "10.0.0.0/33", "10.0.0.0/", "10.0.0/24", "lb.example.com", "10.0.0.0/-1", "::1/129",
                    "10.0.0.1/ 8", "10.0.0.1/0008", "1.2.3.4/24/1", " 10.0.0.1"] {
            XCTAssertNil(AddressRange(bad), bad)
        }
    }
}
