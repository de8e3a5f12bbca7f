import CmdletShell
import Foundation
import GatehouseCore
import Logging
import Lockbox
import PAMWorkers
import SSHServer
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
    /// The PAM conversations in progress, by connection.
    private let conversations = Mutex([UInt64: PAMRelay]())
    /// The backends each connection's session started and has not reaped.
    private let backends = Mutex([UInt64: [Int32: LocalBackend]]())
    private let work = DispatchQueue(label: "gatehouse.monitor", attributes: .concurrent)
    /// The second factor: PAM in the gateway's worker processes (unit tests pass a fake).
    private let secondFactor: SecondFactor.Check
    /// The operator's listings waiting for the network side's answer, by query.
    private let listings = Mutex([UInt64: ListingWaiter]())
    private let nextQuery = Atomic<UInt64>(1)
    /// Said once: the network side learns of a failed audit log.
    private let auditFailureSent = Atomic<Bool>(false)
    /// Signalled when the network side has closed the channel and every
    /// session it left open has ended here (`session.end` written).
    let closed = DispatchSemaphore(value: 0)
    /// Whether the network side said it is ready (true) or ended before (false).
    private let readiness = Mutex<Bool?>(nil)
    private let readinessKnown = DispatchSemaphore(value: 0)
    /// `proxyProtocolFrom`: the only balancers an event may say a client
    /// came through (see `namesUnlistedBalancer`).
    private let balancers: [AddressRange]

    init(gateway: GatewayContext, channel: consuming PacketChannel, secondFactor: SecondFactor.Check? = nil) {
        self.gateway = gateway
        balancers = gateway.configuration.proxyProtocolRanges
        self.channel = SharedPacketChannel(channel)
        self.secondFactor = secondFactor ?? SecondFactor.pam(gateway.pamWorkers)
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
            var bytes: [UInt8]
            do {
                switch try channel.receive(maxBytes: MonitorWire.maxRequestBytes, maxDescriptors: 0) {
                case .endOfStream:
                    endAll(reason: "the session process ended")
                    startedUp(false)
                    closed.signal()
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
            if envelope.body.carriesSecret { PacketChannel.wipe(&bytes) }
            if envelope.connection == 0, case .sessionListing(let query, let sessions, let unauthenticated) = envelope.body {
                listings.withLock { $0[query] }?.deliver((sessions, unauthenticated))
                continue
            }
            if envelope.connection == 0, case .ready = envelope.body {
                startedUp(true)
                continue
            }
            let verdict = connections.withLock { table in
                var permits = table[envelope.connection] ?? MonitorPermits()
                let verdict = envelope.call == 0 && !Self.mayAskNoAnswer(envelope.body)
                    ? permits.refuse("only an event that describes may ask for no answer")
                    : Self.namesUnlistedBalancer(envelope.body, balancers)
                    ? permits.refuse("an event names a balancer that is not in proxyProtocolFrom")
                    : permits.admit(envelope.body)
                // A connection that ended normally is forgotten (the session's
                // side never reuses a connection number), and one that only
                // reported is not remembered; a refused connection stays
                // ended, so nothing it asks is answered again.
                switch (verdict, permits.state) {
                case (.refused, _): table[envelope.connection] = permits
                case (_, .ended), (_, .new): table[envelope.connection] = nil
                default: table[envelope.connection] = permits
                }
                return verdict
            }
            switch verdict {
            case .refused(let reason):
                refused(connection: envelope.connection, request: envelope.body, reason: reason)
                conversations.withLock { $0.removeValue(forKey: envelope.connection) }?.close()
                reply(envelope, .refused(reason))
            case .allowedPreAuth:
                preAuth(envelope)
            case .allowed(let user, let session) where envelope.call == 0:
                // Call 0 asks for no answer (see `mayAskNoAnswer`); written
                // here, on the reading thread, so that whatever the
                // connection asks next follows it in the log.
                if case .audit(let kind, let fields) = envelope.body {
                    _ = record(kind, user: user, session: session, fields)
                }
            case .allowed(let user, let session) where Self.answersInline(envelope.body):
                answer(envelope, user: user, session: session)
            case .allowed(let user, let session):
                work.async { [self] in answer(envelope, user: user, session: session) }
            }
        }
    }

    /// What may come as call 0, asking for no answer: an audit event that
    /// only describes (written at once and synced with the next gating one,
    /// so its writer never waited for it anyway). Everything else needs its
    /// answer, and asking without one ends the connection.
    static func mayAskNoAnswer(_ request: MonitorRequest) -> Bool {
        switch request {
        case .audit(let kind, _), .preAuthAudit(let kind, _, _, _): !kind.gatesAnAction
        default: false
        }
    }

    /// Whether an event says its client came through a balancer this node
    /// does not list. The monitor cannot read a PROXY header itself (the
    /// network side accepts and reads the sockets), so it trusts the client
    /// address the network side reports exactly as it trusted the socket's
    /// peer before balancers; what it can check is that a forwarded address
    /// is claimed only through a configured balancer, which an intact
    /// network side never breaks.
    static func namesUnlistedBalancer(_ request: MonitorRequest, _ balancers: [AddressRange]) -> Bool {
        let fields: [String: String]
        switch request {
        case .audit(_, let f), .preAuthAudit(_, _, _, let f): fields = f
        default: return false
        }
        guard let balancer = fields["balancer"] else { return false }
        return !balancers.contains(host: PreAuthLimits.host(of: balancer))
    }

    /// Requests answered on the reading thread itself: none waits on a sync,
    /// a conversation or a process (`reapBackend` could wait on a backend that
    /// runs on, and a gating audit event waits for its fdatasync), so each
    /// saves the two thread hand-offs of the work queue. A connection has at
    /// most one request in flight, so this changes no connection's order.
    static func answersInline(_ request: MonitorRequest) -> Bool {
        switch request {
        case .openSession, .elevations, .spawn, .signalBackend, .createTranscript, .ownRequest: true
        default: false
        }
    }

    // MARK: - Before authentication

    /// Runs on the reading thread: answers handed to a running conversation
    /// and a close must not wait behind other work.
    private func preAuth(_ envelope: MonitorEnvelope<MonitorRequest>) {
        switch envelope.body {
        case .pamAnswers(let answers):
            conversations.withLock { $0[envelope.connection] }?.deliver(envelope, answers: answers)
        case .closeConnection:
            conversations.withLock { $0.removeValue(forKey: envelope.connection) }?.close()
            reply(envelope, .done)
        case .publicKey(let name, let line):
            let key = SSHPublicKey(authorizedKeysLine: line)
            let user = UserName(name)
            let authorized = user.flatMap { gateway.snapshot.keys[$0] }.map { keys in key.map(keys.contains) ?? false }
                ?? false
            if let user {
                connections.withLock { table in
                    var permits = table[envelope.connection] ?? MonitorPermits()
                    permits.keyChecked(user: user, authorized: authorized)
                    if permits.state != .new { table[envelope.connection] = permits }
                }
            }
            reply(envelope, .authorized(authorized))
        case .keyboardInteractive(let name, let session, let source):
            guard let user = UserName(name) else { return reply(envelope, .refused("not a user name")) }
            let relay = PAMRelay(first: envelope)
            conversations.withLock { $0[envelope.connection] = relay }
            work.async { [self] in
                converse(user, relay: relay, connection: envelope.connection, session: session, source: source)
            }
        case .preAuthAudit(let kind, let user, let session, let fields):
            do {
                try gateway.audit.record(AuditEvent(time: gateway.clock.now(), kind: kind, user: user, session: session,
                                                    fields: fields))
                reply(envelope, .done)
            } catch {
                auditUnavailable()
                reply(envelope, .failed("audit log unavailable: \(error)"))
            }
        default:
            reply(envelope, .refused("not a request before authentication"))
        }
    }

    /// The second factor: the lockout, then PAM, whose messages go to the
    /// session's side as replies and whose answers come back as requests.
    private func converse(_ user: UserName, relay: PAMRelay, connection: UInt64, session: SessionID, source: String) {
        let outcome = SecondFactor.check(user, service: gateway.configuration.pamService,
                                         remoteHost: PreAuthLimits.host(of: source), lockouts: gateway.lockouts,
                                         clock: gateway.clock, conversation: RelayedConversation(monitor: self, relay: relay),
                                         pam: secondFactor)
        if outcome.lockedOut {
            try? gateway.audit.record(AuditEvent(time: gateway.clock.now(), kind: .userLockout, user: user.rawValue,
                                                 session: session,
                                                 fields: ["source": source, "reason": "too many failed second factors"]))
        }
        conversations.withLock { if $0[connection] === relay { $0[connection] = nil } }
        connections.withLock { $0[connection]?.conversationEnded(user: user, success: outcome.success) }
        guard let current = relay.finish() else { return }  // the connection closed meanwhile
        reply(current, .pamResult(success: outcome.success, failure: outcome.failure, notice: outcome.notice))
    }

    /// PAM's conversation, carried over the channel.
    private final class RelayedConversation: PAMConversation {
        let monitor: Monitor
        let relay: PAMRelay
        init(monitor: Monitor, relay: PAMRelay) {
            self.monitor = monitor
            self.relay = relay
        }

        func converse(_ messages: [PAMMessage]) -> [String?]? {
            guard let current = relay.current else { return nil }
            monitor.reply(current, .pamMessages(messages.map(WirePAMMessage.init)))
            return relay.awaitAnswers()
        }
    }

    // MARK: - In a session

    private func answer(_ envelope: MonitorEnvelope<MonitorRequest>, user: UserName, session: SessionID) {
        let lockbox = gateway.lockbox
        let now = gateway.clock.now()
        switch envelope.body {
        case .publicKey, .keyboardInteractive, .pamAnswers, .closeConnection, .preAuthAudit, .sessionListing, .ready:
            reply(envelope, .refused("not a request in a session"))
        case .openSession:
            reply(envelope, .done)
        case .elevations:
            reply(envelope, .grants(lockbox.elevationGrants(session: session, now: now)))
        case .audit(let kind, let fields):
            let written = record(kind, user: user, session: session, fields)
            if case .done = written, kind == .commandAllowed, let argv = fields["argv"] {
                connections.withLock { $0[envelope.connection]?.commandAudited(argv: argv) }
            }
            reply(envelope, written)
        case .spawn(let request):
            spawn(request, envelope: envelope, user: user, session: session)
        case .signalBackend(let pid, let signal):
            guard [SIGINT, SIGTERM, SIGKILL].contains(signal),
                  let backend = backends.withLock({ $0[envelope.connection]?[pid] }) else {
                return reply(envelope, .failed("no such backend of this session"))
            }
            backend.signalGroup(signal)
            reply(envelope, .done)
        case .reapBackend(let pid):
            guard let backend = backends.withLock({ $0[envelope.connection]?.removeValue(forKey: pid) }) else {
                return reply(envelope, .failed("no such backend of this session"))
            }
            reply(envelope, .exitStatus(backend.reap()))
        case .createTranscript:
            do {
                let file = try TranscriptFile.create(directory: gateway.configuration.transcriptDirectory, session: session)
                reply(envelope, .done, descriptor: file.rawValue)
            } catch {
                reply(envelope, .failed("\(error)"))
            }
        case .lockbox(let command, let parameters, let sensitive, let columns):
            let output = CollectedOutput(columns: columns)
            let provider = LockboxCommands(lockbox: lockbox, clock: gateway.clock, sessions: NoticeSender(monitor: self))
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
            stopBackends(of: envelope.connection)
            _ = lockbox.endElevations(session: session, user: user, reason: reason)
            reply(envelope, fields.map { record(.sessionEnd, user: user, session: session, $0) } ?? .done)
        }
    }

    /// Starts a backend only as the monitor's own judgement of the line
    /// allows it: under the snapshot in force and the session's claim now,
    /// the line must be allowed and give exactly the request asked for. The
    /// descriptors go to the session's side; the process stays the monitor's
    /// child, to signal and reap on the session's word, or at its end.
    private func spawn(_ request: ExecutionRequest, envelope: MonitorEnvelope<MonitorRequest>, user: UserName,
                       session: SessionID) {
        let claim = gateway.lockbox.claim(user: user, session: session, now: gateway.clock.now())
        let judged = evaluate(line: request.line, claim: claim, snapshot: gateway.snapshot.policy,
                              context: gateway.executionContext, provided: LockboxCommands.declared.map(\.definition))
        guard case .allowed(let command) = judged, command.argv == request.argv,
              command.environment == request.environment, Double(command.timeoutSeconds) == request.timeoutSeconds,
              command.outputLimit == request.outputLimit,
              request.workingDirectory == gateway.executionContext.workingDirectory else {
            refused(connection: envelope.connection, request: envelope.body,
                    reason: "the line does not allow this backend for this session now")
            return reply(envelope, .failed("the monitor does not allow this backend now"))
        }
        do {
            guard let backend = try LocalBackendLauncher().launch(request) as? LocalBackend else {
                return reply(envelope, .failed("not a local backend"))
            }
            backends.withLock { $0[envelope.connection, default: [:]][backend.pid] = backend }
            let descriptors = [backend.stdout, backend.stderr] + (backend.exit >= 0 ? [backend.exit] : [])
            reply(envelope, .spawned(pid: backend.pid), descriptors: descriptors)
            for fd in descriptors { close(fd) }
        } catch {
            reply(envelope, .failed("\(error)"))
        }
    }

    /// Backends still running when their session ends are killed with their group and reaped.
    private func stopBackends(of connection: UInt64) {
        for backend in backends.withLock({ $0.removeValue(forKey: connection) ?? [:] }).values {
            backend.signalGroup(SIGKILL)
            _ = backend.reap()
        }
    }

    private func record(_ kind: AuditEventKind, user: UserName, session: SessionID,
                        _ fields: [String: String]) -> MonitorReply {
        do {
            try gateway.audit.record(AuditEvent(time: gateway.clock.now(), kind: kind, user: user.rawValue,
                                                session: session, fields: fields))
            return .done
        } catch {
            auditUnavailable()
            return .failed("audit log unavailable: \(error)")
        }
    }

    private func reply(_ envelope: MonitorEnvelope<MonitorRequest>, _ body: MonitorReply, descriptor: Int32) {
        reply(envelope, body, descriptors: [descriptor])
    }

    /// Nothing goes back to a request sent as call 0 (it asked for no answer;
    /// call 0 is the notices' own).
    private func reply(_ envelope: MonitorEnvelope<MonitorRequest>, _ body: MonitorReply, descriptors: [Int32] = []) {
        guard envelope.call != 0 else { return }
        send(call: envelope.call, connection: envelope.connection, body, descriptors: descriptors)
    }

    private func send(call: UInt64, connection: UInt64, _ body: MonitorReply, descriptors: [Int32] = []) {
        do {
            var bytes = try MonitorWire.encode(MonitorEnvelope(call: call, connection: connection, body: body))
            if bytes.count > MonitorWire.maxReplyBytes {
                gateway.logger.error("monitor reply too large", metadata: ["bytes": "\(bytes.count)"])
                bytes = try MonitorWire.encode(MonitorEnvelope(call: call, connection: connection,
                                                               body: MonitorReply.failed("the answer is too large")))
            }
            try channel.send(bytes, descriptors: descriptors)
        } catch {
            gateway.logger.error("monitor reply failed", metadata: ["error": "\(error)"])
        }
    }

    /// Tells the session's side what it did not ask (call 0), with
    /// `descriptors` (copies travel; the caller keeps and closes its own).
    func notify(_ notice: MonitorNotice, descriptors: [Int32] = []) {
        send(call: 0, connection: 0, .notice(notice), descriptors: descriptors)
    }

    /// Once the audit log has failed for good, the network side hears it once.
    private func auditUnavailable() {
        guard gateway.auditFailed, !auditFailureSent.exchange(true, ordering: .relaxed) else { return }
        notify(.auditFailed)
    }

    /// The first word on readiness counts: `ready`, or the channel's end.
    private func startedUp(_ ready: Bool) {
        let first = readiness.withLock { known in
            defer { if known == nil { known = ready } }
            return known == nil
        }
        if first { readinessKnown.signal() }
    }

    /// Waits until the network side is confined and accepting (true), or
    /// has ended or not said so within `timeout` (false).
    func waitUntilReady(timeout: DispatchTimeInterval) -> Bool {
        guard readinessKnown.wait(timeout: .now() + timeout) == .success else { return false }
        readinessKnown.signal()
        return readiness.withLock { $0 } == true
    }

    // MARK: - For the operator (the control socket)

    /// The sessions this monitor holds open, as the network side describes
    /// them (source, idle time, a command running), and its unauthenticated
    /// connections; nil when it does not answer within `timeout`. A session
    /// the network side names but the monitor does not hold is left out.
    func liveSessions(timeout: DispatchTimeInterval) -> (sessions: [SessionRegistry.Summary], unauthenticated: Int)? {
        let query = nextQuery.wrappingAdd(1, ordering: .relaxed).oldValue
        let waiter = ListingWaiter()
        listings.withLock { $0[query] = waiter }
        defer { listings.withLock { _ = $0.removeValue(forKey: query) } }
        notify(.listSessions(query: query))
        guard waiter.ready.wait(timeout: .now() + timeout) == .success, let answer = waiter.answer else { return nil }
        let open = Set(openSessions().map { "\($0.session.rawValue) \($0.user.rawValue)" })
        return (answer.sessions.filter { open.contains("\($0.id) \($0.user)") }, max(0, answer.unauthenticated))
    }

    /// Asks the network side to end `session` with `message`; the user it
    /// belongs to, or nil when the monitor holds no such session open.
    func endSession(_ session: SessionID, message: String) -> UserName? {
        guard let user = openSessions().first(where: { $0.session == session })?.user else { return nil }
        notify(.endSession(session: session, message: message))
        return user
    }

    /// Sessions this monitor holds open (the metrics' live sessions).
    var openSessionCount: Int { openSessions().count }

    private func openSessions() -> [(user: UserName, session: SessionID)] {
        connections.withLock { table in
            table.values.compactMap { permits in
                if case .inSession(let user, let session, _, _) = permits.state { return (user, session) }
                return nil
            }
        }
    }

    /// One operator's listing, between the notice and the network side's answer.
    private final class ListingWaiter: Sendable {
        typealias Answer = (sessions: [SessionRegistry.Summary], unauthenticated: Int)
        let ready = DispatchSemaphore(value: 0)
        private let received = Mutex<Answer?>(nil)
        var answer: Answer? { received.withLock { $0 } }
        func deliver(_ answer: Answer) {
            let first = received.withLock { held in
                defer { if held == nil { held = answer } }
                return held == nil
            }
            if first { ready.signal() }
        }
    }

    /// The Lockbox commands' grant ends, as notices to the session's side.
    private struct NoticeSender: GrantEndListener {
        let monitor: Monitor
        func grantEnded(session: SessionID, requestID: Int64) {
            monitor.notify(.grantEnded(session: session, requestID: requestID))
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
                if case .inSession(let user, let session, _, _) = permits.state { return (user, session) }
                return nil
            }
        }
        for connection in backends.withLock({ Array($0.keys) }) { stopBackends(of: connection) }
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
        case .publicKey: "publicKey"
        case .keyboardInteractive: "keyboardInteractive"
        case .pamAnswers: "pamAnswers"
        case .closeConnection: "closeConnection"
        case .preAuthAudit: "preAuthAudit"
        case .openSession: "openSession"
        case .elevations: "elevations"
        case .audit: "audit"
        case .createTranscript: "createTranscript"
        case .lockbox: "lockbox"
        case .redeem: "redeem"
        case .endElevations: "endElevations"
        case .sweep: "sweep"
        case .ownRequest: "ownRequest"
        case .spawn: "spawn"
        case .signalBackend: "signalBackend"
        case .reapBackend: "reapBackend"
        case .end: "end"
        case .sessionListing: "sessionListing"
        case .ready: "ready"
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

/// One PAM conversation in progress, between the thread that runs PAM and
/// the reading thread that hands over the client's answers. `current` is
/// the request the monitor answers next (PAM's messages, or the result).
// unchecked: every field is read and written with `condition` locked.
final class PAMRelay: @unchecked Sendable {
    private let condition = NSCondition()
    private var pending: MonitorEnvelope<MonitorRequest>?
    private var answers: [String?]?
    private var delivered = false
    private var closed = false

    init(first: MonitorEnvelope<MonitorRequest>) { pending = first }

    var current: MonitorEnvelope<MonitorRequest>? { condition.withLock { closed ? nil : pending } }

    func deliver(_ envelope: MonitorEnvelope<MonitorRequest>, answers: [String?]?) {
        condition.withLock {
            pending = envelope
            self.answers = answers
            delivered = true
            condition.signal()
        }
    }

    /// The next answers; nil when the client gave up or the connection closed.
    func awaitAnswers() -> [String?]? {
        condition.withLock {
            while !delivered && !closed { condition.wait() }
            delivered = false
            defer { answers = nil }
            return closed ? nil : answers
        }
    }

    func close() {
        condition.withLock {
            closed = true
            condition.signal()
        }
    }

    /// The request to answer with the result, unless the connection closed.
    func finish() -> MonitorEnvelope<MonitorRequest>? {
        condition.withLock { closed ? nil : pending }
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
