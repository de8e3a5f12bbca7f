import CmdletShell
import Foundation
import GatehouseCore
import Logging
import Lockbox
import Synchronization

/// The monitor's side of the channel: it answers the request table
/// (docs/architecture.md, "Privilege separation") for every connection of
/// the session's side, judging each request against that connection's
/// `MonitorPermits` before it acts. Everything it receives is treated as
/// hostile: a packet that does not decode, is too large, or is not allowed
/// in its connection's state is refused and audited, and the connection's
/// session is ended.
///
/// One thread reads the channel and judges requests in arrival order (a
/// connection sends one request at a time, so its state is exact); the work
/// itself (an audit sync, the Lockbox's SQLite) runs on a concurrent queue,
/// so one slow disk does not stop every connection.
final class Monitor: Sendable {
    private let gateway: GatewayContext
    private let channel: SharedPacketChannel
    private let connections = Mutex([UInt64: MonitorPermits]())
    private let work = DispatchQueue(label: "gatehouse.monitor", attributes: .concurrent)

    init(gateway: GatewayContext, channel: consuming PacketChannel) {
        self.gateway = gateway
        self.channel = SharedPacketChannel(channel)
    }

    /// Starts the reading thread; it ends when the session's side closes
    /// its end of the channel.
    func start() {
        let thread = Thread { [self] in serve() }
        thread.name = "gatehouse-monitor"
        thread.start()
    }

    private func serve() {
        while true {
            let bytes: [UInt8]
            do {
                switch try channel.receive(maxBytes: MonitorWire.maxRequestBytes, maxDescriptors: 0) {
                case .endOfStream:
                    endAll(reason: "the session process ended")
                    return
                case .packet(let packet):
                    bytes = packet.bytes
                }
            } catch {
                // An oversized packet, or descriptors where none belong: dropped
                // whole (its descriptors closed); the sender cannot be told apart.
                refused(connection: nil, request: nil, reason: "unreadable packet: \(error)")
                continue
            }
            let envelope: MonitorEnvelope<MonitorRequest>
            do {
                envelope = try MonitorWire.decode(MonitorEnvelope<MonitorRequest>.self, from: bytes)
            } catch {
                refused(connection: nil, request: nil, reason: "malformed request")
                continue
            }
            let verdict = connections.withLock { table in
                var permits = table[envelope.connection] ?? MonitorPermits()
                let verdict = permits.admit(envelope.body)
                // A session that ended normally is forgotten (the session's
                // side never reuses a connection number); a refused
                // connection stays ended, so nothing it asks is answered again.
                if case .allowed = verdict, permits.state == .ended {
                    table[envelope.connection] = nil
                } else {
                    table[envelope.connection] = permits
                }
                return verdict
            }
            switch verdict {
            case .refused(let reason):
                refused(connection: envelope.connection, request: envelope.body, reason: reason)
                reply(envelope, .refused(reason))
            case .allowed(let user, let session):
                work.async { [self] in answer(envelope, user: user, session: session) }
            }
        }
    }

    private func answer(_ envelope: MonitorEnvelope<MonitorRequest>, user: UserName, session: SessionID) {
        let lockbox = gateway.lockbox
        let now = gateway.clock.now()
        switch envelope.body {
        case .openSession:
            reply(envelope, .done)
        case .elevations:
            reply(envelope, .grants(lockbox.elevationGrants(session: session, now: now)))
        case .audit(let kind, let fields):
            reply(envelope, record(kind, user: user, session: session, fields))
        case .createTranscript:
            do {
                let file = try TranscriptFile.create(directory: gateway.configuration.transcriptDirectory, session: session)
                reply(envelope, .done, descriptor: file.rawValue)
            } catch {
                reply(envelope, .failed("\(error)"))
            }
        case .lockbox(let command, let parameters, let sensitive, let columns):
            let output = CollectedOutput(columns: columns)
            let provider = LockboxCommands(lockbox: lockbox, clock: gateway.clock, sessions: gateway.sessions)
            let claim = lockbox.claim(user: user, session: session, now: now)
            let status = provider.run(command, parameters: parameters.map(\.bound), claim: claim,
                                      output: sensitive ? SensitiveCollectedOutput(output) : output)
            reply(envelope, .lockboxOutput(output.chunks, status: status))
        case .redeem(let id, let typed):
            var secret = SecretBytes(capacity: max(typed.count, 1))
            typed.withUnsafeBytes { _ = secret.append(contentsOf: $0) }
            do {
                reply(envelope, .request(try lockbox.redeem(id: id, secret: secret, by: user, session: session).redacted))
            } catch let error as LockboxError {
                reply(envelope, .lockboxError(error))
            } catch {
                reply(envelope, .failed("\(error)"))
            }
        case .endElevations(let reason):
            reply(envelope, .requests(lockbox.endElevations(session: session, user: user, reason: reason).map(\.redacted)))
        case .sweep:
            _ = lockbox.sweep()
            reply(envelope, .done)
        case .ownRequest(let id):
            reply(envelope, .request((try? lockbox.request(id: id, visibleTo: user))?.redacted))
        case .end(let reason, let fields):
            _ = lockbox.endElevations(session: session, user: user, reason: reason)
            reply(envelope, record(.sessionEnd, user: user, session: session, fields))
        }
    }

