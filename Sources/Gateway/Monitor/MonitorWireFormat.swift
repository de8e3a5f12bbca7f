import CmdletShell
import Foundation
import GatehouseCore
import Lockbox

/// The monitor channel's bytes. Every request and reply of a login and a
/// command is written field by field in a fixed binary layout; Foundation's
/// JSON for these cost about a quarter of the monitor's CPU per login
/// (docs/performance.md, "Where the login CPU goes"). The Lockbox's own
/// requests and replies and the operator's listing, which carry large
/// records and come at human pace, stay JSON inside a tagged frame.
///
///     message  := call: UInt64  connection: UInt64  tag: UInt8  fields
///     integer  := its width, little-endian;  Double: its bit pattern
///     bytes    := count: UInt32, then the bytes;  String: bytes, UTF-8
///     optional := 0 | 1 value;  Bool := 0 | 1
///     array    := count: UInt32, then the values;  [String: String]: count, then key value pairs
///
/// Both ends run the same build, so there is no version field. Decoding
/// treats the bytes as hostile: every count is checked against what is
/// left, strings must be UTF-8, names must be valid names, a dictionary key
/// may appear once, and a message must end exactly where its fields end.
/// Anything else is a `MonitorWireError`.
protocol MonitorWireBody: Sendable {
    func write(to writer: inout MonitorWireWriter) throws
    init(from reader: inout MonitorWireReader) throws
}

struct MonitorWireError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension MonitorEnvelope where Body: MonitorWireBody {
    func wireBytes() throws -> [UInt8] {
        var writer = MonitorWireWriter()
        writer.integer(call)
        writer.integer(connection)
        try body.write(to: &writer)
        return writer.bytes
    }

    init(wireBytes bytes: [UInt8]) throws {
        var reader = MonitorWireReader(bytes)
        let call = try reader.integer(UInt64.self)
        let connection = try reader.integer(UInt64.self)
        let body = try Body(from: &reader)
        try reader.end()
        self.init(call: call, connection: connection, body: body)
    }
}

struct MonitorWireWriter {
    private(set) var bytes: [UInt8] = []

    init() { bytes.reserveCapacity(256) }

    mutating func tag(_ tag: UInt8) { bytes.append(tag) }
    mutating func bool(_ value: Bool) { bytes.append(value ? 1 : 0) }

    mutating func integer<I: FixedWidthInteger>(_ value: I) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func double(_ value: Double) { integer(value.bitPattern) }

    mutating func bytes(_ value: some Collection<UInt8>) {
        integer(UInt32(value.count))
        bytes.append(contentsOf: value)
    }

    mutating func string(_ value: String) { bytes(value.utf8) }

    mutating func optional<T>(_ value: T?, _ write: (inout MonitorWireWriter, T) throws -> Void) rethrows {
        guard let value else { return bytes.append(0) }
        bytes.append(1)
        try write(&self, value)
    }

    mutating func array<T>(_ values: [T], _ write: (inout MonitorWireWriter, T) throws -> Void) rethrows {
        integer(UInt32(values.count))
        for value in values { try write(&self, value) }
    }

    mutating func fields(_ fields: [String: String]) {
        integer(UInt32(fields.count))
        for (key, value) in fields {
            string(key)
            string(value)
        }
    }

    /// A value of the cold cases, as JSON in a byte string.
    mutating func json(_ value: some Encodable) throws { bytes(try JSONEncoder().encode(value)) }
}

struct MonitorWireReader {
    private let message: [UInt8]
    private var position = 0

    init(_ bytes: [UInt8]) { message = bytes }

    private var left: Int { message.count - position }

    mutating func end() throws {
        guard left == 0 else { throw MonitorWireError("\(left) bytes after the message") }
    }

    mutating func tag() throws -> UInt8 {
        guard left >= 1 else { throw MonitorWireError("the message is cut short") }
        defer { position += 1 }
        return message[position]
    }

    mutating func bool() throws -> Bool {
        switch try tag() {
        case 0: return false
        case 1: return true
        case let other: throw MonitorWireError("a flag of \(other), neither 0 nor 1")
        }
    }

    mutating func integer<I: FixedWidthInteger>(_ type: I.Type) throws -> I {
        let width = MemoryLayout<I>.size
        guard left >= width else { throw MonitorWireError("the message is cut short") }
        var value: I = 0
        for i in 0..<width { value |= I(truncatingIfNeeded: message[position + i]) << (8 * i) }
        position += width
        return value
    }

    mutating func int() throws -> Int {
        guard let value = Int(exactly: try integer(Int64.self)) else { throw MonitorWireError("a number out of range") }
        return value
    }

    mutating func double() throws -> Double { Double(bitPattern: try integer(UInt64.self)) }

