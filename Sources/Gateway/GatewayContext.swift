import CmdletPolicy
import CmdletShell
import Directory
import Foundation
import GatehouseCore
import Lockbox
import Logging
import PolicyFormat
import SSHServer
import Transcript

/// Everything the sessions of one daemon share: configuration, the policy
/// snapshot, the directory, Lockbox, the audit sink and the
/// node's session limits.
///
/// Policy, directory and keys travel together as one immutable
/// `PolicyBundle` behind a lock; `reload()` (SIGHUP) swaps in a whole new
/// validated bundle, and a command in flight keeps the snapshot it started
/// with. Lockbox is created once (it owns the request store) and sees the
/// directory through `LiveDirectory`, so managers, tenants and baseline
/// roles follow a reload too, and the reload hands it the new lockbox.yaml
/// rules (with the roles' `maxDuration`).
public final class GatewayContext: @unchecked Sendable {
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
    /// Live sessions on this node (one per user by default).
    public let sessions = SessionRegistry()
    public let preAuth: PreAuthLimits
    public let lockouts: UserLockouts
    private let bundleLock = NSLock()
    private var bundle: PolicyBundle
    /// The elevation workflow; one for the daemon's life.
    public let lockbox: Lockbox
    private let liveDirectory: LiveDirectory
    private let shutdownLock = NSLock()
    private var shuttingDown = false

    /// The current snapshot; take it once per command.
    public var policy: PolicySnapshot { bundleLock.withLock { bundle.policy } }
    public var directory: DirectoryModel { bundleLock.withLock { bundle.directory } }
    private var keysByUser: [UserName: [SSHPublicKey]] { bundleLock.withLock { bundle.keys } }

