import Foundation
import ConsoleCore
import GatehouseCore

// The control socket's protocol, shared by the daemon (`ControlSocket`) and
// the operator CLI (`gatehouse sessions list --live`, `sessions kill`,
// `users unlock`, `mfa enroll|reset`): the client sends one JSON line, the daemon answers one
// JSON line and closes. Both sides encode and decode these types with
// `ControlWire`, so neither can drift from the other.

/// What an operator asks the running daemon.
///
/// On the wire (Swift's synthesised enum coding): `{"list":{}}`,
/// `{"kill":{"session":"…","reason":"…"}}`, `{"unlock":{"user":"…"}}`,
/// `{"mfaChanged":{"user":"…","reset":false}}`.
public enum ControlRequest: Codable, Sendable, Equatable {
    /// Live sessions, locked users and the unauthenticated-connection count.
    case list
    /// End a session; `reason` is shown to its user and audited.
    case kill(session: String, reason: String)
    /// Clear a per-user lockout.
    case unlock(user: String)
    /// Audit that the operator's CLI has just enrolled (`reset` false) or
    /// replaced a user's TOTP secret in pam_oath's users file. The CLI does
    /// the change itself; only the daemon holds the audit chain and its key.
    case mfaChanged(user: String, reset: Bool)
    /// Audit that the CLI has just created (`revoked` false) or revoked an
    /// activity API client's token (`gatehouse api-token`); never the token.
    case apiTokenChanged(name: String, tenants: [String], revoked: Bool)

    /// The request names, for the error that answers an unknown one.
    static let names = ["list", "kill", "unlock", "mfaChanged", "apiTokenChanged"]

    /// The longest kill reason kept; the rest is cut off (it is shown on the
    /// user's terminal and stored in every audit event of the kill).
    public static let maximumReasonLength = 200

    /// Session IDs as the daemon makes them (`SessionID.random`), with room
    /// for other shapes; anything else cannot name a session.
    public static func isSessionID(_ text: String) -> Bool {
        (1...64).contains(text.utf8.count) && text.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x61 && $0 <= 0x7a)
                || $0 == 0x2e || $0 == 0x5f || $0 == 0x2d
        }
    }

    /// Why a well-formed request cannot be carried out as it stands, or nil.
    /// The daemon checks this on every request; the CLI checks it before
    /// sending, so an operator's typo is reported without a round trip.
    public var problem: String? {
        switch self {
        case .list:
            return nil
        case .kill(let session, let reason):
            if !Self.isSessionID(session) { return "'\(session.prefix(80))' is not a session ID" }
            if reason.allSatisfy(\.isWhitespace) { return "the reason must not be empty" }
            return nil
        case .unlock(let user), .mfaChanged(let user, _):
            return UserName.isValid(user) ? nil : "'\(user.prefix(80))' is not a user name"
        case .apiTokenChanged(let name, let tenants, _):
            if !APITokenStore.validName(name) { return "'\(name.prefix(80))' is not an API client name" }
            if tenants.count > 64 || !tenants.allSatisfy({ $0 == "*" || APITokenStore.validName($0) }) {
                return "the tenants are not tenant names"
            }
            return nil
        }
    }
}

/// The daemon's answer to one `ControlRequest`.
public enum ControlResponse: Codable, Sendable, Equatable {
    case sessions(LiveSessionListing)
    case killed(session: String)
    case unlocked(user: String, wasLocked: Bool)
    /// The `mfaChanged` request is in the audit log.
    case audited(kind: String)
    /// The request was not carried out; `message` says why, for the operator.
    case refused(reason: ControlRefusal, message: String)
}

/// Why a control request was not carried out.
public enum ControlRefusal: String, Codable, Sendable, Equatable {
    /// The peer is neither the daemon's own uid nor root.
    case permissionDenied
    /// Not one JSON request, or a request with missing or mistyped fields.
    case malformed
    /// Longer than `ControlWire.maximumRequestBytes` before its newline.
    case tooLong
    /// A JSON object naming no request this daemon knows.
    case unknownRequest
    /// A known request with an argument that cannot be valid.
    case invalidArgument
    /// The named session is not live on this node.
    case notFound
    /// The event could not be written to the audit log.
    case auditFailed
    /// The network process, which holds the sessions, did not answer in time
    /// (it is being restarted, or stuck).
    case unavailable
}

