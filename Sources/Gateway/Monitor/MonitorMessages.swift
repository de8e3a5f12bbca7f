import CmdletPolicy
import CmdletShell
import Foundation
import GatehouseCore
import Lockbox
import PAMWorkers

/// One request of a connection to the monitor: the session half of the
/// request table in docs/architecture.md ("Privilege separation"). After
/// `openSession` the connection belongs to one user and one session, so no
/// later request names either.
enum MonitorRequest: Codable, Sendable, Equatable {
    // Before authentication.
    /// Is `key` (an OpenSSH `type base64` line) one of `user`'s keys? A yes
    /// moves the connection to "key accepted" for that user.
    case publicKey(user: String, key: String)
    /// Starts PAM for the user whose key was accepted; the reply is PAM's
    /// first messages or its result. `session` and `source` name the
    /// connection in a lockout's audit event.
    case keyboardInteractive(user: String, session: SessionID, source: String)
    /// The client's answers to PAM's last messages (secrets: never logged).
    case pamAnswers([String?]?)
    /// The connection closed before a session opened: its state goes.
    case closeConnection
    /// What the session's side saw before a session opened (its SSH
    /// authentication, the connection limits): only
    /// `MonitorPermits.reportablePreAuthKinds`, under the user name and
    /// session id it saw.
    case preAuthAudit(kind: AuditEventKind, user: String?, session: SessionID?, fields: [String: String])
    /// Opens the connection's session, only once the monitor's own
    /// authentication states say this user passed both factors.
    case openSession(user: UserName, session: SessionID)
    /// The grants of the session's redeemed elevations at the monitor's now
    /// (the session's side adds the baseline roles of the snapshot its
    /// command runs under).
    case elevations
    /// An event the session observed; user, session and time are the
    /// monitor's, and only `MonitorPermits.reportableKinds` are taken.
    case audit(kind: AuditEventKind, fields: [String: String])
    /// Creates the session's transcript; the descriptor comes with the reply.
    case createTranscript
    /// Starts a backend. The monitor judges `request.line` again under its
    /// own snapshot and the session's claim, and starts only the request
    /// that judgement gives, and only after the session's side recorded its
    /// `command.allowed` event (durably) for that very argv. The read ends of
    /// stdout and stderr, and a pidfd, come with the reply.
    case spawn(ExecutionRequest)
    /// Signals the process group of one of the session's running backends.
    case signalBackend(pid: Int32, signal: Int32)
    /// Collects the exit status of one of the session's backends.
    case reapBackend(pid: Int32)
    /// One of the Lockbox commands, bound by the session's interpreter; the
    /// Lockbox judges every value again. `sensitive`: the output is the
    /// session's own terminal (the one place a one-time secret may go).
    case lockbox(command: LockboxCommands.Command, parameters: [WireParameter], sensitive: Bool, columns: Int?)
    /// Redeems a one-time secret for this session.
    case redeem(id: Int64, secret: [UInt8])
    case endElevations(reason: String)
    case sweep
    case ownRequest(id: Int64)
    /// The session ends: its grants end, and the monitor writes
    /// `session.end` with `fields` (none: the session was refused before it started).
    case end(reason: String, fields: [String: String]?)

    // Not a connection's: the network side's own, on connection 0.
    /// The answer to the monitor's `listSessions` notice with the same
    /// `query`: the network side's live sessions and its unauthenticated
    /// connections, for the operator's listing. The monitor shows only the
    /// sessions it holds open itself.
    case sessionListing(query: UInt64, sessions: [SessionRegistry.Summary], unauthenticated: Int)
    /// The network side is confined and about to accept: the daemon is ready.
    case ready
}

/// The monitor's answer to one request.
enum MonitorReply: Codable, Sendable, Equatable {
    case authorized(Bool)
    /// PAM's messages, to show and to answer with `pamAnswers`.
    case pamMessages([WirePAMMessage])
    /// PAM's verdict; `failure` is PAM's own word (pam_strerror), never an
    /// answer; `notice` is for the client (a lockout).
    case pamResult(success: Bool, failure: String?, notice: String?)
    case grants([RoleGrant])
    /// A backend started; its descriptors came with the reply.
    case spawned(pid: Int32)
    case exitStatus(Int32)
    case done
    /// A Lockbox refusal, to show the user as it is.
    case lockboxError(LockboxError)
    case request(LockboxRequest?)
    case requests([LockboxRequest])
    /// A Lockbox command's output, in the order it was written, and its status.
    case lockboxOutput([OutputChunk], status: Int32)
    /// The request was refused (out of state, not permitted, malformed); the
    /// monitor closes the channel after this.
    case refused(String)
    /// The operation failed on the monitor's side (the audit log, the file system).
    case failed(String)
    /// Not an answer: news for the session's side, sent as call 0.
    case notice(MonitorNotice)

