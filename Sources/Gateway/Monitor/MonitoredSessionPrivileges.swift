import CmdletShell
import Foundation
import GatehouseCore
import Lockbox

/// `SessionPrivileges` answered by the monitor over its channel: the
/// session's side holds no Lockbox, audit log or transcript directory, only
/// a connection number on the shared channel. The monitor knows the
/// connection's user and session from `openSession` and judges every call
/// against them.
final class MonitoredSessionPrivileges: SessionPrivileges {
    let user: UserName
    let session: SessionID
    let transcriptPath: String
    let audit: AuditSink
    let executor: CommandExecutor
    let lockboxCommands: any ShellCommandProvider
    private let client: MonitorClient
    private let connection: UInt64
    /// The baseline roles come from the snapshot the caller's command runs under.
    private let currentRules: @Sendable () -> LockboxRules

    /// Opens the connection's session on the monitor.
    init(client: MonitorClient, connection: UInt64, user: UserName, session: SessionID, transcriptDirectory: String,
         currentRules: @escaping @Sendable () -> LockboxRules) throws {
        self.client = client
        self.connection = connection
        self.user = user
        self.session = session
        self.currentRules = currentRules
        transcriptPath = TranscriptFile.path(directory: transcriptDirectory, session: session)
        audit = MonitoredAudit(client: client, connection: connection)
        executor = ProcessExecutor(launcher: MonitorBackendLauncher(client: client, connection: connection))
        lockboxCommands = MonitoredLockboxCommands(client: client, connection: connection)
        try expectDone(client.call(connection, .openSession(user: user, session: session)).reply)
    }

    /// A grant joins a session only through this session's own redeem, so
    /// until one succeeds there is nothing to ask the monitor for: most
    /// sessions never elevate, and their commands save that round trip. Once
    /// it has redeemed, every claim asks (a revocation elsewhere must show at
    /// the next command). The monitor judges every spawn by its own claim
    /// either way, so this can never widen what runs.
    private var mayHoldGrants = false

    func claim(now: Date, rules: LockboxRules?) -> AccessClaim {
        Lockbox.claim(user: user, session: session, now: now, rules: rules ?? currentRules()) {
            guard mayHoldGrants else { return [] }
            // Fail closed for elevation, as the Lockbox does when its store is unreadable.
            guard let call = try? client.call(connection, .elevations), case .grants(let grants) = call.reply else { return [] }
            return grants
        }
    }

    func redeem(_ id: Int64, secret: borrowing SecretBytes) throws -> LockboxRequest {
        // The secret crosses the channel inside the request's bytes, which
        // both ends zero (`MonitorRequest.carriesSecret`); this copy and the
        // decoded one in the monitor are freed, not wiped.
        let typed = secret.withUnsafeBytes { Array($0) }
        let reply = try client.call(connection, .redeem(id: id, secret: typed)).reply
        switch reply {
        case .request(let request?):
            mayHoldGrants = true
            return request
        case .lockboxError(let error): throw error
        case .failed(let why): throw MonitorFailure(why)
        default: throw MonitorCallError.unexpectedReply
        }
    }

    func endElevations(reason: String) -> [LockboxRequest] {
        guard let call = try? client.call(connection, .endElevations(reason: reason)),
              case .requests(let ended) = call.reply else { return [] }
        return ended
    }

    func sweep() { _ = try? client.call(connection, .sweep) }

    func ownRequest(_ id: Int64) -> LockboxRequest? {
        guard let call = try? client.call(connection, .ownRequest(id: id)), case .request(let request) = call.reply else {
            return nil
        }
        return request
    }

    func createTranscript() throws -> OwnedFileDescriptor {
        var call = try client.call(connection, .createTranscript)
        try expectDone(call.reply)
        guard let file = call.takeDescriptor() else { throw MonitorCallError.unexpectedReply }
        return file
    }

    func end(reason: String, fields: [String: String]?) throws {
        try expectDone(client.call(connection, .end(reason: reason, fields: fields)).reply)
    }
}

/// Backends start in the monitor, which judges the line again and alone may
/// start processes as other accounts; their pipes and pidfd come back here,
/// where the executor relays the output as for a local child.
struct MonitorBackendLauncher: BackendLauncher {
    let client: MonitorClient
    let connection: UInt64

