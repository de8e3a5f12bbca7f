import Foundation
import GatehouseCore
import Logging
import SSHServer
import Synchronization

/// The network side's accept loop: one listener, one dedicated thread per
/// connection (never Swift's cooperative pool: libssh and PAM block), no
/// process forked per connection. Runs in the unprivileged network process;
/// everything privileged is asked of the monitor over its channel.
public final class GatewayServer: Sendable {
    private let listener: SSHListener
    private let context: NetworkContext
    /// Session threads still running: each enters before it starts and
    /// leaves as it ends, so the shutdown grace is one wait that the last
    /// one to leave ends (`waitForSessions`).
    private let liveThreads = DispatchGroup()
    /// The sessions' channel to the monitor, which holds the privileged
    /// operations (docs/architecture.md, "Privilege separation").
    private let monitor: MonitorClient
    /// Names each connection on the monitor's channel (0 is this process's own).
    private let connections = Atomic<UInt64>(1)

    /// `listeningSocket`: the socket the monitor bound or systemd passed,
    /// accepted on (this process never binds); `hostKey`: a descriptor
    /// holding the private host key's text (this process never opens the
    /// key file); `monitorChannel`: this process's end of the monitor's
    /// channel. The server owns all three from here on.
    public init(context: NetworkContext, listeningSocket: Int32, hostKey: Int32,
                monitorChannel: consuming PacketChannel) throws {
        self.context = context
        var ssh = context.configuration.sshServer
        ssh.listeningSocket = listeningSocket
        ssh.hostKeyDescriptor = hostKey
        listener = try SSHListener(config: ssh, logger: context.logger)
        // The monitor's notices that take time (a reload, a listing) run
        // here, off the channel's reading thread.
        let work = DispatchQueue(label: "gatehouse.notices")
        monitor = MonitorClient(channel: monitorChannel, notices: { notice, monitor, descriptors in
            Self.heard(notice, context: context, monitor: monitor, descriptors: descriptors, work: work)
        }, gone: {
            // Without the monitor nothing can be authorised or recorded, and
            // the sessions' ends are the monitor's to write: this process
            // ends at once, as a daemon killed outright would, and a monitor
            // that is still alive starts the next one.
            context.logger.critical("the monitor's channel ended; the network side exits")
            _exit(70)
        })
    }

    /// A notice from the monitor, on the channel's reading thread: what is
    /// quick is done here, the rest on `work`.
    private static func heard(_ notice: MonitorNotice, context: NetworkContext, monitor: MonitorClient,
                              descriptors: [Int32], work noticeWork: DispatchQueue) {
        let sessions = context.sessions
        if case .reload = notice {} else {
            for descriptor in descriptors { close(descriptor) }
        }
        switch notice {
        case .grantEnded(let session, let requestID):
            sessions.grantEnded(session: session, requestID: requestID)
        case .endSession(let session, let message):
            _ = sessions.requestEnd(session, .init(reason: "killed", message: message))
        case .auditFailed:
            context.logger.critical("the monitor's audit log failed; sessions end and new ones are refused")
            context.auditHasFailed()
        case .reload:
            // The policy directory and the directory file, opened again by
            // the monitor: they take the places the configuration reads.
            noticeWork.async {
                let places = [NetworkSide.Descriptor.policyDirectory, NetworkSide.Descriptor.directoryFile]
                defer { for descriptor in descriptors { close(descriptor) } }
                guard descriptors.count == places.count,
                      zip(descriptors, places).allSatisfy({ dup2($0, $1) == $1 }) else {
                    return context.logger.error("reload notice without the policy's descriptors; keeping the policy")
                }
                context.reload()
            }
        case .listSessions(let query):
            noticeWork.async {
                monitor.report(.sessionListing(query: query, sessions: sessions.list(),
                                               unauthenticated: context.preAuth.unauthenticatedCount), call: query)
            }
        }
    }

    /// The descriptors one more session may need in this process besides its
    /// socket, which must be free before a connection is let in: its
    /// transcript and the backend's stdout, stderr and pidfd (all handed
    /// over by the monitor), its wake eventfd and the cancel pipe, with room
    /// to spare for libssh and a reply's descriptors in flight. A connection
    /// that finds fewer is refused before key exchange (`connection.refused`,
    /// reason `descriptors`) instead of failing later, where the client
    /// would hear "too many authentication failures".
    static let sessionDescriptors = 16

