#if canImport(Glibc)
import Glibc

/// The one framing for every local process boundary (the PAM workers, the
/// monitor): an `AF_UNIX` `SOCK_SEQPACKET` socket, where the kernel keeps
/// each message whole and in order, so no length prefix can be forged or
/// desynchronised, and descriptors travel with the message they belong to
/// (`SCM_RIGHTS`).
///
/// What arrives is untrusted: a packet larger than the receiver's limit or
/// with more descriptors than it allowed is an error, and every descriptor
/// that did arrive is closed, never leaked. An empty packet cannot be told
/// from the peer's end (both read as 0 bytes), so `send` refuses one and
/// `receive` takes one as the end.
public struct PacketChannel: ~Copyable, Sendable {
    /// The socket, owned: closing it is what the peer sees as the end.
    public let descriptor: OwnedFileDescriptor

    /// Takes ownership of `descriptor`, a `SOCK_SEQPACKET` socket (one end of
    /// `pair()` inherited by a child, for example).
    public init(adopting descriptor: consuming OwnedFileDescriptor) {
        self.descriptor = descriptor
    }

    /// `socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC)`: two connected
    /// ends. Close-on-exec, so a spawned process holds only the end it was
    /// given on purpose (by a `dup2` file action).
    public static func pair() throws(PacketChannelError) -> Pair {
        var fds: [Int32] = [-1, -1]
        let type = Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        do {
            _ = try OwnedFileDescriptor.retryingOnInterrupt { socketpair(AF_UNIX, type, 0, &fds) }
        } catch {
            throw .system(error)
        }
        return Pair(first: PacketChannel(adopting: OwnedFileDescriptor(adopting: fds[0])),
                    second: PacketChannel(adopting: OwnedFileDescriptor(adopting: fds[1])))
    }

    /// The two ends of `pair()` (a tuple cannot hold a noncopyable value);
    /// take each with `let end = pair.first`.
    @frozen public struct Pair: ~Copyable, Sendable {
        public var first: PacketChannel
        public var second: PacketChannel
    }

    /// `sendmsg(2)` of `bytes` as one packet, with `descriptors` (which stay
    /// the caller's: the peer receives duplicates) as `SCM_RIGHTS`, and
    /// `MSG_NOSIGNAL`, so a peer that is gone is `EPIPE`, not a `SIGPIPE`
    /// that ends this process. `EINTR` repeats.
    public func send(_ bytes: [UInt8], descriptors: [Int32] = []) throws(PacketChannelError) {
        guard !bytes.isEmpty else { throw .emptyPacket }
        let controlLength = descriptors.isEmpty ? 0 : Self.controlSpace(descriptors: descriptors.count)
        let control = UnsafeMutableRawPointer.allocate(byteCount: max(controlLength, 1),
                                                       alignment: MemoryLayout<cmsghdr>.alignment)
        defer { control.deallocate() }
        if controlLength > 0 {
            control.initializeMemory(as: UInt8.self, repeating: 0, count: controlLength)
            let header = control.bindMemory(to: cmsghdr.self, capacity: 1)
            header.pointee.cmsg_len = Self.controlLength(descriptors: descriptors.count)
            header.pointee.cmsg_level = SOL_SOCKET
            header.pointee.cmsg_type = Int32(SCM_RIGHTS)
            descriptors.withUnsafeBytes { raw in
                (control + Self.headerSpace).copyMemory(from: raw.baseAddress!, byteCount: raw.count)
            }
        }
        // sendmsg only reads the buffer; no copy is made, so a secret in
        // `bytes` has no second copy for its owner to miss when wiping.
        _ = try bytes.withUnsafeBytes { raw in
            Result { () throws(PacketChannelError) in
                try transfer(UnsafeMutableRawBufferPointer(mutating: raw), control: control,
                             controlLength: controlLength) { fd, message in
                    sendmsg(fd, message, Int32(MSG_NOSIGNAL))
                }
            }
        }.get()
    }

