import ConsoleCore
import Foundation
import GatehouseCore
import Synchronization

/// The web process's end of the monitor's web channel: each call sends one
/// request with its number and suspends until the reply with that number
/// arrives (one reading thread hands replies to their callers). When the
/// monitor is gone the process exits: it has nothing to answer with.
final class MonitorLink: Sendable {
    /// `SOCK_SEQPACKET` sends and receives are whole packets: one reader
    /// thread and many senders need no lock.
    private let channel: PacketChannel
    private let nextCall = Atomic<UInt64>(1)
    private let waiting = Mutex([UInt64: CheckedContinuation<WebReply, Never>]())

    init(descriptor: Int32) {
        channel = PacketChannel(adopting: OwnedFileDescriptor(adopting: descriptor))
    }

    func start() {
        let thread = Thread { [self] in readReplies() }
        thread.name = "gatehouse-web-monitor-link"
        thread.start()
    }

    private func readReplies() {
        while true {
            let bytes: [UInt8]
            do {
                switch try channel.receive(maxBytes: WebWire.maxMessageBytes, maxDescriptors: 0) {
                case .endOfStream:
                    FileHandle.standardError.write(Data("gatehouse-web: the monitor is gone; exiting\n".utf8))
                    exit(0)
                case .packet(let packet): bytes = packet.bytes
                }
            } catch {
                continue
            }
            guard let envelope = try? WebWire.decode(WebEnvelope<WebReply>.self, from: bytes) else { continue }
            waiting.withLock { $0.removeValue(forKey: envelope.call) }?.resume(returning: envelope.body)
        }
    }

    /// Sends `request` and returns the monitor's reply.
    func call(_ request: WebRequest) async -> WebReply {
        let number = nextCall.wrappingAdd(1, ordering: .relaxed).oldValue
        guard let bytes = try? WebWire.encode(WebEnvelope(call: number, body: request)),
              bytes.count <= WebWire.maxMessageBytes else {
            return .failed("The request is too large.")
        }
        return await withCheckedContinuation { continuation in
            waiting.withLock { $0[number] = continuation }
            if (try? channel.send(bytes)) == nil {
                waiting.withLock { $0.removeValue(forKey: number) }?.resume(returning: .failed("The gateway is unavailable."))
            }
        }
    }
}

struct WebStartError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
