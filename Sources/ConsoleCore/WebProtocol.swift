import Foundation

/// One request of `gatehouse-web` to the monitor (issue 14). The web process
/// holds no privilege and no store: every answer is the monitor's, and the
/// monitor judges each request again (`WebPermits`): a request naming a web
/// session is answered only while the monitor's own session table holds it,
/// a change only with that session's CSRF token, a review only for a member
/// of `reviewers`. Secrets (PAM answers, cookies, tokens) are never logged.
public enum WebRequest: Codable, Sendable, Equatable {
    /// Starts a sign-in: PAM (`webPamService`) for `user`, from `source`.
    case signInStart(user: String, source: String)
    /// The answers to the last prompts of conversation `conversation`.
    case signInAnswers(conversation: String, answers: [String])
    case signOut(session: String, csrf: String)
    /// Who holds this web session, and its CSRF token.
    case whoAmI(session: String)
    /// The Lockbox requests waiting for this session's user.
    case pending(session: String)
    /// Approves or denies through the same Lockbox calls as the shell.
    case decide(session: String, csrf: String, id: Int64, approve: Bool, comment: String)
    /// A reviewer's command search.
    case search(session: String, query: CommandQuery)
    case sessionDetail(session: String, id: String)
    /// A piece of a session's transcript (an asciicast file), from `offset`.
    case transcript(session: String, id: String, offset: Int)
    case verifyChain(session: String)
    /// An activity API call with a bearer token: `path` is the API path
    /// below /api/v1, `query` its parameters (validated by the monitor).
    case api(token: String, path: String, query: [String: String])
    /// The web process listens (on `port`) and is confined.
    case ready(port: Int)

    /// The request's name, for the audit (never its values).
    public var name: String {
        switch self {
        case .signInStart: "signInStart"
        case .signInAnswers: "signInAnswers"
        case .signOut: "signOut"
        case .whoAmI: "whoAmI"
        case .pending: "pending"
        case .decide: "decide"
        case .search: "search"
        case .sessionDetail: "sessionDetail"
        case .transcript: "transcript"
        case .verifyChain: "verifyChain"
        case .api: "api"
        case .ready: "ready"
        }
    }
}

/// A prompt of PAM's, for one HTML field.
public struct WebPrompt: Codable, Sendable, Equatable {
    public enum Style: String, Codable, Sendable { case secret, visible, error, info }
    public let style: Style
    public let text: String
    public init(style: Style, text: String) {
        self.style = style
        self.text = text
    }
}

/// Who a web session belongs to.
public struct WebIdentity: Codable, Sendable, Equatable {
    public let user: String
    public let csrf: String
    public let reviewer: Bool
    public init(user: String, csrf: String, reviewer: Bool) {
        self.user = user
        self.csrf = csrf
        self.reviewer = reviewer
    }
}

/// A Lockbox request as the console and the API show it (no secret).
public struct RequestView: Codable, Sendable, Equatable {
    public var id: Int64
    public var state: String
    public var requester: String
    public var role: String
    public var scope: String
    public var durationSeconds: Int
    public var reason: String
    public var ticket: String?
    /// The stage reached: "manager", "customer", or the state when decided.
    public var stage: String
    public var managerApprover: String?
    public var managerComment: String?
    public var customerApprover: String?
    public var customerComment: String?
    public var createdAt: Date
    public var activatedAt: Date?
    public var deadline: Date?
    public var session: String?
    public var endReason: String?
    public init(id: Int64, state: String, requester: String, role: String, scope: String, durationSeconds: Int,
                reason: String, ticket: String?, stage: String, managerApprover: String?, managerComment: String?,
                customerApprover: String?, customerComment: String?, createdAt: Date, activatedAt: Date?,
                deadline: Date?, session: String?, endReason: String?) {
        self.id = id; self.state = state; self.requester = requester; self.role = role; self.scope = scope
        self.durationSeconds = durationSeconds; self.reason = reason; self.ticket = ticket; self.stage = stage
        self.managerApprover = managerApprover; self.managerComment = managerComment
        self.customerApprover = customerApprover; self.customerComment = customerComment
        self.createdAt = createdAt; self.activatedAt = activatedAt; self.deadline = deadline
        self.session = session; self.endReason = endReason
    }
}

/// A reviewer's search: every condition given must hold.
public struct CommandQuery: Codable, Sendable, Equatable {
    public var user: String?
    public var cmdlet: String?
    /// `Name=Value`: a bound parameter's exact value.
    public var parameter: String?
    public var scope: String?
    public var requestID: Int64?
    /// `allow` or `deny`.
    public var decision: String?
    public var since: Date?
    public var until: Date?
    public init() {}
}