    /// `recvmsg(2)` of the next packet, with `MSG_CMSG_CLOEXEC` so received
    /// descriptors never reach a spawned process by accident; `EINTR`
    /// repeats. Throws `.oversized` for a packet longer than `maxBytes`
    /// (`MSG_TRUNC`: its tail is gone) and `.unexpectedDescriptors` for more
    /// than `maxDescriptors` descriptors (`MSG_CTRUNC`); in both cases, and
    /// at the end, the descriptors that did arrive are closed.
    public func receive(maxBytes: Int, maxDescriptors: Int = 0) throws(PacketChannelError) -> Received {
        precondition(maxBytes > 0 && maxDescriptors >= 0)
        // Not zero-filled: the kernel writes what it receives, and only those
        // bytes are kept (copied out at their size, so a small packet does not
        // hold the whole limit).
        var bytes = [UInt8](unsafeUninitializedCapacity: maxBytes) { _, initialized in initialized = maxBytes }
        let controlLength = maxDescriptors == 0 ? 0 : Self.controlSpace(descriptors: maxDescriptors)
        let control = UnsafeMutableRawPointer.allocate(byteCount: max(controlLength, 1),
                                                       alignment: MemoryLayout<cmsghdr>.alignment)
        defer { control.deallocate() }
        control.initializeMemory(as: UInt8.self, repeating: 0, count: max(controlLength, 1))
        let (count, flags, filledControl) = try bytes.withUnsafeMutableBytes { raw in
            Result { () throws(PacketChannelError) in
                try transfer(raw, control: control, controlLength: controlLength) { fd, message in
                    recvmsg(fd, message, Int32(MSG_CMSG_CLOEXEC))
                }
            }
        }.get()
        // Owned before anything is judged, so that every way out closes them.
        let descriptors = ReceivedDescriptors(Self.descriptors(in: control, length: filledControl))
        if flags & Int32(MSG_TRUNC) != 0 { throw .oversized(limit: maxBytes) }
        if flags & Int32(MSG_CTRUNC) != 0 { throw .unexpectedDescriptors(limit: maxDescriptors) }
        if count == 0 { return .endOfStream }
        return .packet(Packet(bytes: Array(bytes[..<count]), descriptors: descriptors))
    }

    /// `poll(2)` for input until `deadline`: true when `receive` will not
    /// block (a packet or the end is there), false when the deadline passed
    /// first. `EINTR` repeats with the time that is left.
    public func waitForInput(until deadline: ContinuousClock.Instant) throws(PacketChannelError) -> Bool {
        var entry = pollfd(fd: descriptor.rawValue, events: Int16(POLLIN), revents: 0)
        do {
            let ready = try OwnedFileDescriptor.retryingOnInterrupt {
                let left = ContinuousClock.now.duration(to: deadline)
                let milliseconds = left <= .zero ? 0 : min(left.components.seconds * 1000
                    + left.components.attoseconds / 1_000_000_000_000_000 + 1, Int64(Int32.max))
                return poll(&entry, 1, Int32(milliseconds))
            }
            return ready > 0
        } catch {
            throw .system(error)
        }
    }

    /// Calls `call` (`sendmsg` or `recvmsg`) with a `msghdr` of one buffer
    /// and the control area, repeated on `EINTR` with the header as it was
    /// (`recvmsg` rewrites `msg_controllen`). Returns the call's result and
    /// the header's `msg_flags` and `msg_controllen` after it.
    private func transfer(_ buffer: UnsafeMutableRawBufferPointer, control: UnsafeMutableRawPointer,
                          controlLength: Int, _ call: (Int32, UnsafeMutablePointer<msghdr>) -> Int)
        throws(PacketChannelError) -> (count: Int, flags: Int32, controlLength: Int) {
        var vector = iovec(iov_base: buffer.baseAddress, iov_len: buffer.count)
        var message = msghdr()
        var result: Result<Int, Errno> = .success(0)
        withUnsafeMutablePointer(to: &vector) { vectorPointer in
            result = Result { () throws(Errno) in
                try OwnedFileDescriptor.retryingOnInterrupt {
                    message = msghdr()
                    message.msg_iov = vectorPointer
                    message.msg_iovlen = 1
                    message.msg_control = controlLength > 0 ? control : nil
                    message.msg_controllen = controlLength
                    return call(descriptor.rawValue, &message)
                }
            }
        }
        switch result {
        case .success(let count): return (count, message.msg_flags, message.msg_controllen)
        case .failure(let error): throw .system(error)
        }
    }