/// The answer to `list`. Its JSON is what `sessions list --live --json` prints.
public struct LiveSessionListing: Codable, Sendable, Equatable {
    public var node: String
    public var sessions: [LiveSession]
    public var lockedUsers: [String]
    public var unauthenticated: Int

    public init(node: String, sessions: [LiveSession], lockedUsers: [String], unauthenticated: Int) {
        self.node = node
        self.sessions = sessions
        self.lockedUsers = lockedUsers
        self.unauthenticated = unauthenticated
    }
}

/// One live session in a `LiveSessionListing`.
public struct LiveSession: Codable, Sendable, Equatable {
    public var id: String
    public var user: String
    public var source: String
    public var started: Date
    public var idleSeconds: Int
    public var commandRunning: Bool

    public init(id: String, user: String, source: String, started: Date, idleSeconds: Int, commandRunning: Bool) {
        self.id = id
        self.user = user
        self.source = source
        self.started = started
        self.idleSeconds = idleSeconds
        self.commandRunning = commandRunning
    }
}

/// The one encoding of control messages: compact JSON with sorted keys and
/// ISO 8601 dates, one line ended by a newline.
public enum ControlWire {
    /// The longest request line the daemon reads, newline excluded. A kill
    /// request with the longest reason takes well under 1 KiB.
    public static let maximumRequestBytes = 4096

    /// `value` as one JSON line.
    public static func line<T: Encodable>(_ value: T, pretty: Bool = false) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
                                          : [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return Array(try encoder.encode(value)) + [0x0a]
    }

    /// The daemon's reading of one request line: the request, or the refusal
    /// to send back. Never throws: hostile bytes get an answer, not a crash.
    public static func request(from line: [UInt8]) -> Result<ControlRequest, RefusedRequest> {
        let data = Data(line)
        let request: ControlRequest
        do {
            request = try JSONDecoder().decode(ControlRequest.self, from: data)
        } catch {
            // An object whose one key is not a request name is an unknown
            // request; everything else (not JSON, not an object, a known
            // name with wrong fields) is malformed.
            if let keys = try? JSONDecoder().decode(KeyNames.self, from: data).names,
               keys.count == 1, let name = keys.first, !ControlRequest.names.contains(name) {
                return .failure(RefusedRequest(.unknownRequest, "unknown request '\(name.prefix(40))'; expected "
                                                  + ControlRequest.names.joined(separator: ", ")))
            }
            return .failure(RefusedRequest(.malformed, "malformed request: expected one JSON object such as "
                                              + "{\"list\":{}}, {\"kill\":{\"session\":…,\"reason\":…}} or {\"unlock\":{\"user\":…}}"))
        }
        if let problem = request.problem { return .failure(RefusedRequest(.invalidArgument, problem)) }
        return .success(request)
    }

    /// The client's reading of the daemon's answer.
    public static func response(from bytes: [UInt8]) throws -> ControlResponse {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(ControlResponse.self, from: Data(bytes))
    }

    /// A request refused before it reached the handler.
    public struct RefusedRequest: Error, Equatable {
        public let reason: ControlRefusal
        public let message: String
        init(_ reason: ControlRefusal, _ message: String) {
            self.reason = reason
            self.message = message
        }
        public var response: ControlResponse { .refused(reason: reason, message: message) }
    }

    /// The keys of a JSON object, whatever they are.
    private struct KeyNames: Decodable {
        let names: [String]
        init(from decoder: any Decoder) throws {
            names = try decoder.container(keyedBy: AnyKey.self).allKeys.map(\.stringValue)
        }
        struct AnyKey: CodingKey {
            let stringValue: String
            init?(stringValue: String) { self.stringValue = stringValue }
            var intValue: Int? { nil }
            init?(intValue: Int) { nil }
        }
    }
}
