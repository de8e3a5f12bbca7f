import Foundation
import Logging
@testable import SSHServer
import XCTest

/// `SSHConnection.readProxyHeader` on real sockets: it takes exactly the
/// header, however it is split, and leaves the SSH banner after it for
/// libssh; it gives up at its deadline and on a peer that goes.
final class ProxyHeaderReaderTests: TemporaryDirectoryTestCase {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    func accepted() throws -> (SSHListener, SSHConnection, Int32) {
        let listener = try SSHListener(config: SSHServerConfig(host: "127.0.0.1", port: 0, hostKeyPath: dir + "/host",
                                                               hostKeyType: .ecdsaP256, algorithms: .modern),
                                       logger: logger)
        let client = try SSHListenerTests.connect(port: listener.boundPort)
        guard case .connection(let connection) = try listener.accept(headroom: 0) else {
            throw SSHError(.io, operation: "accept", detail: "refused")
        }
        return (listener, connection, client)
    }

    static func send(_ fd: Int32, _ bytes: [UInt8]) {
        XCTAssertEqual(bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, bytes.count, 0) }, bytes.count)
    }

    /// What is still queued on the server's socket after the header was read.
    func rest(_ connection: SSHConnection, count: Int) -> [UInt8] {
        let fd = connection.socketDescriptor
        var buffer = [UInt8](repeating: 0, count: count + 16)
        var got = [UInt8]()
        while got.count < count {
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, 5000) == 1 else { break }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            guard n > 0 else { break }
            got += buffer.prefix(n)
        }
        return got
    }

    func testAHeaderInPiecesIsReadToItsLastByteAndNoFurther() throws {
        let (listener, connection, client) = try accepted()
        defer { listener.close(); connection.close(); Glibc.close(client) }
        let header = ProxyProtocolV2.encode(source: ProxyAddress(bytes: [192, 0, 2, 7], port: 40022),
                                            destination: ProxyAddress(bytes: [127, 0, 0, 1], port: 22),
                                            tlvs: [(0x05, Array("id".utf8))])
        let banner = Array("SSH-2.0-OpenSSH_9.2\r\n".utf8)
        let balancer = connection.peerAddress
        // The signature in two writes from another thread, the rest with the
        // banner (the pauses only make the reader see partial reads; the
        // test holds whether or not the kernel coalesces the writes).
        let writer = Thread {
            Self.send(client, Array(header.prefix(5)))
            usleep(50_000)
            Self.send(client, Array(header[5..<18]))
            usleep(50_000)
            Self.send(client, Array(header[18...]) + banner)
        }
        writer.start()
        XCTAssertEqual(try connection.readProxyHeader(within: 5),
                       .proxied(source: ProxyAddress(bytes: [192, 0, 2, 7], port: 40022),
                                destination: ProxyAddress(bytes: [127, 0, 0, 1], port: 22)))
        XCTAssertEqual(connection.peerAddress, "192.0.2.7:40022")
        XCTAssertEqual(connection.balancerAddress, balancer)
        XCTAssertEqual(rest(connection, count: banner.count), banner, "the SSH stream starts right after the header")
    }

    func testNoHeaderIsRefusedAtTheFirstByte() throws {
        let (listener, connection, client) = try accepted()
        defer { listener.close(); connection.close(); Glibc.close(client) }
        Self.send(client, Array("SSH-2.0-x\r\n".utf8))
        let started = Date()
        XCTAssertThrowsError(try connection.readProxyHeader(within: 5)) { error in
            XCTAssertEqual(error as? ProxyHeaderError, .notProxyProtocol)
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 1, "refused at once, not at the deadline")
        XCTAssertNil(connection.balancerAddress)
        XCTAssertTrue(connection.peerAddress.hasPrefix("127.0.0.1:"))
    }

    func testAStalledHeaderTimesOutAndAClosedOneIsTruncated() throws {
        let (listener, connection, client) = try accepted()
        defer { listener.close(); connection.close() }
        Self.send(client, Array(ProxyProtocolV2.signature.prefix(7)))
        let started = Date()
        XCTAssertThrowsError(try connection.readProxyHeader(within: 1)) { error in
            XCTAssertEqual(error as? ProxyHeaderError, .timeout(seconds: 1))
        }
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.9)
        Glibc.close(client)
        let (listener2, second, client2) = try accepted()
        defer { listener2.close(); second.close() }
        Self.send(client2, Array(ProxyProtocolV2.encode(source: nil, destination: nil).prefix(14)))
        Glibc.close(client2)
        XCTAssertThrowsError(try second.readProxyHeader(within: 5)) { error in
            XCTAssertEqual(error as? ProxyHeaderError, .truncated(have: 14))
        }
    }

    func testLocalThenTheEndIsAQuietHealthCheck() throws {
        let (listener, connection, client) = try accepted()
        defer { listener.close(); connection.close() }
        let peer = connection.peerAddress
        Self.send(client, ProxyProtocolV2.encode(source: nil, destination: nil))
        XCTAssertEqual(try connection.readProxyHeader(within: 5), .local)
        XCTAssertEqual(connection.peerAddress, peer, "LOCAL: the balancer's own connection")
        Glibc.close(client)
        XCTAssertTrue(connection.peerClosedQuietly(within: 5))

        let (listener2, second, client2) = try accepted()
        defer { listener2.close(); second.close(); Glibc.close(client2) }
        Self.send(client2, ProxyProtocolV2.encode(source: nil, destination: nil) + Array("SSH-2.0-x\r\n".utf8))
        XCTAssertEqual(try second.readProxyHeader(within: 5), .local)
        XCTAssertFalse(second.peerClosedQuietly(within: 5), "it spoke: SSH follows")
        XCTAssertEqual(rest(second, count: 11), Array("SSH-2.0-x\r\n".utf8), "peeking took nothing")
    }
}
