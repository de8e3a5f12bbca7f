import GatehouseCore
import XCTest

final class SecretBytesTests: XCTestCase {
    func secret(_ text: String, capacity: Int = 16) -> SecretBytes {
        var s = SecretBytes(capacity: capacity)
        for byte in text.utf8 { XCTAssertTrue(s.append(byte)) }
        return s
    }

    /// The whole buffer, in use or not: what a wipe must have zeroed.
    func wholeBuffer(_ s: borrowing SecretBytes) -> [UInt8] {
        s.withUnsafeBytes { Array(UnsafeRawBufferPointer(start: $0.baseAddress, count: s.capacity)) }
    }

    func testRemoveLastWipesTheRemovedByte() {
        var s = secret("abc")
        s.removeLast()
        XCTAssertEqual(s.count, 2)
        XCTAssertEqual(wholeBuffer(s).prefix(4), [0x61, 0x62, 0, 0])
        s.removeLast()
        s.removeLast()
        s.removeLast()          // on an empty secret: nothing to do
        XCTAssertTrue(s.isEmpty)
        XCTAssertEqual(wholeBuffer(s), [UInt8](repeating: 0, count: 16))
    }

    func testRemoveAllWipesEverythingAndKeepsTheBuffer() {
        var s = secret("correct horse")
        s.removeAll()
        XCTAssertTrue(s.isEmpty)
        XCTAssertEqual(s.capacity, 16)
        XCTAssertEqual(wholeBuffer(s), [UInt8](repeating: 0, count: 16))
        XCTAssertTrue(s.append(0x7a))
        XCTAssertEqual(s.withUnsafeBytes { Array($0) }, [0x7a])
    }

    func testAppendStopsAtCapacityAndKeepsTheSecretAsItWas() {
        var s = secret("abc", capacity: 4)
        XCTAssertTrue(s.append(0x64))
        XCTAssertFalse(s.append(0x65))
        XCTAssertEqual(s.withUnsafeBytes { Array($0) }, Array("abcd".utf8))
    }

    func testAppendContentsAppendsAllOrNothing() {
        var s = secret("ab", capacity: 5)
        XCTAssertFalse([UInt8]("cdef".utf8).withUnsafeBytes { s.append(contentsOf: $0) })
        XCTAssertEqual(s.count, 2)
        XCTAssertTrue([UInt8]("cde".utf8).withUnsafeBytes { s.append(contentsOf: $0) })
        XCTAssertEqual(s.withUnsafeBytes { Array($0) }, Array("abcde".utf8))
    }

    func testZeroCapacityStillAllocatesOneByte() {
        var s = SecretBytes(capacity: 0)
        XCTAssertEqual(s.capacity, 1)
        XCTAssertTrue(s.append(1))
        XCTAssertFalse(s.append(2))
    }

    func testTakingFromWipesTheSource() {
        let source = UnsafeMutableRawBufferPointer.allocate(byteCount: 6, alignment: 1)
        defer { source.deallocate() }
        source.copyBytes(from: "s3cr3t".utf8)
        let s = SecretBytes(takingFrom: source)
        XCTAssertEqual(Array(source), [UInt8](repeating: 0, count: 6))
        XCTAssertEqual(s.withUnsafeBytes { Array($0) }, Array("s3cr3t".utf8))
    }

    func testConstantTimeEquals() {
        let s = secret("hunter2")
        XCTAssertTrue([UInt8]("hunter2".utf8).withUnsafeBytes { s.constantTimeEquals($0) })
        XCTAssertFalse([UInt8]("hunter3".utf8).withUnsafeBytes { s.constantTimeEquals($0) })
        XCTAssertFalse([UInt8]("Hunter2".utf8).withUnsafeBytes { s.constantTimeEquals($0) })
        XCTAssertFalse([UInt8]("hunter".utf8).withUnsafeBytes { s.constantTimeEquals($0) })
        XCTAssertFalse([UInt8]("hunter22".utf8).withUnsafeBytes { s.constantTimeEquals($0) })
        let empty = SecretBytes(capacity: 4)
        XCTAssertTrue([UInt8]().withUnsafeBytes { empty.constantTimeEquals($0) })
        XCTAssertFalse([UInt8]("a".utf8).withUnsafeBytes { empty.constantTimeEquals($0) })
    }
}
