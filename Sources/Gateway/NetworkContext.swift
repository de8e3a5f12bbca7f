import CmdletPolicy
import CmdletShell
import Foundation
import GatehouseCore
import Logging
import PolicyFormat
import SSHServer
import Synchronization

/// What the sessions of the network process share: configuration, the
/// policy snapshot, the node's live sessions and its pre-authentication
/// limits. Nothing privileged: no audit log, no Lockbox, no lockouts, no
/// PAM. Every one of those is the monitor's, reached through its channel
/// (docs/architecture.md, "Privilege separation").
///
/// The snapshot is this process's own load of the same files the monitor
/// loads (the policy directory and the directory file must be readable by
/// the network side's account): the interpreter judges and completes lines
/// with it, and the monitor judges every backend again with its own.
public final class NetworkContext: Sendable {
    public let configuration: GatewayConfiguration
    public let logger: Logger
    public let clock: Clock
    /// What the policy loader asks about accounts and backend files.
    let host: HostInspector
    let snapshots: SnapshotHolder
    /// Live sessions on this node (one per user by default).
    public let sessions = SessionRegistry()
    public let preAuth: PreAuthLimits
    /// `proxyProtocolFrom`, parsed once: the peers whose connections must
    /// start with a PROXY v2 header.
    public let balancers: [AddressRange]
    private let shuttingDown = Atomic<Bool>(false)
    private let auditFailure = Atomic<Bool>(false)

    /// The snapshot in force; a command or session step takes it once.
    public var snapshot: GatewaySnapshot { snapshots.snapshot }

    /// Loads and validates policy and directory (every problem reported with file:line).
    public init(configuration: GatewayConfiguration, logger: Logger, clock: Clock = SystemClock(),
                host: HostInspector = SystemHostInspector()) throws {
        self.configuration = configuration
        self.logger = logger
        self.clock = clock
        self.host = host
        // Lockbox's notification hooks run where its changes happen: in the monitor.
        snapshots = SnapshotHolder(GatewaySnapshot(try PolicyBundle.load(for: configuration, host: host),
                                                   generation: 1, notifier: nil))
        preAuth = PreAuthLimits(.init(
            maxUnauthenticated: configuration.maxUnauthenticated,
            maxUnauthenticatedPerSource: configuration.maxUnauthenticatedPerSource,
            penalties: configuration.perSourcePenalties,
            authFailPenalty: TimeInterval(configuration.perSourcePenaltyAuthFail),
            noAuthPenalty: TimeInterval(configuration.perSourcePenaltyNoAuth),
            penaltyMin: TimeInterval(configuration.perSourcePenaltyMin),
            penaltyMax: TimeInterval(configuration.perSourcePenaltyMax),
            exempt: Set(configuration.perSourcePenaltyExempt)))
        balancers = configuration.proxyProtocolRanges
    }

    /// The monitor put a new load in force: this process loads the same
    /// files. The monitor audits the reload; here a failure (a file changed
    /// again in between, or unreadable to this account) keeps the previous
    /// snapshot and is logged.
    public func reload() {
        do {
            let loaded = try PolicyBundle.load(for: configuration, host: host)
            let now = snapshots.replace(with: loaded, notifier: nil)
            // A user the new directory dropped holds no grant any more: each
            // session looks again now, not at its next event.
            sessions.wakeAll()
            logger.notice("policy reloaded", metadata: ["generation": "\(now.generation)"])
        } catch {
            let diagnostics = (error as? PolicyLoadError)?.diagnostics ?? []
            for diagnostic in diagnostics { logger.error("reload: \(diagnostic)") }
            logger.error("reload failed on the network side; keeping the previous policy and directory",
                         metadata: ["error": "\(diagnostics.isEmpty ? "\(error)" : "\(diagnostics.count) errors")"])
        }
    }

    /// Gateway-supplied template values; user, session and scope come from the claim.
    var executionContext: ExecutionContext { configuration.executionContext }

    var isShuttingDown: Bool { shuttingDown.load(ordering: .acquiring) }

    func beginShutdown() { shuttingDown.store(true, ordering: .releasing) }

    /// True once the monitor said its audit log failed: sessions end and new ones are refused.
    var auditFailed: Bool { auditFailure.load(ordering: .acquiring) }

    /// The monitor's `auditFailed` notice: every session looks now.
    func auditHasFailed() {
        auditFailure.store(true, ordering: .releasing)
        sessions.wakeAll()
    }
}

extension GatewayConfiguration {
    /// Gateway-supplied template values; user, session and scope come from the claim.
    var executionContext: ExecutionContext {
        ExecutionContext(node: nodeName, stateDir: stateDirectory, workingDirectory: backendWorkingDirectory)
    }
}