    /// A count of things that take at least `minimumSize` bytes each: no
    /// more than what is left can hold, so a forged count allocates nothing.
    private mutating func count(minimumSize: Int) throws -> Int {
        let count = Int(try integer(UInt32.self))
        guard count <= left / max(minimumSize, 1) else { throw MonitorWireError("a count larger than the message") }
        return count
    }

    private mutating func byteRange() throws -> Range<Int> {
        let count = try count(minimumSize: 1)
        defer { position += count }
        return position..<(position + count)
    }

    mutating func bytes() throws -> [UInt8] { Array(message[try byteRange()]) }

    mutating func string() throws -> String {
        guard let string = String(validating: message[try byteRange()], as: UTF8.self) else {
            throw MonitorWireError("a string that is not UTF-8")
        }
        return string
    }

    mutating func userName() throws -> UserName {
        guard let name = UserName(try string()) else { throw MonitorWireError("an invalid user name") }
        return name
    }

    mutating func session() throws -> SessionID { SessionID(rawValue: try string()) }

    mutating func auditKind() throws -> AuditEventKind {
        guard let kind = AuditEventKind(rawValue: try string()) else { throw MonitorWireError("an unknown audit kind") }
        return kind
    }

    mutating func optional<T>(_ read: (inout MonitorWireReader) throws -> T) throws -> T? {
        try bool() ? try read(&self) : nil
    }

    /// `minimumSize`: the fewest bytes one element takes (a string: its count).
    mutating func array<T>(minimumSize: Int, _ read: (inout MonitorWireReader) throws -> T) throws -> [T] {
        let count = try count(minimumSize: minimumSize)
        var values: [T] = []
        values.reserveCapacity(count)
        for _ in 0..<count { values.append(try read(&self)) }
        return values
    }

    mutating func fields() throws -> [String: String] {
        let count = try count(minimumSize: 8)
        var fields: [String: String] = [:]
        fields.reserveCapacity(count)
        for _ in 0..<count {
            let key = try string()
            guard fields.updateValue(try string(), forKey: key) == nil else {
                throw MonitorWireError("a field named twice")
            }
        }
        return fields
    }

    mutating func json<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(type, from: Data(message[try byteRange()]))
    }
}

// MARK: - The messages

extension MonitorRequest {
    /// PAM's answers and a one-time secret: the bytes that carried them are
    /// zeroed once sent and once decoded (`PacketChannel.wipe`); the
    /// decoded strings are Swift's and are freed, not wiped.
    var carriesSecret: Bool {
        switch self {
        case .pamAnswers, .redeem: true
        default: false
        }
    }
}

extension MonitorRequest: MonitorWireBody {
    private enum Tag: UInt8 {
        case publicKey = 1, keyboardInteractive, pamAnswers, closeConnection, preAuthAudit, openSession, elevations
        case audit, createTranscript, spawn, signalBackend, reapBackend, redeem, endElevations, sweep, ownRequest
        case end, ready
        /// `lockbox` and `sessionListing`: JSON.
        case json = 0xff
    }

    func write(to w: inout MonitorWireWriter) throws {
        switch self {
        case .publicKey(let user, let key):
            w.tag(Tag.publicKey.rawValue); w.string(user); w.string(key)
        case .keyboardInteractive(let user, let session, let source):
            w.tag(Tag.keyboardInteractive.rawValue); w.string(user); w.string(session.rawValue); w.string(source)
        case .pamAnswers(let answers):
            w.tag(Tag.pamAnswers.rawValue)
            w.optional(answers) { w, answers in w.array(answers) { w, answer in w.optional(answer) { $0.string($1) } } }
        case .closeConnection:
            w.tag(Tag.closeConnection.rawValue)
        case .preAuthAudit(let kind, let user, let session, let fields):
            w.tag(Tag.preAuthAudit.rawValue); w.string(kind.rawValue)
            w.optional(user) { $0.string($1) }; w.optional(session) { $0.string($1.rawValue) }; w.fields(fields)
        case .openSession(let user, let session):
            w.tag(Tag.openSession.rawValue); w.string(user.rawValue); w.string(session.rawValue)
        case .elevations:
            w.tag(Tag.elevations.rawValue)
        case .audit(let kind, let fields):
            w.tag(Tag.audit.rawValue); w.string(kind.rawValue); w.fields(fields)
        case .createTranscript:
            w.tag(Tag.createTranscript.rawValue)
        case .spawn(let request):
            w.tag(Tag.spawn.rawValue)
            w.array(request.argv) { $0.string($1) }
            w.fields(request.environment)
            w.string(request.workingDirectory)
            w.double(request.timeoutSeconds)
            w.integer(Int64(request.outputLimit))
            w.double(request.killGraceSeconds)
            w.bytes(request.line)
        case .signalBackend(let pid, let signal):
            w.tag(Tag.signalBackend.rawValue); w.integer(pid); w.integer(signal)
        case .reapBackend(let pid):
            w.tag(Tag.reapBackend.rawValue); w.integer(pid)
        case .redeem(let id, let secret):
            w.tag(Tag.redeem.rawValue); w.integer(id); w.bytes(secret)
        case .endElevations(let reason):
            w.tag(Tag.endElevations.rawValue); w.string(reason)
        case .sweep:
            w.tag(Tag.sweep.rawValue)
        case .ownRequest(let id):
            w.tag(Tag.ownRequest.rawValue); w.integer(id)
        case .end(let reason, let fields):
            w.tag(Tag.end.rawValue); w.string(reason); w.optional(fields) { $0.fields($1) }
        case .ready:
            w.tag(Tag.ready.rawValue)
        case .lockbox, .sessionListing:
            w.tag(Tag.json.rawValue); try w.json(self)
        }
    }

