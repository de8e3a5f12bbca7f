import CmdletPolicy
import CmdletShell
import Directory
import GatehouseCore
import Lockbox
import PolicyFormat
import SSHServer

/// Policy and directory, loaded and cross-checked together. The daemon, its
/// `--check-config` and `gatehouse policy check/test` all load through here,
/// so the offline tools judge exactly what the daemon would.
public struct PolicyBundle: Sendable {
    public let policy: PolicySnapshot
    public let directory: DirectoryModel
    /// Authorized keys per user, in the form the SSH layer compares.
    public let keys: [UserName: [SSHPublicKey]]
    /// Lint warnings from every file (errors throw instead).
    public let warnings: [PolicyDiagnostic]
    /// `<policy>/lockbox.yaml`: which roles may be requested and how.
    public let lockboxPolicy: LockboxPolicy

    /// The configuration's policy directory and directory file, with
    /// `@libexec` backends beside this binary: what both of the daemon's
    /// processes load.
    static func load(for configuration: GatewayConfiguration, host: HostInspector) throws -> PolicyBundle {
        try load(policyDirectory: configuration.policyDirectory, directoryFile: configuration.directoryFile,
                 libexecDirectory: GatewayContext.libexecDirectory(), host: host)
    }

    /// Loads everything and reports every problem of every file at once.
    /// `host` answers the loader's questions about accounts and backend
    /// files: `SystemHostInspector` in the daemon and `gatehouse policy check`.
    public static func load(policyDirectory: String, directoryFile: String, libexecDirectory: String,
                            host: HostInspector) throws -> PolicyBundle {
        var diagnostics: [PolicyDiagnostic] = []
        var policy: PolicySnapshot?
        var directory: DirectoryModel?
        do {
            policy = try PolicyLoader.load(directory: policyDirectory, libexecDirectory: libexecDirectory,
                                           reservedNames: ShellBuiltins.reservedNames + LockboxCommands.names, host: host)
        } catch let error as PolicyLoadError {
            diagnostics += error.diagnostics
        }
        do {
            directory = try DirectoryLoader.load(file: directoryFile)
        } catch let error as PolicyLoadError {
            diagnostics += error.diagnostics
        }
        var lockboxPolicy = LockboxPolicy.none
        if let policy, let directory {
            diagnostics += policy.warnings + directory.validate(knownRoles: policy.roles.map(\.name))
            do {
                lockboxPolicy = try LockboxPolicy.load(file: policyDirectory + "/lockbox.yaml", roles: policy.lockboxRoles)
            } catch let error as PolicyLoadError {
                diagnostics += error.diagnostics
            }
        }
        guard let policy, let directory, !diagnostics.contains(where: { $0.severity == .error }) else {
            throw PolicyLoadError(diagnostics: diagnostics)
        }
        var keys: [UserName: [SSHPublicKey]] = [:]
        for user in directory.users {
            keys[user.name] = user.keys.compactMap { SSHPublicKey(type: $0.type, base64: $0.base64) }
        }
        return PolicyBundle(policy: policy, directory: directory, keys: keys, warnings: diagnostics,
                            lockboxPolicy: lockboxPolicy)
    }

    /// The claim authority over this directory's baseline roles.
    public func makeLockbox() -> Lockbox { Lockbox(directory: DirectoryBaseline(directory: directory)) }
}

/// Baseline roles straight from the directory file.
struct DirectoryBaseline: BaselineRoleSource {
    let directory: DirectoryModel
    func baselineRoles(of user: UserName) -> [String]? { directory.user(named: user)?.roles }
}
