import Glibc

/// What the daemon sends a `gatehouse-pam-worker`, one per `PacketChannel`
/// packet. A worker is idle until `begin`; inside a conversation it waits
/// for `answers` or `cancel` after each `conversation` it sent.
public enum PAMWorkerRequest: Equatable, Sendable {
    /// Start one transaction (`pam_start` with `PAM_RHOST`, authenticate, acct_mgmt, end).
    case begin(service: String, user: String, remoteHost: String)
    /// The client's replies to the last `conversation`, one per message, nil
    /// for the notices. Secrets: never logged, wiped from the packet after use.
    case answers([String?])
    /// The client gave up or went: the conversation function fails (`PAM_CONV_ERR`).
    case cancel
}

/// What a worker sends back: PAM's messages for the client, then the result.
public enum PAMWorkerReply: Equatable, Sendable {
    /// One call of PAM's conversation function.
    case conversation([PAMMessage])
    /// The transaction's end: success, or the PAM call that failed.
    case result(PAMWorkerResult)
}

/// How a transaction ended.
public enum PAMWorkerResult: Equatable, Sendable {
    case success
    case failure(PAMError)
}

/// A packet that is not a well-formed message of this protocol version, or a
/// field over its limit. Its text names the field, never its content.
public struct PAMWorkerProtocolError: Error, Equatable, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// The binary form: a version byte, a kind byte, then the fields; a string
/// is a 16-bit big-endian length and that many bytes of UTF-8 without NUL
/// (PAM takes C strings, where a NUL would cut an answer short). Every field
/// has a limit, checked when encoding and when decoding, and a packet with
/// bytes left over is refused, so there is exactly one encoding per message.
public enum PAMWorkerProtocol {
    public static let version: UInt8 = 1
    /// A user name, as `UserName` allows.
    public static let maxUserBytes = 64
    /// A PAM service name (a file under /etc/pam.d).
    public static let maxServiceBytes = 64
    /// The client's address.
    public static let maxRemoteHostBytes = 256
    /// One prompt or notice of a PAM module.
    public static let maxMessageBytes = 1024
    /// One answer of the client (the SSH side allows 1024 bytes too).
    public static let maxAnswerBytes = 1024
    /// `pam_strerror` text and the name of the failed call.
    public static let maxErrorBytes = 1024
    public static let maxOperationBytes = 64
    /// Messages in one conversation call (PAM allows 32; no stack here sends more than a few).
    public static let maxMessages = 16
    /// The largest packet either side accepts: a full conversation call.
    public static let maxPacketBytes = 2 + 1 + maxMessages * (1 + 2 + maxMessageBytes)

    enum Kind: UInt8 {
        case begin = 1, answers, cancel, conversation, result
    }

    public static func encode(_ request: PAMWorkerRequest) throws(PAMWorkerProtocolError) -> [UInt8] {
        var writer = Writer()
        switch request {
        case .begin(let service, let user, let remoteHost):
            writer.kind(.begin)
            try writer.string(service, "service", limit: maxServiceBytes)
            try writer.string(user, "user", limit: maxUserBytes)
            try writer.string(remoteHost, "remote host", limit: maxRemoteHostBytes)
        case .answers(let answers):
            writer.kind(.answers)
            try writer.count(answers.count, "answers", range: 1...maxMessages)
            for answer in answers {
                writer.bytes.append(answer == nil ? 0 : 1)
                if let answer { try writer.string(answer, "answer", limit: maxAnswerBytes) }
            }
        case .cancel:
            writer.kind(.cancel)
        }
        return writer.bytes
    }

    public static func encode(_ reply: PAMWorkerReply) throws(PAMWorkerProtocolError) -> [UInt8] {
        var writer = Writer()
        switch reply {
        case .conversation(let messages):
            writer.kind(.conversation)
            try writer.count(messages.count, "messages", range: 1...maxMessages)
            for message in messages {
                writer.bytes.append(styleCode(message.style))
                try writer.string(message.text, "message", limit: maxMessageBytes)
            }
        case .result(.success):
            writer.kind(.result)
            writer.bytes.append(0)
        case .result(.failure(let error)):
            writer.kind(.result)
            writer.bytes.append(1)
            writer.bytes += withUnsafeBytes(of: error.code.bigEndian) { Array($0) }
            try writer.string(error.message, "error text", limit: maxErrorBytes)
            try writer.string(error.operation, "operation", limit: maxOperationBytes)
        }
        return writer.bytes
    }

    public static func decodeRequest(_ bytes: [UInt8]) throws(PAMWorkerProtocolError) -> PAMWorkerRequest {
        var reader = try Reader(bytes)
        let request: PAMWorkerRequest
        switch try reader.kind() {
        case .begin:
            request = .begin(service: try reader.string("service", limit: maxServiceBytes),
                             user: try reader.string("user", limit: maxUserBytes),
                             remoteHost: try reader.string("remote host", limit: maxRemoteHostBytes))
        case .answers:
            var answers: [String?] = []
            for _ in 0..<(try reader.count("answers", range: 1...maxMessages)) {
                switch try reader.byte("answer flag") {
                case 0: answers.append(nil)
                case 1: answers.append(try reader.string("answer", limit: maxAnswerBytes))
                default: throw PAMWorkerProtocolError("answer flag is neither 0 nor 1")
                }
            }
            request = .answers(answers)
        case .cancel:
            request = .cancel
        case let kind:
            throw PAMWorkerProtocolError("a worker's message (\(kind)) sent to a worker")
        }
        try reader.end()
        return request
    }

