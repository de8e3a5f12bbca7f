import Foundation
import GatehouseCore
import Synchronization
import XCTest

/// The socket calls of `OwnedFileDescriptor` (OwnedFileDescriptor+Socket.swift)
/// and `setPermissions`, over real Unix-domain sockets in a temporary directory.
final class OwnedSocketTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "gh-sock-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func closesOnExec(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) & FD_CLOEXEC != 0 }

    func stream() throws -> OwnedFileDescriptor {
        try OwnedFileDescriptor(socketDomain: AF_UNIX, type: Int32(SOCK_STREAM.rawValue))
    }

    static func send(_ bytes: [UInt8], _ fd: borrowing OwnedFileDescriptor) throws {
        try bytes.withUnsafeBytes { raw in try fd.sendAll(raw) }
    }

    static func receiveAll(_ fd: borrowing OwnedFileDescriptor) throws -> [UInt8] {
        var all: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try fd.read(into: $0) }
            if n == 0 { return all }
            all += chunk[..<n]
        }
    }

    /// A client sends 1 MiB (more than a socket buffer holds, so `sendAll`
    /// must go on after partial sends) and half-closes; the server reads it
    /// all, answers and closes. Both ends, the accepted one included, are
    /// close-on-exec, so a spawned backend never holds them.
    func testListenAcceptConnectSendAndShutdown() throws {
        let path = dir + "/s.sock"
        let listener = try stream()
        try listener.bind(unixPath: path)
        try listener.listen(backlog: 4)
        let listenerNumber = listener.rawValue
        XCTAssertTrue(closesOnExec(listenerNumber))
        let request = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 % 253) }

        let client = Shared(try stream())
        try client.fd.connect(unixPath: path)
        let sending = DispatchQueue(label: "client")
        let sent = ClientResult()
        sending.async {
            do {
                try Self.send(request, client.fd)
                try client.fd.shutdown(Int32(SHUT_WR))
                sent.answer.withLock { $0 = try? Self.receiveAll(client.fd) }
            } catch {
                sent.answer.withLock { $0 = nil }
            }
        }

        let server = try listener.accept()
        let serverNumber = server.rawValue
        XCTAssertTrue(closesOnExec(serverNumber))
        let received = try Self.receiveAll(server)
        XCTAssertTrue(received == request)
        try Self.send(Array("done".utf8), server)
        try server.close()
        sending.sync {}
        XCTAssertEqual(sent.answer.withLock { $0 }, Array("done".utf8))
    }

    /// A peer that has gone away is `EPIPE`, not a `SIGPIPE` that would end
    /// this test process.
    func testSendingToAClosedPeerThrowsEPIPE() throws {
        var ends: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &ends), 0)
        let mine = OwnedFileDescriptor(adopting: ends[0])
        try OwnedFileDescriptor(adopting: ends[1]).close()
        var byte: UInt8 = 1
        let failure: Errno? = withUnsafeBytes(of: &byte) { raw in
            do throws(Errno) {
                try mine.sendAll(raw)
                return nil
            } catch {
                return error
            }
        }
        XCTAssertEqual(failure, Errno(rawValue: EPIPE))
    }

    func testConnectFailuresThrowTheirErrno() throws {
        XCTAssertThrowsError(try stream().connect(unixPath: dir + "/nobody")) { error in
            XCTAssertEqual(error as? Errno, Errno(rawValue: ENOENT))
        }
        let tooLong = dir + "/" + String(repeating: "x", count: 200)
        XCTAssertThrowsError(try stream().bind(unixPath: tooLong)) { error in
            XCTAssertEqual(error as? Errno, Errno(rawValue: ENAMETOOLONG))
        }
        XCTAssertThrowsError(try stream().connect(unixPath: dir + "/a\u{0}b")) { error in
            XCTAssertEqual(error as? Errno, Errno(rawValue: EINVAL))
        }
    }

    /// `shutdown` of a listening socket wakes a thread blocked in `accept`,
    /// which is how the daemon's control socket stops serving.
    func testShutdownWakesABlockedAccept() throws {
        let listener = Shared(try stream())
        try listener.fd.bind(unixPath: dir + "/l.sock")
        try listener.fd.listen(backlog: 1)
        let woke = DispatchSemaphore(value: 0)
        let result = ClientResult()
        Thread.detachNewThread {
            do throws(Errno) {
                _ = try listener.fd.accept()
            } catch {
                result.error.withLock { $0 = error }
            }
            woke.signal()
        }
        usleep(100_000)
        try listener.fd.shutdown(Int32(SHUT_RDWR))
        XCTAssertEqual(woke.wait(timeout: .now() + 5), .success, "accept did not wake")
        XCTAssertEqual(result.error.withLock { $0 }, Errno(rawValue: EINVAL))
    }

    func testSetPermissionsChangesTheOpenFile() throws {
        let path = dir + "/f"
        let file = try OwnedFileDescriptor(opening: path, flags: O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                                           permissions: 0o644)
        try file.setPermissions(0o600)
        var st = stat()
        XCTAssertEqual(stat(path, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600)
    }
}

/// One descriptor used from two threads, as the control socket's is.
private final class Shared: Sendable {
    let fd: OwnedFileDescriptor
    init(_ fd: consuming OwnedFileDescriptor) { self.fd = fd }
}

private final class ClientResult: Sendable {
    let answer = Mutex<[UInt8]?>(nil)
    let error = Mutex<Errno?>(nil)
}
