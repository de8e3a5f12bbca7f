import CmdletPolicy
import CmdletShell
import Foundation
import GatehouseCore
import Lockbox
import Logging
import SSHServer
import Transcript

/// Everything the sessions of one daemon share: configuration, the immutable
/// policy snapshot, the directory, Lockbox, the audit sink and the
/// interpreter. Built once at start; sessions only read it.
public final class GatewayContext: @unchecked Sendable {
    public let configuration: GatewayConfiguration
    public let logger: Logger
    public let clock: Clock
    public let policy: PolicySnapshot
    public let directory: DirectoryModel
    public let lockbox: Lockbox
    public let audit: AuditSink
    let interpreter: CmdletInterpreter
    let warnings: [PolicyDiagnostic]
    /// Authorized keys per user, parsed once at load.
    private let keysByUser: [UserName: [SSHPublicKey]]
    private let shutdownLock = NSLock()
    private var shuttingDown = false

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
        policy = loaded.policy
        directory = loaded.directory
        keysByUser = loaded.keys
        warnings = loaded.warnings
        for warning in loaded.warnings { logger.warning("\(warning)") }
        audit = try JSONLinesAuditLog(path: configuration.auditLogPath)
        lockbox = try Self.makeLockbox(configuration: configuration, rules: loaded.lockboxPolicy, directory: directory,
                                       audit: audit, clock: clock, logger: logger)
        interpreter = CmdletInterpreter(audit: audit, clock: clock)
        try audit.record(AuditEvent(time: clock.now(), kind: .policyLoad, fields: [
            "policyDirectory": configuration.policyDirectory,
            "directoryFile": configuration.directoryFile,
            "cmdlets": String(policy.cmdlets.count),
            "roles": String(policy.roles.count),
            "users": String(keysByUser.count),
            "node": configuration.nodeName,
        ]))
    }

    /// The elevation workflow: rules from `<policy>/lockbox.yaml` (absent:
    /// nothing can be requested), requests in `<state>/lockbox.sqlite`.
    static func makeLockbox(configuration: GatewayConfiguration, rules: LockboxPolicy, directory: DirectoryModel,
                            audit: AuditSink, clock: Clock, logger: Logger) throws -> Lockbox {
        let store = try SQLiteLockboxStore(path: configuration.stateDirectory + "/lockbox.sqlite")
        let notifier = rules.notify.map { NotificationHookRunner(hook: $0, logger: logger) }
        return Lockbox(directory: directory, policy: rules, store: store, audit: audit, clock: clock,
                       notifier: notifier, logger: logger)
    }

    func authorizedKeys(of user: UserName) -> [SSHPublicKey]? { keysByUser[user] }

    /// Gateway-supplied template values; user, session and scope come from the claim.
    var executionContext: ExecutionContext {
        ExecutionContext(node: configuration.nodeName, stateDir: configuration.stateDirectory,
                         workingDirectory: configuration.backendWorkingDirectory)
    }

    var isShuttingDown: Bool { shutdownLock.withLock { shuttingDown } }

    func beginShutdown() { shutdownLock.withLock { shuttingDown = true } }

    /// What `--check-config` prints after a successful validation.
    public func summary() -> String {
        var lines = ["configuration OK"]
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
