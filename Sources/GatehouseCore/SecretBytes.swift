#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Bytes that must not outlive their use: an elevation secret as typed, a
/// private key being encoded, a TOTP seed.
///
/// `~Copyable`, so there is exactly one buffer: a `[UInt8]` or a `String`
/// would be copied on write and the copy never wiped. The buffer is zeroed
/// in `deinit` through `explicit_bzero`, a store the optimiser may not drop
/// (C11 `memset_s` has the same guarantee; glibc ships `explicit_bzero`).
/// There is deliberately no way to turn the bytes into a `String`: callers
/// read them through `withUnsafeBytes` and hash, compare or write them out.
public struct SecretBytes: ~Copyable {
    private let base: UnsafeMutableRawPointer
    /// Bytes in use; `capacity` is what is wiped.
    public private(set) var count: Int
    public let capacity: Int

    /// An empty secret that can hold up to `capacity` bytes.
    public init(capacity: Int) {
        self.capacity = max(capacity, 1)
        base = UnsafeMutableRawPointer.allocate(byteCount: self.capacity, alignment: 1)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: self.capacity)
        count = 0
    }

    /// Copies `bytes` in and wipes the caller's buffer, so the only copy left
    /// is this one. The caller must own `bytes` (a C buffer, not an array).
    public init(takingFrom bytes: UnsafeMutableRawBufferPointer) {
        self.init(capacity: bytes.count)
        if let source = bytes.baseAddress, !bytes.isEmpty {
            base.copyMemory(from: source, byteCount: bytes.count)
            explicit_bzero(source, bytes.count)
        }
        count = bytes.count
    }

    deinit {
        explicit_bzero(base, capacity)
        base.deallocate()
    }

    public var isEmpty: Bool { count == 0 }

    /// Appends one byte; returns false (and keeps the secret as it is) when full.
    @discardableResult
    public mutating func append(_ byte: UInt8) -> Bool {
        guard count < capacity else { return false }
        base.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
        return true
    }

    /// Appends bytes; returns false (and appends nothing) when they do not fit.
    @discardableResult
    public mutating func append(contentsOf bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count <= capacity - count else { return false }
        if let source = bytes.baseAddress, !bytes.isEmpty {
            (base + count).copyMemory(from: source, byteCount: bytes.count)
        }
        count += bytes.count
        return true
    }

    /// Removes the last byte (a backspace at the secret prompt) and wipes it.
    public mutating func removeLast() {
        guard count > 0 else { return }
        count -= 1
        explicit_bzero(base + count, 1)
    }

    /// Wipes the contents and keeps the buffer for reuse.
    public mutating func removeAll() {
        explicit_bzero(base, capacity)
        count = 0
    }

    /// The bytes in use, for hashing, comparing or writing out. The pointer
    /// must not escape the closure.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// Constant-time equality with `other`'s bytes (no early exit on the
    /// first difference, so timing does not tell how much of a guess matched).
    public func constantTimeEquals(_ other: UnsafeRawBufferPointer) -> Bool {
        withUnsafeBytes { mine in
            guard mine.count == other.count else { return false }
            var diff: UInt8 = 0
            for i in 0..<mine.count { diff |= mine[i] ^ other[i] }
            return diff == 0
        }
    }
}

@available(*, unavailable)
extension SecretBytes: Sendable {}

extension OwnedFileDescriptor {
    /// Reads to the end of the file into `secret`, through a read buffer that
    /// is wiped afterwards, so the bytes exist only in `secret`. Returns false,
    /// having stopped reading, when what is left does not fit in the
    /// secret's capacity (a file larger than it should be).
    public func readToEnd(into secret: inout SecretBytes) throws(Errno) -> Bool {
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
        defer {
            explicit_bzero(chunk.baseAddress!, chunk.count)
            chunk.deallocate()
        }
        while true {
            let count = try read(into: chunk)
            if count == 0 { return true }
            guard secret.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[..<count])) else { return false }
        }
    }
}