    /// Accepts until `beginShutdown()`; returns then. The monitor hears
    /// first that this process is ready (confined: call it after the sandbox).
    public func serve() {
        monitor.report(.ready, call: 0)
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
            // and one close. A connection from a balancer is counted in the
            // total only until its PROXY header, read on its own thread,
            // names the client whose limits then apply (`forwarded`).
            let peer = PreAuthLimits.host(of: connection.peerAddress)
            let fromBalancer = !context.balancers.isEmpty && context.balancers.contains(host: peer)
            let verdict = fromBalancer ? context.preAuth.admitFromBalancer(peer, now: Date())
                                       : context.preAuth.admit(source: peer, now: Date())
            guard verdict == .admit else {
                refused(connection, source: peer, verdict: verdict)
                continue
            }
            // The connection moves to its own thread and is touched only there.
            let handoff = connection.handoff()
            liveThreads.enter()
            let number = connections.wrappingAdd(1, ordering: .relaxed).oldValue
            let thread = Thread { [self, context, monitor] in
                if let connection = handoff.take(),
                   let source = fromBalancer ? self.forwarded(connection, balancer: peer) : peer {
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

    /// The most a balancer's connection may take to deliver its PROXY header
    /// (HAProxy sends it with the connection's first bytes), and to close
    /// after a LOCAL one; `loginGraceTime` when that is shorter.
    static let proxyHeaderSeconds = 5

    /// On the connection's own thread, for a connection from a configured
    /// balancer (`proxyProtocolFrom`): reads its PROXY v2 header under a
    /// deadline and admits the client it names, whose address the session
    /// then carries everywhere (audit, registry, transcript, penalties).
    /// Returns the source to release at the end, or nil when the connection
    /// was closed here: a missing, malformed, truncated or late header
    /// (refused, audited, and penalized against the balancer's address: the
    /// only one there is), a client serving a penalty or over its cap, or
    /// the balancer's health check (LOCAL, then the end: closed quietly, no
    /// audit, no penalty). LOCAL followed by data is the balancer's own
    /// connection, under the balancer's address.
    private func forwarded(_ connection: SSHConnection, balancer: String) -> String? {
        let seconds = min(context.configuration.loginGraceSeconds, Self.proxyHeaderSeconds)
        let header: ProxyHeader
        do {
            header = try connection.readProxyHeader(within: seconds)
        } catch {
            connection.close()
            let penalized = context.preAuth.releaseFromBalancer(balancer, outcome: .authFailed, now: Date())
            refused(source: balancer, reason: "proxyHeader", detail: "\(error)")
            if penalized { penaltyStarted(balancer) }
            return nil
        }
        let source: String
        switch header {
        case .local:
            if connection.peerClosedQuietly(within: seconds) {
                connection.close()
                context.preAuth.releaseFromBalancer(balancer, outcome: nil, now: Date())
                return nil
            }
            source = balancer
        case .proxied:
            source = PreAuthLimits.host(of: connection.peerAddress)
        }
        let verdict = context.preAuth.admitForwarded(source: source, now: Date())
        guard verdict == .admit else {
            refused(connection, source: source, verdict: verdict, balancer: connection.balancerAddress)
            return nil
        }
        return source
    }

    /// Refusals are logged and audited at most once per source and reason
    /// every 10 seconds (with the count since), so a flood cannot flood the
    /// audit log.
    private let lastRefusalAudit = Mutex<[String: (at: Date, suppressed: Int)]>([:])

    private func refused(_ connection: SSHConnection, source: String, verdict: PreAuthLimits.Verdict,
                         balancer: String? = nil) {
        connection.close()
        switch verdict {
        case .admit: return
        case .tooManyUnauthenticated: refused(source: source, reason: "maxUnauthenticated", balancer: balancer)
        case .tooManyFromSource: refused(source: source, reason: "maxUnauthenticatedPerSource", balancer: balancer)
        case .penalized(let remaining): refused(source: source, reason: "penalty (\(remaining)s left)", balancer: balancer)
        }
    }

    /// Logs and audits a connection closed before key exchange, rate-limited.
    /// `detail`: what went wrong (a PROXY header's fault); `balancer`: the
    /// balancer a forwarded client came through.
    private func refused(source: String, reason: String, detail: String? = nil, balancer: String? = nil) {
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
        } else if let detail {
            context.logger.warning("connection from a balancer refused: its PROXY protocol v2 header is required and was bad",
                                   metadata: ["source": "\(source)", "reason": "\(reason)", "detail": "\(detail)",
                                              "suppressedSinceLast": "\(suppressed)"])
        } else {
            context.logger.notice("connection refused before key exchange", metadata: ["source": "\(source)", "reason": "\(reason)"])
        }
        var fields = ["source": source, "reason": reason, "suppressedSinceLast": String(suppressed)]
        if let detail { fields["detail"] = detail }
        if let balancer { fields["balancer"] = balancer }
        report(.connectionRefused, fields)
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
        try? monitor.post(number, .preAuthAudit(kind: kind, user: nil, session: nil, fields: fields))
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
