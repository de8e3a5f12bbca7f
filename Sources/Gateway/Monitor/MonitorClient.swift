import Foundation
import GatehouseCore
import Synchronization

/// The session side's end of the monitor's channel, shared by every
/// connection: each call sends one request tagged with its call number and
/// connection, and waits for the reply with that number. One thread reads
/// the replies and hands each to its caller. When the monitor is gone every
/// call fails, at once and from then on.
final class MonitorClient: Sendable {
    private let channel: SharedPacketChannel
    private let nextCall = Atomic<UInt64>(1)
    private let state = Mutex((waiting: [UInt64: Waiter](), gone: false))

    /// One caller waiting for its reply.
    // unchecked: `reply` and `descriptor` are written by the reading thread
    // before `ready.signal()` and read by the caller only after `ready.wait()`.
    private final class Waiter: @unchecked Sendable {
        let ready = DispatchSemaphore(value: 0)
        var reply: MonitorReply?
        /// Owned: handed to the `MonitorCall`, which closes what is not taken.
        var descriptors: [Int32] = []
    }

    /// Hears the monitor's notices, on the reading thread: it must not block.
    /// It is handed this client, to answer a query with `report`, and owns
    /// the descriptors that came with the notice.
    private let notices: @Sendable (MonitorNotice, MonitorClient, [Int32]) -> Void

    /// Called once, on the reading thread, when the monitor is gone.
    private let gone: @Sendable () -> Void

    init(channel: consuming PacketChannel,
         notices: @escaping @Sendable (MonitorNotice, MonitorClient, [Int32]) -> Void = { _, _, descriptors in
             for descriptor in descriptors { close(descriptor) }
         },
         gone: @escaping @Sendable () -> Void = {}) {
        self.channel = SharedPacketChannel(channel)
        self.notices = notices
        self.gone = gone
        let thread = Thread { [self] in readReplies() }
        thread.name = "gatehouse-monitor-client"
        thread.start()
    }

    /// Sends `request` for `connection` and returns the monitor's reply and
    /// the descriptor that came with it, if any.
    func call(_ connection: UInt64, _ request: MonitorRequest) throws(MonitorCallError) -> MonitorCall {
        let number = nextCall.wrappingAdd(1, ordering: .relaxed).oldValue
        let waiter = Waiter()
        let registered = state.withLock { state -> Bool in
            guard !state.gone else { return false }
            state.waiting[number] = waiter
            return true
        }
        guard registered else { throw .monitorGone }
        var bytes: [UInt8]
        do {
            bytes = try MonitorWire.encode(MonitorEnvelope(call: number, connection: connection, body: request))
        } catch {
            state.withLock { _ = $0.waiting.removeValue(forKey: number) }
            throw .monitorGone
        }
        defer { if request.carriesSecret { PacketChannel.wipe(&bytes) } }
        do {
            try channel.send(bytes)
        } catch {
            state.withLock { _ = $0.waiting.removeValue(forKey: number) }
            if Self.peerIsGone(error) { failAll() }
            throw .monitorGone
        }
        waiter.ready.wait()
        guard let reply = waiter.reply else { throw .monitorGone }
        let call = MonitorCall(reply: reply, descriptors: waiter.descriptors)
        if case .refused(let reason) = reply { throw .refused(reason) }
        return call
    }

    /// Sends `request` for `connection` as call 0, asking for no answer: an
    /// audit event that only describes (the monitor writes it before anything
    /// the connection sends next, and refuses anything else sent so).
    func post(_ connection: UInt64, _ request: MonitorRequest) throws(MonitorCallError) {
        guard !state.withLock({ $0.gone }) else { throw .monitorGone }
        let bytes: [UInt8]
        do {
            bytes = try MonitorWire.encode(MonitorEnvelope(call: 0, connection: connection, body: request))
        } catch {
            throw .monitorGone
        }
        do {
            try channel.send(bytes)
        } catch {
            if Self.peerIsGone(error) { failAll() }
            throw .monitorGone
        }
    }

