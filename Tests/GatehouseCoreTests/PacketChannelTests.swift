import Foundation
import GatehouseCore
import XCTest

/// `PacketChannel` over a real socket pair: boundaries, descriptor passing,
/// and each way a hostile or vanished peer can end a receive. Descriptors
/// that must not leak are write ends of pipes: the read end reports
/// `POLLHUP` at once when every write end is closed, so a leak is seen
/// without waiting.
final class PacketChannelTests: XCTestCase {
    func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// A pipe: (read end, write end).
    func pipeEnds() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        XCTAssertEqual(pipe(&fds), 0)
        return (fds[0], fds[1])
    }

    /// True when no write end of the pipe is open anywhere in this process.
    func allWritersClosed(_ readEnd: Int32) -> Bool {
        var entry = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) == 1 && entry.revents & Int16(POLLHUP) != 0
    }

    func expectPacket(_ received: consuming PacketChannel.Received, file: StaticString = #filePath,
                      line: UInt = #line) -> [UInt8]? {
        switch consume received {
        case .packet(let packet):
            XCTAssertEqual(packet.descriptors.count, 0, file: file, line: line)
            return packet.bytes
        case .endOfStream:
            XCTFail("end of stream instead of a packet", file: file, line: line)
            return nil
        }
    }

    func isEnd(_ received: consuming PacketChannel.Received) -> Bool {
        switch consume received {
        case .packet: false
        case .endOfStream: true
        }
    }

    func expectError(_ expected: PacketChannelError, file: StaticString = #filePath, line: UInt = #line,
                     _ body: () throws(PacketChannelError) -> Void) {
        do {
            try body()
            XCTFail("no error; expected \(expected)", file: file, line: line)
        } catch {
            XCTAssertEqual(error, expected, file: file, line: line)
        }
    }

    func testPacketsKeepTheirBoundariesAndOrder() throws {
        let pair = try PacketChannel.pair()
        let a = pair.first, b = pair.second
        try a.send(bytes("one"))
        try a.send(bytes("two, longer"))
        try a.send([0, 255, 0])
        XCTAssertEqual(expectPacket(try b.receive(maxBytes: 64)), bytes("one"))
        XCTAssertEqual(expectPacket(try b.receive(maxBytes: 64)), bytes("two, longer"))
        XCTAssertEqual(expectPacket(try b.receive(maxBytes: 3)), [0, 255, 0])
        // Both directions.
        try b.send(bytes("back"))
        XCTAssertEqual(expectPacket(try a.receive(maxBytes: 4)), bytes("back"))
    }

    func testBothEndsAreCloseOnExec() throws {
        let pair = try PacketChannel.pair()
        let a = pair.first, b = pair.second
        XCTAssertNotEqual(fcntl(a.descriptor.rawValue, F_GETFD) & FD_CLOEXEC, 0)
        XCTAssertNotEqual(fcntl(b.descriptor.rawValue, F_GETFD) & FD_CLOEXEC, 0)
    }

    /// A descriptor sent with a packet arrives as a working, close-on-exec
    /// descriptor of its own; the sender's copy stays the sender's.
    func testDescriptorRoundTrip() throws {
        let pair = try PacketChannel.pair()
        let a = pair.first, b = pair.second
        let pipe = try pipeEnds()
        defer { close(pipe.read) }
        try a.send(bytes("here"), descriptors: [pipe.write])
        close(pipe.write)
        var written = false
        let received = try b.receive(maxBytes: 16, maxDescriptors: 2)
        switch consume received {
        case .packet(var packet):
            XCTAssertEqual(packet.bytes, bytes("here"))
            XCTAssertEqual(packet.descriptors.count, 1)
            guard let writeEnd = packet.descriptors.take() else { return XCTFail("no descriptor") }
            XCTAssertEqual(packet.descriptors.count, 0)
            XCTAssertNotEqual(fcntl(writeEnd.rawValue, F_GETFD) & FD_CLOEXEC, 0)
            try writeEnd.writeAll(bytes("x"))
            written = true
            XCTAssertFalse(allWritersClosed(pipe.read))
        case .endOfStream:
            XCTFail("end of stream")
        }
        XCTAssertTrue(written)
        var byte: UInt8 = 0
        XCTAssertEqual(read(pipe.read, &byte, 1), 1)
        XCTAssertEqual(byte, UInt8(ascii: "x"))
        // The received descriptor was closed when its owner went.
        XCTAssertTrue(allWritersClosed(pipe.read))
    }

    /// Descriptors the receiver does not take are closed with the packet.
    func testUntakenDescriptorsAreClosedWithThePacket() throws {
        let pair = try PacketChannel.pair()
        let a = pair.first, b = pair.second
        let pipe = try pipeEnds()
        defer { close(pipe.read) }
        try a.send(bytes("two"), descriptors: [pipe.write, pipe.write])
        close(pipe.write)
        XCTAssertEqual(expectPacketCountingDescriptors(try b.receive(maxBytes: 8, maxDescriptors: 2)), 2)
        XCTAssertTrue(allWritersClosed(pipe.read))
    }

    func expectPacketCountingDescriptors(_ received: consuming PacketChannel.Received) -> Int {
        switch consume received {
        case .packet(let packet): packet.descriptors.count
        case .endOfStream: -1
        }
    }

    /// A packet over the limit is an error, not a silently cut message, and
    /// the next packet is read whole (the boundary held).
    func testOversizedPacketIsAnErrorAndTheNextIsIntact() throws {
        let pair = try PacketChannel.pair()
        let a = pair.first, b = pair.second
        try a.send([UInt8](repeating: 7, count: 100))
        try a.send(bytes("next"))
        expectError(.oversized(limit: 10)) { () throws(PacketChannelError) in _ = try b.receive(maxBytes: 10) }
        XCTAssertEqual(expectPacket(try b.receive(maxBytes: 10)), bytes("next"))
    }

    /// The descriptors of an oversized packet are closed, not leaked.
    func testOversizedPacketClosesItsDescriptors() throws {
        let pair = try PacketChannel.pair()
        let a = pair.first, b = pair.second
        let pipe = try pipeEnds()
        defer { close(pipe.read) }
        try a.send([UInt8](repeating: 7, count: 100), descriptors: [pipe.write])
        close(pipe.write)
        expectError(.oversized(limit: 10)) { () throws(PacketChannelError) in
            _ = try b.receive(maxBytes: 10, maxDescriptors: 1)
        }
        XCTAssertTrue(allWritersClosed(pipe.read))
    }

    /// More descriptors than allowed (`MSG_CTRUNC`): an error, and the ones
    /// that fitted are closed; the kernel closes the rest.
    func testTooManyDescriptorsIsAnErrorAndNoneLeak() throws {
        let pair = try PacketChannel.pair()
        let a = pair.first, b = pair.second
        let pipes = try (0..<3).map { _ in try pipeEnds() }
        defer { for p in pipes { close(p.read) } }
        try a.send(bytes("three"), descriptors: pipes.map(\.write))
        for p in pipes { close(p.write) }
        expectError(.unexpectedDescriptors(limit: 1)) { () throws(PacketChannelError) in
            _ = try b.receive(maxBytes: 16, maxDescriptors: 1)
        }
        for p in pipes { XCTAssertTrue(allWritersClosed(p.read)) }
    }

    /// A receiver that takes no descriptors refuses a packet that brings one.
    func testDescriptorsToAReceiverThatTakesNoneAreRefused() throws {
        let pair = try PacketChannel.pair()
        let a = pair.first, b = pair.second
        let pipe = try pipeEnds()
        defer { close(pipe.read) }
        try a.send(bytes("sneaky"), descriptors: [pipe.write])
        close(pipe.write)
        expectError(.unexpectedDescriptors(limit: 0)) { () throws(PacketChannelError) in
            _ = try b.receive(maxBytes: 16)
        }
        XCTAssertTrue(allWritersClosed(pipe.read))
    }

    /// The peer's end is its own result, every time it is asked; sending to
    /// a closed peer throws EPIPE instead of raising SIGPIPE.
    func testPeerClosedIsEndOfStreamAndSendingToItIsEPIPE() throws {
        let b = try sentAndClosed(bytes("last"))
        XCTAssertEqual(expectPacket(try b.receive(maxBytes: 8)), bytes("last"))
        XCTAssertTrue(isEnd(try b.receive(maxBytes: 8)))
        XCTAssertTrue(isEnd(try b.receive(maxBytes: 8)))
        XCTAssertTrue(try b.waitForInput(until: .now))
        expectError(.system(Errno(rawValue: EPIPE))) { () throws(PacketChannelError) in try b.send(bytes("anyone?")) }
    }

    /// The receiving end of a pair whose other end sent `packet` and closed.
    func sentAndClosed(_ packet: [UInt8]) throws -> PacketChannel {
        let pair = try PacketChannel.pair()
        let a = pair.first, b = pair.second
        try a.send(packet)
        return b
    }

    /// An empty packet cannot be told from the end, so none is sent; a peer
    /// that writes one anyway (with plain send) is taken as gone.
    func testEmptyPacketsAreRefusedAndAHostileOneReadsAsTheEnd() throws {
        let pair = try PacketChannel.pair()
        let a = pair.first, b = pair.second
        expectError(.emptyPacket) { () throws(PacketChannelError) in try a.send([]) }
        XCTAssertEqual(Glibc.send(a.descriptor.rawValue, nil, 0, 0), 0)
        XCTAssertTrue(isEnd(try b.receive(maxBytes: 8)))
    }

    /// Arbitrary bytes written straight to the socket arrive as one packet,
    /// unchanged: the channel judges sizes, the protocol judges content.
    func testRawGarbageArrivesAsOnePacket() throws {
        let pair = try PacketChannel.pair()
        let a = pair.first, b = pair.second
        let garbage: [UInt8] = (0..<200).map { _ in UInt8.random(in: 0...255) } + [0]
        XCTAssertEqual(garbage.withUnsafeBytes { write(a.descriptor.rawValue, $0.baseAddress, $0.count) }, 201)
        XCTAssertEqual(expectPacket(try b.receive(maxBytes: 201)), garbage)
    }

    /// `waitForInput` answers at once either way when the deadline is now.
    func testWaitForInputReportsWhetherAPacketIsThere() throws {
        let pair = try PacketChannel.pair()
        let a = pair.first, b = pair.second
        XCTAssertFalse(try b.waitForInput(until: .now))
        try a.send(bytes("ping"))
        XCTAssertTrue(try b.waitForInput(until: .now))
        XCTAssertEqual(expectPacket(try b.receive(maxBytes: 4)), bytes("ping"))
        XCTAssertFalse(try b.waitForInput(until: .now))
    }

    func testWipeZeroesThePacket() {
        var packet: [UInt8] = Array("secret".utf8)
        PacketChannel.wipe(&packet)
        XCTAssertEqual(packet, [UInt8](repeating: 0, count: 6))
    }
}