/// One indexed command.
public struct CommandView: Codable, Sendable, Equatable {
    public var seq: Int
    public var session: String?
    public var user: String?
    public var time: Date
    public var cmdlet: String?
    public var line: String?
    public var decision: String
    public var role: String?
    public var reason: String?
    public var scope: String?
    public var requestID: Int64?
    public var exitStatus: Int?
    public init(seq: Int, session: String?, user: String?, time: Date, cmdlet: String?, line: String?, decision: String,
                role: String?, reason: String?, scope: String?, requestID: Int64?, exitStatus: Int?) {
        self.seq = seq; self.session = session; self.user = user; self.time = time; self.cmdlet = cmdlet
        self.line = line; self.decision = decision; self.role = role; self.reason = reason; self.scope = scope
        self.requestID = requestID; self.exitStatus = exitStatus
    }
}

/// A page of search results; `truncated` when more matched than fit.
public struct CommandPage: Codable, Sendable, Equatable {
    public var commands: [CommandView]
    public var truncated: Bool
    public init(commands: [CommandView], truncated: Bool) {
        self.commands = commands
        self.truncated = truncated
    }
}

/// An elevation window of a session: from `elevation.start` to its end.
public struct ElevationWindow: Codable, Sendable, Equatable {
    public var requestID: Int64
    public var role: String?
    public var scope: String?
    public var start: Date
    public var end: Date?
    public var endReason: String?
    public init(requestID: Int64, role: String?, scope: String?, start: Date, end: Date?, endReason: String?) {
        self.requestID = requestID; self.role = role; self.scope = scope; self.start = start; self.end = end
        self.endReason = endReason
    }
}

/// A session as the reviewer opens it.
public struct SessionDetail: Codable, Sendable, Equatable {
    public var id: String
    public var user: String?
    public var client: String?
    public var node: String?
    public var started: Date?
    public var ended: Date?
    public var endReason: String?
    public var commands: [CommandView]
    public var elevations: [ElevationWindow]
    /// The requests behind the elevations, with their approvals.
    public var approvals: [RequestView]
    public var hasTranscript: Bool
    public init(id: String, user: String?, client: String?, node: String?, started: Date?, ended: Date?,
                endReason: String?, commands: [CommandView], elevations: [ElevationWindow], approvals: [RequestView],
                hasTranscript: Bool) {
        self.id = id; self.user = user; self.client = client; self.node = node; self.started = started
        self.ended = ended; self.endReason = endReason; self.commands = commands; self.elevations = elevations
        self.approvals = approvals; self.hasTranscript = hasTranscript
    }
}

/// The monitor's answer to one web request.
public enum WebReply: Codable, Sendable, Equatable {
    /// PAM asks: show these prompts, answer with `signInAnswers`.
    case prompts(conversation: String, [WebPrompt])
    /// Signed in: the cookie's value (a fresh 256-bit id) and the CSRF token.
    case signedIn(session: String, identity: WebIdentity)
    /// The sign-in failed; the message is for the person (never PAM's detail).
    case signInFailed(String)
    case identity(WebIdentity)
    case requests([RequestView])
    /// The decision went through; `message` says what it did.
    case decided(RequestView, message: String)
    /// The Lockbox refused (its own message, as the shell shows it).
    case lockboxRefused(String)
    case commands(CommandPage)
    case session(SessionDetail)
    /// `base64` of up to `WebWire.transcriptChunk` bytes; `next` is the offset
    /// of the rest, nil at the end.
    case transcriptChunk(base64: String, next: Int?)
    case chain(ok: Bool, summary: String)
    /// An API answer: HTTP status and the JSON body, as the OpenAPI document says.
    case api(status: Int, json: String)
    /// No such web session, or it ended (idle or lifetime): sign in again.
    case unauthenticated
    /// Refused (CSRF, not a reviewer, not found); audited by the monitor.
    case forbidden(String)
    case notFound
    case failed(String)
    case done
}

/// What crosses the web channel: a request or its reply, with the call it answers.
public struct WebEnvelope<Body: Codable & Sendable>: Codable, Sendable {
    public let call: UInt64
    public let body: Body
    public init(call: UInt64, body: Body) {
        self.call = call
        self.body = body
    }
}

/// The web channel's limits and codec, shared by both ends.
public enum WebWire {
    /// Every message either way is at most 64 KiB; big answers come in pages.
    public static let maxMessageBytes = 64 * 1024
    /// Transcript bytes per reply (base64 makes 4/3 of it).
    public static let transcriptChunk = 32 * 1024
    /// Commands per search page.
    public static let maxCommands = 100

    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        return Array(try encoder.encode(value))
    }

    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return try decoder.decode(type, from: Data(bytes))
    }
}