    /// Sends the network side's own `request` on connection 0 as call
    /// `call` (the query it answers), and waits for nothing.
    func report(_ request: MonitorRequest, call: UInt64) {
        guard let bytes = try? MonitorWire.encode(MonitorEnvelope(call: call, connection: 0, body: request)) else { return }
        try? channel.send(bytes)
    }

    private func readReplies() {
        while true {
            var packet: PacketChannel.Packet
            do {
                switch try channel.receive(maxBytes: MonitorWire.maxReplyBytes, maxDescriptors: 3) {
                case .endOfStream: return failAll()
                case .packet(let received): packet = received
                }
            } catch {
                return failAll()
            }
            guard let envelope = try? MonitorWire.decode(MonitorEnvelope<MonitorReply>.self, from: packet.bytes) else {
                return failAll()
            }
            if envelope.call == 0, case .notice(let notice) = envelope.body {
                var descriptors: [Int32] = []
                while let descriptor = packet.descriptors.take() { descriptors.append(descriptor.release()) }
                notices(notice, self, descriptors)
                continue
            }
            guard let waiter = state.withLock({ $0.waiting.removeValue(forKey: envelope.call) }) else {
                // A reply this side cannot read or did not ask for: the
                // channel can no longer be trusted to pair replies.
                return failAll()
            }
            waiter.reply = envelope.body
            while let descriptor = packet.descriptors.take() { waiter.descriptors.append(descriptor.release()) }
            waiter.ready.signal()
        }
    }

    /// A send that failed because the monitor's end is closed: the reading
    /// thread may not have seen the end yet.
    private static func peerIsGone(_ error: PacketChannelError) -> Bool {
        if case .system(let errno) = error { return errno.rawValue == EPIPE || errno.rawValue == ECONNRESET }
        return false
    }

    /// The channel is over (its end, an unreadable reply, a failed send).
    /// `gone` runs first, under the lock, before any caller can hear that
    /// the monitor is gone: in the daemon it ends the process there, so no
    /// session ends "cleanly" afterwards (a transcript's end marker, a
    /// closing message) for an end the monitor never saw. Where `gone`
    /// returns (tests), the waiters then fail. Idempotent.
    private func failAll() {
        let waiters = state.withLock { state -> [Waiter] in
            guard !state.gone else { return [] }
            gone()
            state.gone = true
            defer { state.waiting.removeAll() }
            return Array(state.waiting.values)
        }
        for waiter in waiters { waiter.ready.signal() }
    }
}

/// A reply, with the descriptors that came with it (a transcript, a backend's pipes).
struct MonitorCall: ~Copyable {
    let reply: MonitorReply
    /// Owned until taken; the rest are closed with the call.
    private var descriptors: [Int32]

    init(reply: MonitorReply, descriptors: [Int32]) {
        self.reply = reply
        self.descriptors = descriptors
    }

    deinit {
        for descriptor in descriptors { _ = OwnedFileDescriptor(adopting: descriptor) }
    }

    /// The next descriptor that came with the reply, now the caller's.
    mutating func takeDescriptor() -> OwnedFileDescriptor? {
        descriptors.isEmpty ? nil : OwnedFileDescriptor(adopting: descriptors.removeFirst())
    }
}

enum MonitorCallError: Error, Equatable, CustomStringConvertible {
    /// The monitor closed the channel, or its replies no longer pair with requests.
    case monitorGone
    /// The monitor refused the request (the session has ended on its side).
    case refused(String)
    /// The monitor answered with something this request does not expect.
    case unexpectedReply

    var description: String {
        switch self {
        case .monitorGone: "the monitor is gone"
        case .refused(let reason): "the monitor refused: \(reason)"
        case .unexpectedReply: "the monitor's reply does not fit the request"
        }
    }
}
