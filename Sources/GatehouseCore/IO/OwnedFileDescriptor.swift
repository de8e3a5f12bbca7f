#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file descriptor with exactly one owner, closed exactly once.
///
/// A descriptor number is reused by the next `open` in any thread, so a
/// second `close` of the same number shuts a file that someone else has just
/// opened; in a daemon serving many sessions that is another session's audit
/// or transcript file. Being `~Copyable`, this type cannot be closed twice:
/// `close()` consumes it, and `deinit` closes only one that was never closed,
/// which covers every early exit, a throwing initialiser of its owner
/// included. Modelled on swift-system's `FileDescriptor` (not a dependency);
/// the `EINTR` retry loops live here and in the socket calls beside it
/// (OwnedFileDescriptor+Socket.swift), nowhere else.
public struct OwnedFileDescriptor: ~Copyable, Sendable {
    /// The descriptor number, for calls this type does not wrap (`flock`).
    /// Valid only while this value lives; never pass it to `close`.
    public let rawValue: Int32

    /// Takes ownership of `rawValue`, which nothing else may close from now on.
    public init(adopting rawValue: Int32) {
        self.rawValue = rawValue
    }

    /// `open(2)` of `path` with `flags` (add `O_CLOEXEC`) and, when `flags`
    /// holds `O_CREAT`, `permissions`; repeated on `EINTR`.
    public init(opening path: String, flags: Int32, permissions: mode_t = 0) throws(Errno) {
        let fd = try Self.retryingOnInterrupt { open(path, flags, permissions) }
        self.init(adopting: fd)
    }

    deinit {
        _ = Self.closeOnce(rawValue)
    }

    /// `close(2)`, reporting its error (a delayed write error, for example).
    /// It is called once whatever happens: `discard self` keeps `deinit` from
    /// closing the number again.
    public consuming func close() throws(Errno) {
        let fd = rawValue
        discard self
        if Self.closeOnce(fd) != 0 { throw Errno.current }
    }

    /// Gives the number up to code that closes it itself (a loop over raw
    /// descriptors, like the executor's poll set).
    public consuming func release() -> Int32 {
        let fd = rawValue
        discard self
        return fd
    }

    /// `read(2)` into `buffer`, repeated on `EINTR`; 0 means end of file.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try Self.retryingOnInterrupt { systemRead(rawValue, buffer.baseAddress, buffer.count) }
    }

    /// `pread(2)` at `offset` until `buffer` is full or the file ends;
    /// returns the number of bytes read.
    public func read(fromAbsoluteOffset offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        var done = 0
        while done < buffer.count {
            let n = try Self.retryingOnInterrupt {
                pread(rawValue, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// `write(2)` until every byte of `bytes` is written: a short write (a
    /// signal, a file-size limit) continues where it stopped, `EINTR` repeats,
    /// anything else (`ENOSPC`, `EFBIG`) throws.
    public func writeAll(_ bytes: UnsafeRawBufferPointer) throws(Errno) {
        var done = 0
        while done < bytes.count {
            done += try Self.retryingOnInterrupt {
                systemWrite(rawValue, bytes.baseAddress! + done, bytes.count - done)
            }
        }
    }

    /// `writeAll` of an array's bytes.
    public func writeAll(_ bytes: [UInt8]) throws(Errno) {
        // `withUnsafeBytes` rethrows untyped, so the error is carried out by hand.
        var failure: Errno?
        bytes.withUnsafeBytes { raw in
            do throws(Errno) { try writeAll(raw) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// `fdatasync(2)`: the data and the size are on disk, not necessarily the
    /// timestamps (what an append-only log needs before it says "recorded").
    public func synchronizeData() throws(Errno) {
        _ = try Self.retryingOnInterrupt { fdatasync(rawValue) }
    }

    /// `fsync(2)`: the data and all metadata are on disk.
    public func synchronize() throws(Errno) {
        _ = try Self.retryingOnInterrupt { fsync(rawValue) }
    }

    /// `fchmod(2)`: sets the mode of the open file itself, so no one can swap
    /// the path between the check and the change.
    public func setPermissions(_ mode: mode_t) throws(Errno) {
        _ = try Self.retryingOnInterrupt { fchmod(rawValue, mode) }
    }

    /// `fstat(2)`'s `st_size`: the file's size in bytes now.
    public func size() throws(Errno) -> Int64 {
        var st = stat()
        _ = try Self.retryingOnInterrupt { fstat(rawValue, &st) }
        return Int64(st.st_size)
    }

    /// `close(2)`, never repeated: Linux releases the number even when close
    /// reports `EINTR`, so a retry could close one another thread was just given.
    private static func closeOnce(_ fd: Int32) -> Int32 {
        systemClose(fd)
    }

    /// Calls `body` until it does not fail with `EINTR`; any other failure
    /// (a negative result) throws the `errno` it left.
    static func retryingOnInterrupt<R: BinaryInteger>(_ body: () -> R) throws(Errno) -> R {
        while true {
            let result = body()
            if result >= 0 { return result }
            let error = Errno.current
            if error != .interrupted { throw error }
        }
    }
}

// The C calls under names that the methods above do not shadow.
private func systemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int { read(fd, buffer, count) }
private func systemWrite(_ fd: Int32, _ bytes: UnsafeRawPointer?, _ count: Int) -> Int { write(fd, bytes, count) }
private func systemClose(_ fd: Int32) -> Int32 { close(fd) }