    init(from r: inout MonitorWireReader) throws {
        guard let tag = Tag(rawValue: try r.tag()) else { throw MonitorWireError("an unknown request") }
        switch tag {
        case .publicKey: self = .publicKey(user: try r.string(), key: try r.string())
        case .keyboardInteractive:
            self = .keyboardInteractive(user: try r.string(), session: try r.session(), source: try r.string())
        case .pamAnswers:
            self = .pamAnswers(try r.optional { r in try r.array(minimumSize: 1) { r in try r.optional { try $0.string() } } })
        case .closeConnection: self = .closeConnection
        case .preAuthAudit:
            self = .preAuthAudit(kind: try r.auditKind(), user: try r.optional { try $0.string() },
                                 session: try r.optional { try $0.session() }, fields: try r.fields())
        case .openSession: self = .openSession(user: try r.userName(), session: try r.session())
        case .elevations: self = .elevations
        case .audit: self = .audit(kind: try r.auditKind(), fields: try r.fields())
        case .createTranscript: self = .createTranscript
        case .spawn:
            self = .spawn(ExecutionRequest(argv: try r.array(minimumSize: 4) { try $0.string() },
                                           environment: try r.fields(), workingDirectory: try r.string(),
                                           timeoutSeconds: try r.double(), outputLimit: try r.int(),
                                           killGraceSeconds: try r.double(), line: try r.bytes()))
        case .signalBackend: self = .signalBackend(pid: try r.integer(Int32.self), signal: try r.integer(Int32.self))
        case .reapBackend: self = .reapBackend(pid: try r.integer(Int32.self))
        case .redeem: self = .redeem(id: try r.integer(Int64.self), secret: try r.bytes())
        case .endElevations: self = .endElevations(reason: try r.string())
        case .sweep: self = .sweep
        case .ownRequest: self = .ownRequest(id: try r.integer(Int64.self))
        case .end: self = .end(reason: try r.string(), fields: try r.optional { try $0.fields() })
        case .ready: self = .ready
        case .json:
            self = try r.json(MonitorRequest.self)
            guard Self.travelsAsJSON(self) else { throw MonitorWireError("a request in the wrong frame") }
        }
    }

    private static func travelsAsJSON(_ request: MonitorRequest) -> Bool {
        switch request {
        case .lockbox, .sessionListing: true
        default: false
        }
    }
}

extension MonitorReply: MonitorWireBody {
    private enum Tag: UInt8 {
        case authorized = 1, pamMessages, pamResult, grants, spawned, exitStatus, done, lockboxOutput, refused, failed
        case notice
        /// `lockboxError`, `request` and `requests`: JSON.
        case json = 0xff
    }

