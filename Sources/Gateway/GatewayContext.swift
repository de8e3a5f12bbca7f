import CmdletPolicy
import CmdletShell
import Directory
import Foundation
import GatehouseCore
import Lockbox
import Logging
import PAMWorkers
import PolicyFormat
import SSHServer
import Synchronization
import Transcript

/// One load of everything a command is judged by: policy, directory,
/// authorized keys and the Lockbox rules. Immutable; a reload makes a new
/// one, and a command keeps the one it started with to its end.
public struct GatewaySnapshot: Sendable {
    public let bundle: PolicyBundle
    /// 1 for the start-up load, one more for each successful reload: tells
    /// which load a log line, an audit event or a test saw.
    public let generation: Int
    /// The directory and lockbox.yaml of this same load, as Lockbox reads them.
    public let lockboxRules: LockboxRules

    public var policy: PolicySnapshot { bundle.policy }
    public var directory: DirectoryModel { bundle.directory }
    public var keys: [UserName: [SSHPublicKey]] { bundle.keys }
}

/// The snapshot in force, behind one lock: a reload replaces it in one
/// store, so a reader gets all of one load or all of the next. Lockbox reads
/// its rules here too, so it can never judge by another load than the
/// command that calls it.
final class SnapshotHolder: LockboxRulesSource {
    private let current: Mutex<GatewaySnapshot>
    /// Test seam: how many times the snapshot was taken.
    let reads = Atomic<Int>(0)

    init(_ first: GatewaySnapshot) { current = Mutex(first) }

    var snapshot: GatewaySnapshot {
        reads.add(1, ordering: .relaxed)
        return current.withLock { $0 }
    }

    func currentRules() -> LockboxRules { current.withLock { $0.lockboxRules } }

    /// Puts `bundle` in force as the next generation and returns it.
    func replace(with bundle: PolicyBundle, notifier: LockboxNotifier?) -> GatewaySnapshot {
        current.withLock { old in
            old = GatewaySnapshot(bundle, generation: old.generation + 1, notifier: notifier)
            return old
        }
    }
}

extension GatewaySnapshot {
    init(_ bundle: PolicyBundle, generation: Int, notifier: LockboxNotifier?) {
        self.init(bundle: bundle, generation: generation,
                  lockboxRules: LockboxRules(directory: bundle.directory, policy: bundle.lockboxPolicy,
                                             notifier: notifier))
    }
}

/// The monitor's side of one daemon: configuration, the policy snapshot,
/// and everything privileged that the network side reaches only through the
/// monitor's channel: the audit log and its signing key, Lockbox and its
/// database, the user lockouts and PAM's worker processes. The sessions
/// themselves live in the network process (`NetworkContext`).
///
/// Policy, directory, keys and Lockbox rules travel together as one
/// immutable `GatewaySnapshot`; `reload()` (SIGHUP) swaps in a whole new
/// validated one, and a command in flight keeps the snapshot it started
/// with. Lockbox is created once (it owns the request store) and reads its
/// rules from the same holder, so it follows a reload in the same store.
public final class GatewayContext: Sendable {
    public let configuration: GatewayConfiguration
    public let logger: Logger
    public let clock: Clock
    public let audit: AuditSink
    /// The chained log behind `audit` (checkpoints, shutdown, failure state).
    let auditLog: ChainedAuditLog
    /// Held while the daemon runs: one daemon per state directory (two
    /// would fork the audit chain), and reviewer tools see a session without
    /// an end event as cut off when nobody holds it.
    private let daemonLock: DaemonLock
    /// The node's Prometheus figures, counted from the audit events written.
    public let metrics = GatewayMetrics()
    public let lockouts: UserLockouts
    /// The processes PAM runs in (`gatehouse-pam-worker` beside this binary).
    public let pamWorkers: PAMWorkerPool
    /// What the policy loader asks about accounts and backend files.
    let host: HostInspector
    let snapshots: SnapshotHolder
    /// The elevation workflow; one for the daemon's life.
    public let lockbox: Lockbox
    /// Test seam: runs right after a reload put its snapshot in force.
    let afterSwap = Mutex<(@Sendable () -> Void)?>(nil)

