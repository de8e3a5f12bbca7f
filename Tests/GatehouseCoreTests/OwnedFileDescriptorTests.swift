import Foundation
import GatehouseCore
import Synchronization
import TestSupport
import XCTest

final class OwnedFileDescriptorTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "gatehouse-fd-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func isOpen(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) != -1 }

    func testDroppingAnUnclosedDescriptorClosesIt() throws {
        var number: Int32 = -1
        do {
            let file = try OwnedFileDescriptor(opening: "/dev/null", flags: O_RDONLY | O_CLOEXEC)
            number = file.rawValue
            XCTAssertTrue(isOpen(number))
        }
        XCTAssertFalse(isOpen(number))
    }

    /// `close()` closes once and `deinit` does not close the number again:
    /// the helper gives the number to a new descriptor the moment it is freed
    /// (as another session's open would) and reports whether that one survived.
    func testExplicitCloseClosesExactlyOnce() throws {
        let run = try HelperProcess("descriptor-helper").run(["explicit-close"])
        XCTAssertEqual(run.status, 0, "\(run)")
        XCTAssertTrue(run.lines.last?.hasSuffix(" open") ?? false, "\(run)")
    }

    func testDeinitClosesExactlyOnce() throws {
        let run = try HelperProcess("descriptor-helper").run(["scope-close"])
        XCTAssertEqual(run.status, 0, "\(run)")
        XCTAssertTrue(run.lines.last?.hasSuffix(" open") ?? false, "\(run)")
    }

    func testOpenFailureThrowsItsErrno() {
        XCTAssertThrowsError(try OwnedFileDescriptor(opening: dir + "/missing", flags: O_RDONLY).rawValue) { error in
            XCTAssertEqual(error as? Errno, Errno(rawValue: ENOENT))
            XCTAssertEqual("\(error)", String(cString: strerror(ENOENT)))
        }
    }

    func testWriteAllThenReadBackAndSize() throws {
        let path = dir + "/file"
        let bytes = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let writer = try OwnedFileDescriptor(opening: path, flags: O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                                             permissions: 0o600)
        try writer.writeAll(bytes)
        try writer.synchronizeData()
        try writer.synchronize()
        XCTAssertEqual(try writer.size(), Int64(bytes.count))
        try writer.close()

        let reader = try OwnedFileDescriptor(opening: path, flags: O_RDONLY | O_CLOEXEC)
        var tail = [UInt8](repeating: 0, count: 1000)
        let n = try tail.withUnsafeMutableBytes { try reader.read(fromAbsoluteOffset: Int64(bytes.count - 600), into: $0) }
        XCTAssertEqual(n, 600)      // stops at the end of the file
        XCTAssertEqual(Array(tail[..<600]), Array(bytes.suffix(600)))
        var all: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let got = try chunk.withUnsafeMutableBytes { try reader.read(into: $0) }
            if got == 0 { break }
            all += chunk[..<got]
        }
        XCTAssertEqual(all, bytes)
    }

    /// A pipe holds 64 KiB: writing 1 MiB blocks until a reader drains it,
    /// and every byte must arrive, in order.
    func testWriteAllThroughAPipeDeliversEveryByte() throws {
        var ends: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&ends), 0)
        let readEnd = ends[0]
        let bytes = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 % 251) }
        let received = Received()
        let reading = DispatchQueue(label: "reader")
        reading.async {
            let reader = OwnedFileDescriptor(adopting: readEnd)
            var chunk = [UInt8](repeating: 0, count: 8192)
            while let n = try? chunk.withUnsafeMutableBytes({ try reader.read(into: $0) }), n > 0 {
                received.bytes.withLock { $0 += chunk[..<n] }
            }
        }
        let writer = OwnedFileDescriptor(adopting: ends[1])
        try writer.writeAll(bytes)
        try writer.close()
        reading.sync {}
        let got = received.bytes.withLock { $0 }
        XCTAssertEqual(got.count, bytes.count)
        XCTAssertTrue(got == bytes)
    }

    final class Received: Sendable {
        let bytes = Mutex<[UInt8]>([])
    }

    /// A write cut short by a file-size limit (a full disk, as the writer
    /// sees it) continues where it stopped, and the next write's EFBIG is
    /// thrown: neither "done" after 60 bytes nor a silent loop.
    func testWriteAllContinuesAfterAShortWriteAndThrowsTheNextError() throws {
        let run = try HelperProcess("descriptor-helper").run(["write-past-limit", dir + "/limited"])
        XCTAssertEqual(run.status, 0, "\(run)")
        XCTAssertEqual(run.lines, ["error \(EFBIG) size 60"], "\(run)")
    }
}
