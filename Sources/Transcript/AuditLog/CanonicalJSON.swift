import Foundation
import GatehouseCore

/// A JSON value with one canonical byte encoding, so that an audit event
/// hashes the same way in the daemon, in `gatehouse audit verify` and in any
/// auditor's own script.
///
/// The encoding is that of Python's
/// `json.dumps(v, sort_keys=True, ensure_ascii=False, separators=(",", ":"))`:
/// keys sorted by code point, no whitespace, strings escaped minimally
/// (`\"`, `\\`, `\b \f \n \r \t`, other controls as `\u00xx`), everything else
/// raw UTF-8. Numbers are integers only.
public enum JSONValue: Sendable, Equatable, Codable {
    case string(String)
    case int(Int)
    case bool(Bool)
    case null
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        // Most values in an audit line are strings, then objects: trying
        // them first keeps failed (throwing) attempts rare.
        if c.decodeNil() { self = .null; return }
        if let s = try? c.decode(String.self) { self = .string(s); return }
        if let o = try? c.decode([String: JSONValue].self) { self = .object(o); return }
        if let i = try? c.decode(Int.self) { self = .int(i); return }
        if let b = try? c.decode(Bool.self) { self = .bool(b); return }
        if let a = try? c.decode([JSONValue].self) { self = .array(a); return }
        throw DecodingError.dataCorruptedError(in: c, debugDescription: "unsupported JSON value (only integers, strings, booleans, arrays, objects)")
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let s): try c.encode(s)
        case .int(let i): try c.encode(i)
        case .bool(let b): try c.encode(b)
        case .null: try c.encodeNil()
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    /// Parses one JSON text (one audit line). JSONSerialization is several
    /// times faster than decoding this enum with JSONDecoder, which matters
    /// when `verify` or `reindex` reads a long log.
    public static func parse(_ bytes: some Collection<UInt8>) throws -> JSONValue {
        let object = try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
        guard let value = JSONValue(foundation: object) else { throw ParseError() }
        return value
    }

    /// A JSON value this type does not represent (a fraction, say).
    public struct ParseError: Error {}

    init?(foundation object: Any) {
        switch object {
        case let s as String:
            self = .string(s)
        case let d as [String: Any]:
            var members: [String: JSONValue] = [:]
            members.reserveCapacity(d.count)
            for (k, v) in d {
                guard let value = JSONValue(foundation: v) else { return nil }
                members[k] = value
            }
            self = .object(members)
        case let a as [Any]:
            var items: [JSONValue] = []
            for v in a {
                guard let value = JSONValue(foundation: v) else { return nil }
                items.append(value)
            }
            self = .array(items)
        case is NSNull:
            self = .null
        case let n as NSNumber:
            switch String(cString: n.objCType) {
            case "c", "B": self = .bool(n.boolValue)
            case "d", "f": return nil
            default: self = .int(n.intValue)
            }
        default:
            return nil
        }
    }

    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var int: Int? { if case .int(let i) = self { return i }; return nil }
    public var object: [String: JSONValue]? { if case .object(let o) = self { return o }; return nil }

    /// The canonical encoding (see the type's documentation).
    public var canonicalBytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(to: &out)
        return out
    }

    public func write(to out: inout [UInt8]) {
        switch self {
        case .string(let s): JSONValue.writeString(s, to: &out)
        case .int(let i): out.append(contentsOf: String(i).utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .null: out.append(contentsOf: "null".utf8)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (n, item) in items.enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                item.write(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            // Sorting by UTF-8 bytes equals sorting by code point.
            let keys = members.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            for (n, key) in keys.enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                JSONValue.writeString(key, to: &out)
                out.append(UInt8(ascii: ":"))
                members[key]!.write(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// Writes `s` as a JSON string with minimal escaping.
    public static func writeString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { writeEscaped($0, to: &out) }
        out.append(UInt8(ascii: "\""))
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    static func writeEscape(_ b: UInt8, to out: inout [UInt8]) {
        out.append(0x5c)
        switch b {
        case 0x22: out.append(0x22)
        case 0x5c: out.append(0x5c)
        case 0x08: out.append(UInt8(ascii: "b"))
        case 0x0c: out.append(UInt8(ascii: "f"))
        case 0x0a: out.append(UInt8(ascii: "n"))
        case 0x0d: out.append(UInt8(ascii: "r"))
        case 0x09: out.append(UInt8(ascii: "t"))
        default:
            out.append(UInt8(ascii: "u"))
            out.append(0x30)
            out.append(0x30)
            out.append(hexDigits[Int(b >> 4)])
            out.append(hexDigits[Int(b & 0xf)])
        }
    }

    /// Escapes UTF-8 bytes for the inside of a JSON string, in one pass.
    /// Bytes that may be ill-formed (what a client typed) become U+FFFD
    /// exactly as `String(decoding:as:)` would make them, so the result is
    /// always valid JSON text.
    public static func writeEscaped(_ bytes: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        UTF8Escaping.escape(bytes, rules: JSONStringRules(), into: &out)
    }
}

/// Minimal JSON string escaping (RFC 8259 section 7): `"`, `\\` and C0
/// only; DEL and every scalar above ASCII go through raw.
struct JSONStringRules: UTF8EscapeRules {
    @inline(__always)
    func isPlain(word: UInt64) -> Bool {
        !UTF8Escaping.hasControlOrNonASCII(word) && !UTF8Escaping.contains(0x22, in: word)
            && !UTF8Escaping.contains(0x5c, in: word)
    }

    @inline(__always)
    func lookMask(word: UInt64) -> UInt64 {
        UTF8Escaping.controlOrNonASCIIMask(word) | UTF8Escaping.mask(of: 0x22, in: word)
            | UTF8Escaping.mask(of: 0x5c, in: word)
    }

    @inline(__always)
    func isPlain(_ byte: UInt8) -> Bool { !byte.isC0Control && byte != 0x22 && byte != 0x5c }

    func escape(ascii byte: UInt8, into out: inout [UInt8]) { JSONValue.writeEscape(byte, to: &out) }

    @inline(__always)
    func needsEscape(scalar: UInt32) -> Bool { false }

    func escape(scalar: UInt32, into out: inout [UInt8]) {
        preconditionFailure("JSON strings escape no scalar above ASCII")
    }
}