    /// The snapshot in force; a command or session step takes it once.
    public var snapshot: GatewaySnapshot { snapshots.snapshot }

    /// Loads and validates policy and directory (every problem reported with
    /// file:line), opens the audit log and records the policy load.
    public init(configuration: GatewayConfiguration, logger: Logger, clock: Clock = SystemClock(),
                host: HostInspector = SystemHostInspector(), shared: SharedStores? = nil) throws {
        self.configuration = configuration
        self.logger = logger
        self.clock = clock
        self.host = host
        try FileManager.default.createDirectory(atPath: configuration.stateDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let loaded = try PolicyBundle.load(for: configuration, host: host)
        snapshots = SnapshotHolder(GatewaySnapshot(loaded, generation: 1,
                                                   notifier: Self.notifier(for: loaded.lockboxPolicy, logger: logger)))
        for warning in loaded.warnings { logger.warning("\(warning)") }
        lockouts = UserLockouts(failures: configuration.userLockoutFailures,
                                window: TimeInterval(configuration.userLockoutWindowSeconds),
                                shared: shared?.lockouts, node: configuration.nodeName,
                                onSharedError: { [logger] in logger.error("\($0)") })
        // At most one conversation per unauthenticated connection, so the cap
        // is never what refuses a login; a few workers stay for the next ones.
        pamWorkers = PAMWorkerPool(executable: Self.libexecDirectory() + "/gatehouse-pam-worker",
                                   capacity: configuration.maxUnauthenticated, idleLimit: Self.idlePAMWorkers,
                                   conversationTimeout: .seconds(configuration.loginGraceSeconds), logger: logger)
        guard let lock = DaemonLock.acquire(stateDirectory: configuration.stateDirectory) else {
            throw GatewayStartupError.alreadyRunning(configuration.stateDirectory)
        }
        daemonLock = lock
        let signingKey = try AuditSigningKey.loadOrCreate(in: configuration.stateDirectory)
        auditLog = try ChainedAuditLog(path: configuration.auditLogPath, key: signingKey, clock: clock,
                                       checkpointInterval: TimeInterval(configuration.auditCheckpointSeconds))
        if auditLog.recoveredTornTail {
            logger.warning("audit log ended in a partial line (a write cut short); it was terminated and the chain continues")
        }
        audit = MeteredAuditSink(log: auditLog, metrics: metrics, afterWrite: shared?.auditWritten)
        let store = try shared?.lockbox ?? SQLiteLockboxStore(path: configuration.stateDirectory + "/lockbox.sqlite")
        lockbox = Lockbox(rules: snapshots, store: store, audit: audit, clock: clock, logger: logger,
                          node: configuration.nodeName)
        try audit.record(AuditEvent(time: clock.now(), kind: .policyLoad, fields: loadFields(loaded)))
        // Sessions live only inside this process, so a grant of this node
        // still active now was left by a daemon that died (kill -9, power
        // loss) with its session: end it. Other nodes' grants (a shared
        // store) are theirs and stay.
        let orphaned = lockbox.endElevations(ofSessionsOtherThan: [], reason: "its session ended with the previous daemon")
        if !orphaned.isEmpty {
            logger.notice("ended elevations left active by the previous daemon",
                          metadata: ["requests": "\(orphaned.map { String($0.id) }.joined(separator: ","))"])
        }
    }

    private func loadFields(_ loaded: PolicyBundle) -> [String: String] {
        [
            "policyDirectory": configuration.policyDirectory,
            "directoryFile": configuration.directoryFile,
            "cmdlets": String(loaded.policy.cmdlets.count),
            "roles": String(loaded.policy.roles.count),
            "users": String(loaded.keys.count),
            "node": configuration.nodeName,
        ]
    }

    /// SIGHUP: loads policy and directory again. On success the new snapshot
    /// replaces the old one whole, in one store (and the daemon tells the
    /// network side to load the same files); on any error the old one
    /// stays, every error is logged with file:line, and
    /// `policy.reload-failed` is audited. Returns the diagnostics (errors, or
    /// warnings on success).
    @discardableResult
    public func reload() -> (ok: Bool, diagnostics: [PolicyDiagnostic]) {
        do {
            let loaded = try PolicyBundle.load(for: configuration, host: host)
            let now = snapshots.replace(with: loaded, notifier: Self.notifier(for: loaded.lockboxPolicy, logger: logger))
            afterSwap.withLock { $0 }?()
            for warning in loaded.warnings { logger.warning("\(warning)") }
            var fields = loadFields(loaded)
            fields["reload"] = "true"
            fields["generation"] = String(now.generation)
            try? audit.record(AuditEvent(time: clock.now(), kind: .policyLoad, fields: fields))
            logger.notice("policy reloaded", metadata: ["cmdlets": "\(loaded.policy.cmdlets.count)",
                                                        "roles": "\(loaded.policy.roles.count)",
                                                        "generation": "\(now.generation)"])
            return (true, loaded.warnings)
        } catch {
            let diagnostics = (error as? PolicyLoadError)?.diagnostics ?? []
            for diagnostic in diagnostics { logger.error("reload: \(diagnostic)") }
            if diagnostics.isEmpty { logger.error("reload failed: \(error)") }
            let errors = diagnostics.filter { $0.severity == .error }
            try? audit.record(AuditEvent(time: clock.now(), kind: .policyReloadFailed, fields: [
                "errors": String(errors.count),
                "first": String(errors.prefix(5).map { "\($0)" }.joined(separator: "; ").prefix(2000)),
                "kept": "previous policy and directory",
                "node": configuration.nodeName,
            ]))
            logger.error("reload rejected; keeping the previous policy and directory", metadata: ["errors": "\(errors.count)"])
            return (false, diagnostics)
        }
    }

    static func notifier(for rules: LockboxPolicy, logger: Logger) -> LockboxNotifier? {
        rules.notify.map { NotificationHookRunner(hook: $0, logger: logger) }
    }

    /// Gateway-supplied template values; user, session and scope come from the claim.
    var executionContext: ExecutionContext { configuration.executionContext }

    /// True once an audit write failed: sessions end and new ones are refused.
    var auditFailed: Bool { auditLog.hasFailed }

    /// Signs the final checkpoint; call after the sessions have ended.
    public func closeAudit() {
        do {
            try auditLog.close()
        } catch {
            logger.error("final audit checkpoint failed: \(error)")
        }
    }

    /// Stops the Lockbox sweeper: the audit log closes soon after.
    public func beginShutdown() {
        lockbox.stopSweeping()
    }

    /// What `--check-config` prints after a successful validation.
    public static func summary(_ configuration: GatewayConfiguration, _ bundle: PolicyBundle) -> String {
        var lines = ["configuration OK"]
        let policy = bundle.policy, keysByUser = bundle.keys, warnings = bundle.warnings
        lines.append("  policy:    \(configuration.policyDirectory): \(policy.cmdlets.count) cmdlets, \(policy.roles.count) roles")
        lines.append("  directory: \(configuration.directoryFile): \(keysByUser.count) users")
        for warning in warnings { lines.append("  \(warning)") }
        return lines.joined(separator: "\n")
    }

    /// Idle PAM workers kept for the next logins (each a few MiB); a burst
    /// of logins spawns more, which end when their conversation does.
    static let idlePAMWorkers = 4

    /// Backends named `@libexec/...` live beside the daemon's own binary.
    public static func libexecDirectory() -> String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().path
    }
}

/// What a fleet's nodes share through one database, made by the daemon
/// (which links the database driver) and handed in: Gateway itself never
/// links it.
public struct SharedStores: Sendable {
    public var lockbox: LockboxStore
    public var lockouts: LockoutStore
    /// Called after each audit event is written: wakes the feeder of the
    /// shared review index, off the command's path.
    public var auditWritten: (@Sendable () -> Void)?

    public init(lockbox: LockboxStore, lockouts: LockoutStore, auditWritten: (@Sendable () -> Void)? = nil) {
        self.lockbox = lockbox
        self.lockouts = lockouts
        self.auditWritten = auditWritten
    }
}

/// Why the daemon cannot start, in words for the operator.
public struct GatewayStartupError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }

    public static func alreadyRunning(_ stateDirectory: String) -> GatewayStartupError {
        GatewayStartupError("another gatehoused is running on the state directory \(stateDirectory) "
                            + "(it holds \(DaemonLock.fileName)); one daemon per state directory")
    }
}

