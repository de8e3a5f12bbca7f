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
/// docs/architecture.md, "Privilege separation"), answered by the monitor
/// over its channel (`MonitoredSessionPrivileges`). The session code
/// (`SessionRunner`, `CommandStep`) holds no Lockbox, audit log or store of
/// its own, only this.
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
    /// The session ends: its elevations end (`reason`), and `session.end`
    /// is recorded with `fields` (none for a session refused before it
    /// started). Nothing is asked after this.
    func end(reason: String, fields: [String: String]?) throws
}

/// A session's transcript file: `<session>.cast` in the transcript directory.
enum TranscriptFile {
    static func path(directory: String, session: SessionID) -> String { "\(directory)/\(session.rawValue).cast" }

    /// Creates it empty (0600, never an existing file), and the directory (0700) if need be.
    static func create(directory: String, session: SessionID) throws -> OwnedFileDescriptor {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let path = path(directory: directory, session: session)
        do throws(Errno) {
            return try OwnedFileDescriptor(opening: path, flags: O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC,
                                           permissions: 0o600)
        } catch {
            throw AuditLogError.io(path: path, errno: error.rawValue)
        }
    }
}