    /// Loads and validates policy and directory (every problem reported with
    /// file:line), opens the audit log and records the policy load.
    public init(configuration: GatewayConfiguration, logger: Logger, clock: Clock = SystemClock()) throws {
        self.configuration = configuration
        self.logger = logger
        self.clock = clock
        try FileManager.default.createDirectory(atPath: configuration.stateDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let loaded = try PolicyBundle.load(policyDirectory: configuration.policyDirectory,
                                           directoryFile: configuration.directoryFile,
                                           libexecDirectory: Self.libexecDirectory())
        bundle = loaded
        liveDirectory = LiveDirectory(loaded.directory)
        for warning in loaded.warnings { logger.warning("\(warning)") }
        preAuth = PreAuthLimits(.init(
            maxUnauthenticated: configuration.maxUnauthenticated,
            maxUnauthenticatedPerSource: configuration.maxUnauthenticatedPerSource,
            penalties: configuration.perSourcePenalties,
            authFailPenalty: TimeInterval(configuration.perSourcePenaltyAuthFail),
            noAuthPenalty: TimeInterval(configuration.perSourcePenaltyNoAuth),
            penaltyMin: TimeInterval(configuration.perSourcePenaltyMin),
            penaltyMax: TimeInterval(configuration.perSourcePenaltyMax),
            exempt: Set(configuration.perSourcePenaltyExempt)))
        lockouts = UserLockouts(failures: configuration.userLockoutFailures,
                                window: TimeInterval(configuration.userLockoutWindowSeconds))
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
        audit = auditLog
        lockbox = try Self.makeLockbox(configuration: configuration, rules: loaded.lockboxPolicy, directory: liveDirectory,
                                       audit: audit, clock: clock, logger: logger)
        try audit.record(AuditEvent(time: clock.now(), kind: .policyLoad, fields: loadFields(loaded)))
        // Sessions live only inside this process and no other daemon uses this
        // store, so a grant still active now was left by a daemon that died
        // (kill -9, power loss) with its session: end it.
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

    /// SIGHUP: loads policy and directory again. On success the new bundle
    /// replaces the old one whole; on any error the old one stays, every
    /// error is logged with file:line, and `policy.reload-failed` is audited.
    /// Returns the diagnostics (errors, or warnings on success).
    @discardableResult
    public func reload() -> (ok: Bool, diagnostics: [PolicyDiagnostic]) {
        do {
            let loaded = try PolicyBundle.load(policyDirectory: configuration.policyDirectory,
                                               directoryFile: configuration.directoryFile,
                                               libexecDirectory: Self.libexecDirectory())
            bundleLock.withLock { bundle = loaded }
            liveDirectory.replace(with: loaded.directory)
            lockbox.replacePolicy(loaded.lockboxPolicy, notifier: Self.notifier(for: loaded.lockboxPolicy, logger: logger))
            for warning in loaded.warnings { logger.warning("\(warning)") }
            var fields = loadFields(loaded)
            fields["reload"] = "true"
            try? audit.record(AuditEvent(time: clock.now(), kind: .policyLoad, fields: fields))
            logger.notice("policy reloaded", metadata: ["cmdlets": "\(loaded.policy.cmdlets.count)",
                                                        "roles": "\(loaded.policy.roles.count)"])
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

    /// The elevation workflow: rules from `<policy>/lockbox.yaml` (absent:
    /// nothing can be requested), requests in `<state>/lockbox.sqlite`. A
    /// reload replaces the rules (and the roles' `maxDuration` they carry).
    static func makeLockbox(configuration: GatewayConfiguration, rules: LockboxPolicy, directory: LockboxDirectory,
                            audit: AuditSink, clock: Clock, logger: Logger) throws -> Lockbox {
        let store = try SQLiteLockboxStore(path: configuration.stateDirectory + "/lockbox.sqlite")
        return Lockbox(directory: directory, policy: rules, store: store, audit: audit, clock: clock,
                       notifier: notifier(for: rules, logger: logger), logger: logger)
    }

    static func notifier(for rules: LockboxPolicy, logger: Logger) -> LockboxNotifier? {
        rules.notify.map { NotificationHookRunner(hook: $0, logger: logger) }
    }

    func authorizedKeys(of user: UserName) -> [SSHPublicKey]? { keysByUser[user] }

    /// Gateway-supplied template values; user, session and scope come from the claim.
    var executionContext: ExecutionContext {
        ExecutionContext(node: configuration.nodeName, stateDir: configuration.stateDirectory,
                         workingDirectory: configuration.backendWorkingDirectory)
    }

    var isShuttingDown: Bool { shutdownLock.withLock { shuttingDown } }

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

    func beginShutdown() { shutdownLock.withLock { shuttingDown = true } }

    /// What `--check-config` prints after a successful validation.
    public static func summary(_ configuration: GatewayConfiguration, _ bundle: PolicyBundle) -> String {
        var lines = ["configuration OK"]
        let policy = bundle.policy, keysByUser = bundle.keys, warnings = bundle.warnings
        lines.append("  policy:    \(configuration.policyDirectory): \(policy.cmdlets.count) cmdlets, \(policy.roles.count) roles")
        lines.append("  directory: \(configuration.directoryFile): \(keysByUser.count) users")
        for warning in warnings { lines.append("  \(warning)") }
        return lines.joined(separator: "\n")
    }

    /// Backends named `@libexec/...` live beside the daemon's own binary.
    public static func libexecDirectory() -> String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().path
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

/// The directory as Lockbox sees it: whatever the last successful load or
/// reload produced. Each question reads one whole snapshot.
final class LiveDirectory: LockboxDirectory, @unchecked Sendable {
    private let lock = NSLock()
    private var model: DirectoryModel

    init(_ model: DirectoryModel) { self.model = model }

    func replace(with model: DirectoryModel) { lock.withLock { self.model = model } }

    private var current: DirectoryModel { lock.withLock { model } }

    func baselineRoles(of user: UserName) -> [String]? { current.baselineRoles(of: user) }
    func manager(of user: UserName) -> UserName? { current.manager(of: user) }
    func groups(of user: UserName) -> [String] { current.groups(of: user) }
    func tenant(named name: String) -> (customerLockbox: Bool, approvers: [UserName])? { current.tenant(named: name) }
    var tenantNames: [String] { current.tenantNames }
}