    /// Zeroes a packet that held a secret (PAM answers, a one-time secret),
    /// sent or received, with `explicit_bzero`, which the optimiser may not
    /// drop, so it does not linger in freed memory.
    public static func wipe(_ packet: inout [UInt8]) {
        packet.withUnsafeMutableBytes { raw in
            if let base = raw.baseAddress { explicit_bzero(base, raw.count) }
        }
    }

    /// One packet as it arrived. `bytes` is mutable so that a receiver can
    /// wipe a secret in place (`wipe`) once it has decoded it.
    public struct Packet: ~Copyable {
        public var bytes: [UInt8]
        public var descriptors: ReceivedDescriptors
    }

    /// What `receive` read: a packet, or the peer's end (it closed its socket
    /// or exited).
    public enum Received: ~Copyable {
        case packet(Packet)
        case endOfStream
    }

    /// `CMSG_ALIGN(sizeof(struct cmsghdr))`: where a control message's data starts.
    private static let headerSpace = align(MemoryLayout<cmsghdr>.size)

    /// `CMSG_ALIGN`, which Swift does not import (a macro).
    private static func align(_ length: Int) -> Int {
        let unit = MemoryLayout<Int>.size
        return (length + unit - 1) & ~(unit - 1)
    }

    /// `CMSG_LEN(count * sizeof(int))`.
    private static func controlLength(descriptors count: Int) -> Int {
        headerSpace + count * MemoryLayout<Int32>.size
    }

    /// `CMSG_SPACE(count * sizeof(int))`.
    private static func controlSpace(descriptors count: Int) -> Int {
        headerSpace + align(count * MemoryLayout<Int32>.size)
    }

    /// Every descriptor in the `SCM_RIGHTS` messages of the control data
    /// (`CMSG_FIRSTHDR`/`CMSG_NXTHDR` walked by hand, being macros).
    private static func descriptors(in control: UnsafeMutableRawPointer, length: Int) -> [Int32] {
        var found: [Int32] = []
        var offset = 0
        while offset + MemoryLayout<cmsghdr>.size <= length {
            let header = control.load(fromByteOffset: offset, as: cmsghdr.self)
            let messageLength = Int(header.cmsg_len)
            guard messageLength >= headerSpace, offset + messageLength <= length else { break }
            if header.cmsg_level == SOL_SOCKET, header.cmsg_type == Int32(SCM_RIGHTS) {
                let count = (messageLength - headerSpace) / MemoryLayout<Int32>.size
                for i in 0..<count {
                    found.append(control.loadUnaligned(fromByteOffset: offset + headerSpace + i * 4, as: Int32.self))
                }
            }
            offset += align(messageLength)
        }
        return found
    }
}

/// The descriptors that came with one packet. Each is owned: those the
/// receiver does not `take` are closed (through `OwnedFileDescriptor`) when
/// this value goes, so a descriptor a hostile peer pushed along cannot pile up.
public struct ReceivedDescriptors: ~Copyable, Sendable {
    private var numbers: [Int32]

    init(_ numbers: [Int32]) { self.numbers = numbers }

    deinit {
        for number in numbers { _ = OwnedFileDescriptor(adopting: number) }
    }

    /// How many are left to take.
    public var count: Int { numbers.count }

    /// The first descriptor left, now owned by the caller; nil when none is left.
    public mutating func take() -> OwnedFileDescriptor? {
        numbers.isEmpty ? nil : OwnedFileDescriptor(adopting: numbers.removeFirst())
    }
}

/// Why a packet could not be sent or received.
public enum PacketChannelError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A packet longer than the receiver's limit; its tail was discarded.
    case oversized(limit: Int)
    /// More descriptors than the receiver allowed (`MSG_CTRUNC`).
    case unexpectedDescriptors(limit: Int)
    /// `send` of no bytes, which the peer could not tell from the end.
    case emptyPacket
    /// The system call failed (`EPIPE`: the peer is gone).
    case system(Errno)

    public var description: String {
        switch self {
        case .oversized(let limit): "packet longer than \(limit) bytes"
        case .unexpectedDescriptors(let limit): "packet with more than \(limit) descriptors"
        case .emptyPacket: "empty packet"
        case .system(let errno): "\(errno)"
        }
    }
}
#endif