    enum OutputChunk: Codable, Sendable, Equatable {
        case stdout([UInt8])
        case stderr([UInt8])
        case sensitive([UInt8])
    }
}

/// What the monitor tells the session's side unasked.
enum MonitorNotice: Codable, Sendable, Equatable {
    /// A grant bound to `session` ended here (revoked or cancelled by
    /// another session): that session is woken and a backend running under
    /// the grant is stopped.
    case grantEnded(session: SessionID, requestID: Int64)
    /// An operator ended the session (the control socket is the monitor's):
    /// the session tells its user `message` and ends.
    case endSession(session: SessionID, message: String)
    /// The monitor put a new policy load in force (SIGHUP): the network side
    /// loads the same files into its own snapshot.
    case reload
    /// The audit log failed: sessions end and new ones are refused, as the
    /// monitor would refuse their events anyway.
    case auditFailed
    /// The monitor asks for the live sessions; the answer is a
    /// `sessionListing` request with this `query`.
    case listSessions(query: UInt64)
}

/// A PAM message as it crosses the channel.
struct WirePAMMessage: Codable, Sendable, Equatable {
    enum Style: String, Codable, Sendable { case promptEchoOff, promptEchoOn, errorMessage, textInfo }
    let style: Style
    let text: String

    init(style: Style, text: String) {
        self.style = style
        self.text = text
    }

    init(_ message: PAMMessage) {
        text = message.text
        switch message.style {
        case .promptEchoOff: style = .promptEchoOff
        case .promptEchoOn: style = .promptEchoOn
        case .errorMessage: style = .errorMessage
        case .textInfo: style = .textInfo
        }
    }

    var message: PAMMessage {
        switch style {
        case .promptEchoOff: PAMMessage(style: .promptEchoOff, text: text)
        case .promptEchoOn: PAMMessage(style: .promptEchoOn, text: text)
        case .errorMessage: PAMMessage(style: .errorMessage, text: text)
        case .textInfo: PAMMessage(style: .textInfo, text: text)
        }
    }
}

/// A bound parameter as it crosses the channel.
struct WireParameter: Codable, Sendable, Equatable {
    let name: String
    let value: WireValue

    indirect enum WireValue: Codable, Sendable, Equatable {
        case string(String), int(Int), size(Int), switchPresent, enumeration(String), duration(Int), dateTime(Int)
        case list([WireValue])

        init(_ value: ParameterValue) {
            switch value {
            case .string(let s): self = .string(s)
            case .int(let n): self = .int(n)
            case .size(let bytes): self = .size(bytes)
            case .switchPresent: self = .switchPresent
            case .enumeration(let s): self = .enumeration(s)
            case .duration(let seconds): self = .duration(seconds)
            case .dateTime(let t): self = .dateTime(t)
            case .list(let items): self = .list(items.map(WireValue.init))
            }
        }

        var value: ParameterValue {
            switch self {
            case .string(let s): .string(s)
            case .int(let n): .int(n)
            case .size(let bytes): .size(bytes: bytes)
            case .switchPresent: .switchPresent
            case .enumeration(let s): .enumeration(s)
            case .duration(let seconds): .duration(seconds: seconds)
            case .dateTime(let t): .dateTime(t)
            case .list(let items): .list(items.map(\.value))
            }
        }
    }

    init(_ parameter: BoundParameter) {
        name = parameter.name
        value = WireValue(parameter.value)
    }

    var bound: BoundParameter { BoundParameter(name: name, value: value.value) }
}

/// What crosses the channel: a request or its reply, tagged with the call
/// it answers and the connection it is for (one channel serves every
/// connection of the network side). Its bytes: `MonitorWireFormat.swift`.
struct MonitorEnvelope<Body: Sendable>: Sendable {
    let call: UInt64
    let connection: UInt64
    let body: Body
}

/// The size limits and the codec of the channel, shared by both ends.
enum MonitorWire {
    /// A request is a line of at most `Lexer.maxLineBytes` and its bound
    /// parameters; 64 KiB leaves room and stops anything larger.
    static let maxRequestBytes = 64 * 1024
    /// Replies carry Lockbox tables and their output (a page of requests is
    /// a few KiB). The receiver allocates this much per packet, so it stays small.
    static let maxReplyBytes = 64 * 1024

    static func encode<Body: MonitorWireBody>(_ envelope: MonitorEnvelope<Body>) throws -> [UInt8] {
        try envelope.wireBytes()
    }

    static func decode<Body: MonitorWireBody>(_ type: MonitorEnvelope<Body>.Type,
                                              from bytes: [UInt8]) throws -> MonitorEnvelope<Body> {
        try MonitorEnvelope(wireBytes: bytes)
    }
}
