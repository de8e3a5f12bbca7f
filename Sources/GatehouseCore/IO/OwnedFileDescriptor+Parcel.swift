#if canImport(Glibc)
import Glibc

/// A few bytes handed to a child process as a descriptor it reads to its
/// end: the host key and the configuration the monitor gives the network
/// side. A Unix stream socket pair rather than a pipe, because
/// `socketpair(2)` takes `SOCK_CLOEXEC` at birth (Swift's Glibc has no
/// `pipe2`), so no backend spawned by another thread meanwhile inherits it.
extension OwnedFileDescriptor {
    /// A descriptor from which exactly `bytes` can be read, then end of
    /// file. Written before the reader exists, so `bytes` must fit the
    /// socket's buffer (the kernel's default is over 200 KiB; the callers
    /// pass a few KiB).
    public static func parcel(_ bytes: UnsafeRawBufferPointer) throws(Errno) -> OwnedFileDescriptor {
        var ends: [Int32] = [-1, -1]
        _ = try retryingOnInterrupt { socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) }
        let reader = OwnedFileDescriptor(adopting: ends[0]), writer = OwnedFileDescriptor(adopting: ends[1])
        try writer.writeAll(bytes)
        _ = Glibc.shutdown(reader.rawValue, Int32(SHUT_WR))
        return reader
    }

    /// Reads to the end of file, at most `limit` bytes; more throws `EFBIG`.
    public func readToEnd(limit: Int) throws(Errno) -> [UInt8] {
        var result: [UInt8] = []
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
        defer { chunk.deallocate() }
        while true {
            let count = try read(into: chunk)
            if count == 0 { return result }
            guard result.count + count <= limit else { throw Errno(rawValue: EFBIG) }
            result += chunk[..<count]
        }
    }
}
#endif