    func launch(_ request: ExecutionRequest) throws -> any LaunchedBackend {
        var call: MonitorCall
        do {
            call = try client.call(connection, .spawn(request))
        } catch {
            throw ExecutorError(message: "the monitor did not start the backend: \(error)", errno: EPERM)
        }
        switch call.reply {
        case .spawned(let pid):
            guard let stdout = call.takeDescriptor(), let stderr = call.takeDescriptor() else {
                throw ExecutorError(message: "the monitor's reply carried no pipes", errno: EPROTO)
            }
            let exit = call.takeDescriptor()?.release() ?? -1
            return MonitoredBackend(client: client, connection: connection, pid: pid, stdout: stdout.release(),
                                    stderr: stderr.release(), exit: exit)
        case .failed(let why):
            throw ExecutorError(message: why, errno: EPERM)
        default:
            throw ExecutorError(message: "the monitor's reply does not fit a spawn", errno: EPROTO)
        }
    }
}

/// A backend the monitor started: its exit is seen on the pidfd, its group
/// is signalled and its status collected by the monitor.
struct MonitoredBackend: LaunchedBackend {
    let client: MonitorClient
    let connection: UInt64
    let pid: Int32
    let stdout: Int32
    let stderr: Int32
    let exit: Int32

    func hasExited() -> Bool {
        guard exit >= 0 else { return false }
        var entry = pollfd(fd: exit, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) > 0
    }

    func signalGroup(_ signal: Int32) {
        _ = try? client.call(connection, .signalBackend(pid: pid, signal: signal))
    }

    func reap() -> Int32 {
        guard let call = try? client.call(connection, .reapBackend(pid: pid)), case .exitStatus(let status) = call.reply else {
            return 128 + SIGKILL
        }
        return status
    }
}

/// The monitor's `.failed`: the operation failed on its side.
struct MonitorFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

private func expectDone(_ reply: MonitorReply) throws {
    switch reply {
    case .done: return
    case .failed(let why): throw MonitorFailure(why)
    default: throw MonitorCallError.unexpectedReply
    }
}

/// The audit log as the session's side reaches it: the monitor writes the
/// event under the connection's user and session, at its own time, and
/// returns once it is durable.
struct MonitoredAudit: AuditSink {
    let client: MonitorClient
    let connection: UInt64

    /// An event that gates an action waits for the monitor's word that it is
    /// durable; one that only describes is posted, in order, without a round
    /// trip (its durability never held its writer up; a failed audit log
    /// ends the session at its next gating event, or by the monitor's notice).
    func record(_ event: AuditEvent) throws {
        let request = MonitorRequest.audit(kind: event.kind, fields: event.fields)
        if event.kind.gatesAnAction {
            try expectDone(client.call(connection, request).reply)
        } else {
            try client.post(connection, request)
        }
    }
}

/// The Lockbox commands, bound here (so `Get-Command`, `Get-Help` and
/// completion see them) and answered by the monitor, which acts for the
/// connection's user and judges every value again.
struct MonitoredLockboxCommands: ShellCommandProvider {
    let client: MonitorClient
    let connection: UInt64

    var commands: [ProvidedCommand<LockboxCommands.Command>] { LockboxCommands.declared }

    func auditFields(_ command: LockboxCommands.Command, parameters: [BoundParameter]) -> [String: String] {
        LockboxCommands.auditFields(command, parameters: parameters)
    }

    func run(_ command: LockboxCommands.Command, parameters: [BoundParameter], claim: AccessClaim,
             output: CommandOutput) -> Int32 {
        let sensitive = output as? SensitiveOutput
        let request = MonitorRequest.lockbox(command: command, parameters: parameters.map(WireParameter.init),
                                             sensitive: sensitive != nil, columns: output.terminalColumns)
        guard let call = try? client.call(connection, request), case .lockboxOutput(let chunks, let status) = call.reply else {
            output.stderr(Array("The Lockbox is unavailable; nothing was changed.\n".utf8))
            return ExitStatus.failure
        }
        for chunk in chunks {
            switch chunk {
            case .stdout(let bytes): output.stdout(bytes)
            case .stderr(let bytes): output.stderr(bytes)
            case .sensitive(let bytes): sensitive?.sensitive(bytes)
            }
        }
        return status
    }
}
