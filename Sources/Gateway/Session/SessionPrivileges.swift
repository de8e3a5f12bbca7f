import CmdletShell
import Foundation
import GatehouseCore
import Lockbox
import Transcript

/// What an authenticated session asks of the privileged side, and nothing
/// more: its claim and elevations, the Lockbox commands, the audit log, its
/// transcript file and the backend spawner. Every call acts for the one user
/// and session the value was made for; the caller cannot name another.
///
/// This is the session half of the monitor's request table (issue 11, see
/// docs/architecture.md, "Privilege separation"). `LocalSessionPrivileges`
/// answers inside the daemon's process today. Under privilege separation the
/// monitor answers the same calls over its socket, and the session code
/// (`SessionRunner`, `CommandStep`) stays as it is: it holds no Lockbox,
/// audit log or store of its own, only this.
protocol SessionPrivileges: AnyObject {
    /// Appends to the chained audit log (durable when `record` returns).
    var audit: AuditSink { get }
    /// Starts backends as their run-as accounts.
    var executor: CommandExecutor { get }
    /// The Lockbox workflow's commands, acting for this session.
    var lockboxCommands: any ShellCommandProvider { get }
    /// The session's claim at `now`; `rules` is the snapshot its command runs
    /// under (nil: the rules in force).
    func claim(now: Date, rules: LockboxRules?) -> AccessClaim
    /// Redeems a one-time secret and binds the grant to this session.
    func redeem(_ id: Int64, secret: borrowing SecretBytes) throws -> LockboxRequest
    /// Ends this session's elevations (Exit-Elevation, session end).
    func endElevations(reason: String) -> [LockboxRequest]
    /// Records the expiry of lapsed requests now.
    func sweep()
    /// One of this user's own requests, to say why its grant ended.
    func ownRequest(_ id: Int64) -> LockboxRequest?
    /// This session's transcript: `<session>.cast` in the transcript directory.
    var transcriptPath: String { get }
    /// Creates the transcript file, empty (0600, never an existing file),
    /// and its directory if need be.
    func createTranscript() throws -> OwnedFileDescriptor
}

/// `SessionPrivileges` answered in the daemon's own process.
final class LocalSessionPrivileges: SessionPrivileges {
    let user: UserName
    let session: SessionID
    private let lockbox: Lockbox
    private let transcriptDirectory: String
    let transcriptPath: String
    let audit: AuditSink
    let executor: CommandExecutor
    let lockboxCommands: any ShellCommandProvider

    init(gateway: GatewayContext, user: UserName, session: SessionID) {
        self.user = user
        self.session = session
        lockbox = gateway.lockbox
        transcriptDirectory = gateway.configuration.transcriptDirectory
        transcriptPath = "\(transcriptDirectory)/\(session.rawValue).cast"
        audit = gateway.audit
        executor = ProcessExecutor()
        lockboxCommands = LockboxCommands(lockbox: gateway.lockbox, clock: gateway.clock, sessions: gateway.sessions)
    }

    func claim(now: Date, rules: LockboxRules?) -> AccessClaim {
        lockbox.claim(user: user, session: session, now: now, rules: rules)
    }

    func redeem(_ id: Int64, secret: borrowing SecretBytes) throws -> LockboxRequest {
        try lockbox.redeem(id: id, secret: secret, by: user, session: session)
    }

    func endElevations(reason: String) -> [LockboxRequest] {
        lockbox.endElevations(session: session, user: user, reason: reason)
    }

    func sweep() { _ = lockbox.sweep() }

    func ownRequest(_ id: Int64) -> LockboxRequest? { try? lockbox.request(id: id, visibleTo: user) }

    func createTranscript() throws -> OwnedFileDescriptor {
        try FileManager.default.createDirectory(atPath: transcriptDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        do throws(Errno) {
            return try OwnedFileDescriptor(opening: transcriptPath, flags: O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC,
                                           permissions: 0o600)
        } catch {
            throw AuditLogError.io(path: transcriptPath, errno: error.rawValue)
        }
    }
}
