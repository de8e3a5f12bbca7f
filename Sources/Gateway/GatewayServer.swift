import Foundation
import GatehouseCore
import Logging
import SSHServer
import Synchronization

/// The accept loop: one listener, one dedicated thread per connection (never
/// Swift's cooperative pool: libssh and PAM block), no process forked per
/// connection.
public final class GatewayServer: Sendable {
    private let listener: SSHListener
    private let context: GatewayContext
    /// Session threads still running: each enters before it starts and
    /// leaves as it ends, so the shutdown grace is one wait that the last
    /// one to leave ends (`waitForSessions`).
    private let liveThreads = DispatchGroup()
    /// The sessions' channel to the monitor, which holds the privileged
    /// operations (docs/architecture.md, "Privilege separation"); for now
    /// the monitor's end is served by threads of this process.
    private let monitor: MonitorClient
    /// Names each connection on the monitor's channel.
    private let connections = Atomic<UInt64>(1)

    public var boundPort: Int { listener.boundPort }
    public var hostPublicKey: SSHPublicKey { listener.hostPublicKey }

    /// `listeningSocket`: a socket systemd bound and passed (socket
    /// activation), accepted on instead of `listen` from the configuration.
    public init(context: GatewayContext, listeningSocket: Int32? = nil) throws {
        self.context = context
        let c = context.configuration
        let ssh = SSHServerConfig(
            host: c.listenHost, port: c.listenPort, hostKeyPath: c.hostKeyPath,
            hostKeyType: SSHKeyType(rawValue: c.hostKeyType) ?? .ecdsaP256,
            algorithms: c.fips ? SSHAlgorithms.fips : SSHAlgorithms.modern,
            loginGraceSeconds: c.loginGraceSeconds, maxAuthTries: c.maxAuthTries,
            maxChannelsPerConnection: c.maxChannelsPerConnection, ioTimeoutSeconds: c.ioTimeoutSeconds,
            listeningSocket: listeningSocket)
        listener = try SSHListener(config: ssh, logger: context.logger)
        let pair = try PacketChannel.pair()
        Monitor(gateway: context, channel: pair.first).start()
        monitor = MonitorClient(channel: pair.second) { [sessions = context.sessions] notice in
            switch notice {
            case .grantEnded(let session, let requestID): sessions.grantEnded(session: session, requestID: requestID)
            }
        }
    }

    /// The descriptors one more session may need besides its socket, which
    /// must be free before a connection is let in: its transcript, its wake
    /// eventfd, a PAM worker's channel, pidfd and spawn socket pair (4), and a
    /// command's backend: three pipes while it starts (6), its pidfd and the
    /// cancel pipe (3). A connection that finds fewer is refused before key
    /// exchange (`connection.refused`, reason `descriptors`) instead of
    /// failing inside PAM, where the client would hear "too many
    /// authentication failures".
    static let sessionDescriptors = 16

    /// Accepts until `beginShutdown()`; returns then.
    public func serve() {
        while !context.isShuttingDown {
            let connection: SSHConnection
            do {
                switch try listener.accept(headroom: Self.sessionDescriptors) {
                case .connection(let accepted):
                    connection = accepted
                case .outOfDescriptors(let peer):
                    refused(source: PreAuthLimits.host(of: peer), reason: "descriptors")
                    continue
                }
            } catch {
                if context.isShuttingDown { break }
                context.logger.warning("accept failed: \(error)")
                // Out of memory, or out of descriptors with the listener's
                // reserve gone elsewhere: nothing announces the end of either.
                usleep(20_000)
                continue
            }
            // Pre-auth limits are decided here, before key exchange and
            // before a thread exists: a refused connection costs one accept
            // and one close.
            let source = PreAuthLimits.host(of: connection.peerAddress)
            let verdict = context.preAuth.admit(source: source, now: Date())
            guard verdict == .admit else {
                refused(connection, source: source, verdict: verdict)
                continue
            }
            // The connection moves to its own thread and is touched only there.
            let handoff = connection.handoff()
            liveThreads.enter()
            let number = connections.wrappingAdd(1, ordering: .relaxed).oldValue
            let thread = Thread { [self, context, monitor] in
                if let connection = handoff.take() {
                    SessionRunner(connection: connection, gateway: context, monitor: monitor,
                                  monitorConnection: number).run { outcome in
                        if context.preAuth.release(source: source, outcome: outcome, now: Date()) {
                            self.penaltyStarted(source)
                        }
                    }
                }
                liveThreads.leave()
            }
            thread.name = "gatehouse-session"
            thread.stackSize = 4 << 20
            thread.start()
        }
    }