    func write(to w: inout MonitorWireWriter) throws {
        switch self {
        case .authorized(let yes):
            w.tag(Tag.authorized.rawValue); w.bool(yes)
        case .pamMessages(let messages):
            w.tag(Tag.pamMessages.rawValue)
            w.array(messages) { w, message in w.tag(message.style.code); w.string(message.text) }
        case .pamResult(let success, let failure, let notice):
            w.tag(Tag.pamResult.rawValue); w.bool(success)
            w.optional(failure) { $0.string($1) }; w.optional(notice) { $0.string($1) }
        case .grants(let grants):
            w.tag(Tag.grants.rawValue)
            w.array(grants) { w, grant in
                w.string(grant.role)
                w.optional(grant.scope) { $0.string($1) }
                w.optional(grant.expires) { $0.double($1.timeIntervalSinceReferenceDate) }
                switch grant.source {
                case .baseline: w.tag(0)
                case .elevation(let id): w.tag(1); w.integer(id)
                }
            }
        case .spawned(let pid):
            w.tag(Tag.spawned.rawValue); w.integer(pid)
        case .exitStatus(let status):
            w.tag(Tag.exitStatus.rawValue); w.integer(status)
        case .done:
            w.tag(Tag.done.rawValue)
        case .lockboxOutput(let chunks, let status):
            w.tag(Tag.lockboxOutput.rawValue)
            w.array(chunks) { w, chunk in
                switch chunk {
                case .stdout(let bytes): w.tag(1); w.bytes(bytes)
                case .stderr(let bytes): w.tag(2); w.bytes(bytes)
                case .sensitive(let bytes): w.tag(3); w.bytes(bytes)
                }
            }
            w.integer(status)
        case .refused(let reason):
            w.tag(Tag.refused.rawValue); w.string(reason)
        case .failed(let reason):
            w.tag(Tag.failed.rawValue); w.string(reason)
        case .notice(let notice):
            w.tag(Tag.notice.rawValue); notice.write(to: &w)
        case .lockboxError, .request, .requests:
            w.tag(Tag.json.rawValue); try w.json(self)
        }
    }

    init(from r: inout MonitorWireReader) throws {
        guard let tag = Tag(rawValue: try r.tag()) else { throw MonitorWireError("an unknown reply") }
        switch tag {
        case .authorized: self = .authorized(try r.bool())
        case .pamMessages:
            self = .pamMessages(try r.array(minimumSize: 5) { r in
                WirePAMMessage(style: try WirePAMMessage.Style(code: try r.tag()), text: try r.string())
            })
        case .pamResult:
            self = .pamResult(success: try r.bool(), failure: try r.optional { try $0.string() },
                              notice: try r.optional { try $0.string() })
        case .grants:
            self = .grants(try r.array(minimumSize: 7) { r in
                let role = try r.string()
                let scope = try r.optional { try $0.string() }
                let expires = try r.optional { Date(timeIntervalSinceReferenceDate: try $0.double()) }
                let source: RoleGrant.Source
                switch try r.tag() {
                case 0: source = .baseline
                case 1: source = .elevation(requestID: try r.integer(Int64.self))
                default: throw MonitorWireError("an unknown grant source")
                }
                return RoleGrant(role: role, scope: scope, expires: expires, source: source)
            })
        case .spawned: self = .spawned(pid: try r.integer(Int32.self))
        case .exitStatus: self = .exitStatus(try r.integer(Int32.self))
        case .done: self = .done
        case .lockboxOutput:
            let chunks: [OutputChunk] = try r.array(minimumSize: 5) { r in
                switch try r.tag() {
                case 1: .stdout(try r.bytes())
                case 2: .stderr(try r.bytes())
                case 3: .sensitive(try r.bytes())
                default: throw MonitorWireError("an unknown output stream")
                }
            }
            self = .lockboxOutput(chunks, status: try r.integer(Int32.self))
        case .refused: self = .refused(try r.string())
        case .failed: self = .failed(try r.string())
        case .notice: self = .notice(try MonitorNotice(from: &r))
        case .json:
            self = try r.json(MonitorReply.self)
            switch self {
            case .lockboxError, .request, .requests: break
            default: throw MonitorWireError("a reply in the wrong frame")
            }
        }
    }
}

extension MonitorNotice {
    func write(to w: inout MonitorWireWriter) {
        switch self {
        case .grantEnded(let session, let requestID): w.tag(1); w.string(session.rawValue); w.integer(requestID)
        case .endSession(let session, let message): w.tag(2); w.string(session.rawValue); w.string(message)
        case .reload: w.tag(3)
        case .auditFailed: w.tag(4)
        case .listSessions(let query): w.tag(5); w.integer(query)
        }
    }

    init(from r: inout MonitorWireReader) throws {
        switch try r.tag() {
        case 1: self = .grantEnded(session: try r.session(), requestID: try r.integer(Int64.self))
        case 2: self = .endSession(session: try r.session(), message: try r.string())
        case 3: self = .reload
        case 4: self = .auditFailed
        case 5: self = .listSessions(query: try r.integer(UInt64.self))
        default: throw MonitorWireError("an unknown notice")
        }
    }
}

private extension WirePAMMessage.Style {
    var code: UInt8 {
        switch self {
        case .promptEchoOff: 1
        case .promptEchoOn: 2
        case .errorMessage: 3
        case .textInfo: 4
        }
    }

    init(code: UInt8) throws {
        switch code {
        case 1: self = .promptEchoOff
        case 2: self = .promptEchoOn
        case 3: self = .errorMessage
        case 4: self = .textInfo
        default: throw MonitorWireError("an unknown PAM message style")
        }
    }
}