    public static func decodeReply(_ bytes: [UInt8]) throws(PAMWorkerProtocolError) -> PAMWorkerReply {
        var reader = try Reader(bytes)
        let reply: PAMWorkerReply
        switch try reader.kind() {
        case .conversation:
            var messages: [PAMMessage] = []
            for _ in 0..<(try reader.count("messages", range: 1...maxMessages)) {
                let style = try style(try reader.byte("style"))
                messages.append(PAMMessage(style: style, text: try reader.string("message", limit: maxMessageBytes)))
            }
            reply = .conversation(messages)
        case .result:
            switch try reader.byte("result flag") {
            case 0:
                reply = .result(.success)
            case 1:
                var code: UInt32 = 0
                for _ in 0..<4 { code = code << 8 | UInt32(try reader.byte("code")) }
                let message = try reader.string("error text", limit: maxErrorBytes)
                let operation = try reader.string("operation", limit: maxOperationBytes)
                reply = .result(.failure(PAMError(code: Int32(bitPattern: code), message: message, operation: operation)))
            default:
                throw PAMWorkerProtocolError("result flag is neither 0 nor 1")
            }
        case let kind:
            throw PAMWorkerProtocolError("the daemon's message (\(kind)) sent by a worker")
        }
        try reader.end()
        return reply
    }

    static func styleCode(_ style: PAMMessageStyle) -> UInt8 {
        switch style {
        case .promptEchoOff: 1
        case .promptEchoOn: 2
        case .errorMessage: 3
        case .textInfo: 4
        }
    }

    static func style(_ code: UInt8) throws(PAMWorkerProtocolError) -> PAMMessageStyle {
        switch code {
        case 1: .promptEchoOff
        case 2: .promptEchoOn
        case 3: .errorMessage
        case 4: .textInfo
        default: throw PAMWorkerProtocolError("unknown message style \(code)")
        }
    }

    struct Writer {
        var bytes: [UInt8] = [PAMWorkerProtocol.version]

        mutating func kind(_ kind: Kind) { bytes.append(kind.rawValue) }

        mutating func count(_ count: Int, _ field: String, range: ClosedRange<Int>) throws(PAMWorkerProtocolError) {
            guard range.contains(count) else { throw PAMWorkerProtocolError("\(count) \(field), allowed \(range)") }
            bytes.append(UInt8(count))
        }

        mutating func string(_ text: String, _ field: String, limit: Int) throws(PAMWorkerProtocolError) {
            let utf8 = text.utf8
            guard utf8.count <= limit else { throw PAMWorkerProtocolError("\(field) longer than \(limit) bytes") }
            guard !utf8.contains(0) else { throw PAMWorkerProtocolError("\(field) holds a NUL byte") }
            bytes.append(UInt8(utf8.count >> 8))
            bytes.append(UInt8(utf8.count & 0xff))
            bytes += utf8
        }
    }

    struct Reader {
        let bytes: [UInt8]
        var offset = 0

        init(_ bytes: [UInt8]) throws(PAMWorkerProtocolError) {
            self.bytes = bytes
            let version = try byte("version")
            guard version == PAMWorkerProtocol.version else {
                throw PAMWorkerProtocolError("protocol version \(version), expected \(PAMWorkerProtocol.version)")
            }
        }

        mutating func byte(_ field: String) throws(PAMWorkerProtocolError) -> UInt8 {
            guard offset < bytes.count else { throw PAMWorkerProtocolError("truncated before the \(field)") }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func kind() throws(PAMWorkerProtocolError) -> Kind {
            let code = try byte("kind")
            guard let kind = Kind(rawValue: code) else { throw PAMWorkerProtocolError("unknown message kind \(code)") }
            return kind
        }

        mutating func count(_ field: String, range: ClosedRange<Int>) throws(PAMWorkerProtocolError) -> Int {
            let count = Int(try byte("number of \(field)"))
            guard range.contains(count) else { throw PAMWorkerProtocolError("\(count) \(field), allowed \(range)") }
            return count
        }

        mutating func string(_ field: String, limit: Int) throws(PAMWorkerProtocolError) -> String {
            let length = Int(try byte("\(field) length")) << 8 | Int(try byte("\(field) length"))
            guard length <= limit else { throw PAMWorkerProtocolError("\(field) longer than \(limit) bytes") }
            guard length <= bytes.count - offset else { throw PAMWorkerProtocolError("truncated in the \(field)") }
            let slice = bytes[offset..<offset + length]
            offset += length
            guard !slice.contains(0) else { throw PAMWorkerProtocolError("\(field) holds a NUL byte") }
            guard let text = String(validating: slice, as: UTF8.self) else {
                throw PAMWorkerProtocolError("\(field) is not UTF-8")
            }
            return text
        }

        func end() throws(PAMWorkerProtocolError) {
            guard offset == bytes.count else {
                throw PAMWorkerProtocolError("\(bytes.count - offset) bytes after the message")
            }
        }
    }
}