    /// Refusals are logged and audited at most once per source and reason
    /// every 10 seconds (with the count since), so a flood cannot flood the
    /// audit log.
    private let lastRefusalAudit = Mutex<[String: (at: Date, suppressed: Int)]>([:])

    private func refused(_ connection: SSHConnection, source: String, verdict: PreAuthLimits.Verdict) {
        connection.close()
        switch verdict {
        case .admit: return
        case .tooManyUnauthenticated: refused(source: source, reason: "maxUnauthenticated")
        case .tooManyFromSource: refused(source: source, reason: "maxUnauthenticatedPerSource")
        case .penalized(let remaining): refused(source: source, reason: "penalty (\(remaining)s left)")
        }
    }

    /// Logs and audits a connection closed before key exchange, rate-limited.
    private func refused(source: String, reason: String) {
        let now = Date()
        let key = source + " " + (reason.split(separator: " ").first.map(String.init) ?? reason)
        // nil: audited less than 10 s ago; this one is counted, not audited.
        let suppressed: Int? = lastRefusalAudit.withLock { table in
            if let last = table[key], now.timeIntervalSince(last.at) < 10 {
                table[key] = (last.at, last.suppressed + 1)
                return nil
            }
            let suppressed = table[key]?.suppressed ?? 0
            if table.count > 4096 { table = table.filter { now.timeIntervalSince($0.value.at) < 10 } }
            table[key] = (now, 0)
            return suppressed
        }
        guard let suppressed else { return }
        if reason == "descriptors" {
            context.logger.warning("""
                connection refused before key exchange: too few file descriptors left for a session \
                (raise LimitNOFILE, or wait for sessions to end)
                """,
                                   metadata: ["source": "\(source)", "reason": "\(reason)"])
        } else {
            context.logger.notice("connection refused before key exchange", metadata: ["source": "\(source)", "reason": "\(reason)"])
        }
        report(.connectionRefused, [
            "source": source, "reason": reason, "suppressedSinceLast": String(suppressed),
        ])
    }

    private func penaltyStarted(_ source: String) {
        context.logger.notice("source penalized after failed authentication", metadata: ["source": "\(source)"])
        report(.sourcePenalty, [
            "source": source, "minSeconds": String(context.configuration.perSourcePenaltyMin),
        ])
    }

    /// What the accept loop saw, for the monitor to audit (it has a number
    /// of its own, as a connection that ends at once).
    private func report(_ kind: AuditEventKind, _ fields: [String: String]) {
        let number = connections.wrappingAdd(1, ordering: .relaxed).oldValue
        _ = try? monitor.call(number, .preAuthAudit(kind: kind, user: nil, session: nil, fields: fields))
    }

    /// Stops accepting (`serve()` returns) and asks every session to end:
    /// each is woken through its `SessionWake`, and a backend it waits on is
    /// stopped through its cancellation flag.
    /// Safe from any thread (the signal handler calls it).
    public func beginShutdown() {
        context.beginShutdown()
        listener.close()
        context.sessions.requestEndAll(.init(reason: "shutdown", message: "The gateway is shutting down."))
    }

    /// Waits up to `grace` for every session thread to finish (each writes
    /// its `session.end` audit event first).
    public func waitForSessions(grace: TimeInterval) {
        _ = liveThreads.wait(timeout: .now() + grace)
    }
}