    private func record(_ kind: AuditEventKind, user: UserName, session: SessionID,
                        _ fields: [String: String]) -> MonitorReply {
        do {
            try gateway.audit.record(AuditEvent(time: gateway.clock.now(), kind: kind, user: user.rawValue,
                                                session: session, fields: fields))
            return .done
        } catch {
            return .failed("audit log unavailable: \(error)")
        }
    }

    private func reply(_ envelope: MonitorEnvelope<MonitorRequest>, _ body: MonitorReply, descriptor: Int32? = nil) {
        do {
            let bytes = try MonitorWire.encode(MonitorEnvelope(call: envelope.call, connection: envelope.connection,
                                                               body: body))
            try channel.send(bytes, descriptors: descriptor.map { [$0] } ?? [])
        } catch {
            gateway.logger.error("monitor reply failed", metadata: ["error": "\(error)"])
        }
    }

    /// A refusal is audited with what the monitor knows of the connection,
    /// and its session ends: its grants end at once.
    private func refused(connection: UInt64?, request: MonitorRequest?, reason: String) {
        gateway.logger.warning("monitor refused a request", metadata: ["reason": "\(reason)"])
        var fields = ["reason": reason]
        if let connection { fields["connection"] = String(connection) }
        if let request { fields["request"] = request.name }
        try? gateway.audit.record(AuditEvent(time: gateway.clock.now(), kind: .monitorRefused, fields: fields))
    }

    /// The session's side is gone: every session still open ends, and its grants with it.
    private func endAll(reason: String) {
        let open = connections.withLock { table in
            defer { table.removeAll() }
            return table.values.compactMap { permits -> (UserName, SessionID)? in
                if case .inSession(let user, let session, _) = permits.state { return (user, session) }
                return nil
            }
        }
        for (user, session) in open {
            _ = gateway.lockbox.endElevations(session: session, user: user, reason: reason)
            _ = record(.sessionEnd, user: user, session: session, ["reason": "error", "detail": reason])
        }
    }
}

extension MonitorRequest {
    /// The request's name, for the audit (never its values).
    var name: String {
        switch self {
        case .openSession: "openSession"
        case .elevations: "elevations"
        case .audit: "audit"
        case .createTranscript: "createTranscript"
        case .lockbox: "lockbox"
        case .redeem: "redeem"
        case .endElevations: "endElevations"
        case .sweep: "sweep"
        case .ownRequest: "ownRequest"
        case .end: "end"
        }
    }
}

extension LockboxRequest {
    /// Without the secret's salt and hash, which stay with the monitor.
    var redacted: LockboxRequest {
        var copy = self
        copy.secretSalt = nil
        copy.secretHash = nil
        return copy
    }
}

/// A Lockbox command's output, kept in order for the reply.
final class CollectedOutput: CommandOutput {
    private(set) var chunks: [MonitorReply.OutputChunk] = []
    let terminalColumns: Int?

    init(columns: Int?) { terminalColumns = columns }

    func stdout(_ bytes: [UInt8]) { chunks.append(.stdout(bytes)) }
    func stderr(_ bytes: [UInt8]) { chunks.append(.stderr(bytes)) }
    func sensitive(_ bytes: [UInt8]) { chunks.append(.sensitive(bytes)) }
}

/// The same, when the session's output is its own terminal: only then may a
/// one-time secret be shown (`Get-LockboxCredential`).
final class SensitiveCollectedOutput: SensitiveOutput {
    let collected: CollectedOutput
    init(_ collected: CollectedOutput) { self.collected = collected }
    var terminalColumns: Int? { collected.terminalColumns }
    func stdout(_ bytes: [UInt8]) { collected.stdout(bytes) }
    func stderr(_ bytes: [UInt8]) { collected.stderr(bytes) }
    func sensitive(_ bytes: [UInt8]) { collected.sensitive(bytes) }
}

/// A `PacketChannel` shared by the threads of one side: `SOCK_SEQPACKET`
/// sends and receives are whole packets, so one reader and many senders
/// need no lock of their own.
final class SharedPacketChannel: Sendable {
    private let channel: PacketChannel

    init(_ channel: consuming PacketChannel) { self.channel = channel }

    func send(_ bytes: [UInt8], descriptors: [Int32] = []) throws(PacketChannelError) {
        try channel.send(bytes, descriptors: descriptors)
    }

    func receive(maxBytes: Int, maxDescriptors: Int) throws(PacketChannelError) -> PacketChannel.Received {
        try channel.receive(maxBytes: maxBytes, maxDescriptors: maxDescriptors)
    }
}
