// The JSON this backend reads and writes, without Foundation. Output is byte
// for byte what JSONSerialization and JSONEncoder (.prettyPrinted,
// .sortedKeys) wrote before, so the journal, the report and the data file
// look the same to the gateway and to the tests. The gateway's own parser
// (CmdletShell.JSONValue) is not reused: linking CmdletShell would bring
// Foundation and the policy libraries back into a program that must start in
// about a millisecond, and the demo backend must stay separate from the gateway.

enum JSON {
    /// A quoted JSON string, escaped as Foundation escapes it (`/` included).
    static func string(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "/": out += "\\/"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case "\u{00}"..."\u{1F}":
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    static func stringArray(_ items: [String]) -> String {
        "[" + items.map(string).joined(separator: ",") + "]"
    }

    /// The data file as JSONEncoder wrote it: pretty-printed, keys sorted, no final newline.
    static func prettyMailboxes(_ boxes: [Mailbox]) -> String {
        let objects = boxes.map { box in
            "  {\n"
                + "    \"displayName\" : \(string(box.displayName)),\n"
                + "    \"identity\" : \(string(box.identity)),\n"
                + "    \"itemCount\" : \(box.itemCount),\n"
                + "    \"primarySmtpAddress\" : \(string(box.primarySmtpAddress)),\n"
                + "    \"prohibitSendQuotaBytes\" : \(box.prohibitSendQuotaBytes),\n"
                + "    \"totalItemSizeBytes\" : \(box.totalItemSizeBytes)\n"
                + "  }"
        }
        return objects.isEmpty ? "[\n\n]" : "[\n" + objects.joined(separator: ",\n") + "\n]"
    }

    /// The data file's mailboxes; nil when it is not an array of complete
    /// mailbox objects (unknown keys are ignored, as JSONDecoder ignored them).
    static func parseMailboxes(_ bytes: [UInt8]) -> [Mailbox]? {
        var parser = Parser(bytes: bytes)
        guard let value = parser.document(), case .array(let items) = value else { return nil }
        var boxes: [Mailbox] = []
        for item in items {
            guard case .object(let fields) = item else { return nil }
            func text(_ key: String) -> String? {
                if case .string(let s)? = fields[key] { return s } else { return nil }
            }
            func integer(_ key: String) -> Int64? {
                if case .integer(let n)? = fields[key] { return n } else { return nil }
            }
            guard let identity = text("identity"), let displayName = text("displayName"),
                  let address = text("primarySmtpAddress"), let quota = integer("prohibitSendQuotaBytes"),
                  let count = integer("itemCount"), let size = integer("totalItemSizeBytes"),
                  let itemCount = Int(exactly: count) else { return nil }
            boxes.append(Mailbox(identity: identity, displayName: displayName, primarySmtpAddress: address,
                                 prohibitSendQuotaBytes: quota, itemCount: itemCount, totalItemSizeBytes: size))
        }
        return boxes
    }

    indirect enum Value {
        case string(String), integer(Int64), other, array([Value]), object([String: Value])
    }

    /// Recursive descent over RFC 8259; numbers with a fraction or exponent
    /// parse but are not integers, so a mailbox holding one is rejected.
    struct Parser {
        let bytes: [UInt8]
        var i = 0
        var depth = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        mutating func document() -> Value? {
            guard let value = value() else { return nil }
            skipSpace()
            return i == bytes.count ? value : nil
        }

        mutating func skipSpace() {
            while i < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 }
        }

        mutating func literal(_ word: String) -> Bool {
            let w = Array(word.utf8)
            guard i + w.count <= bytes.count, Array(bytes[i..<i + w.count]) == w else { return false }
            i += w.count
            return true
        }

        mutating func value() -> Value? {
            skipSpace()
            guard i < bytes.count, depth < 64 else { return nil }
            switch bytes[i] {
            case UInt8(ascii: "\""): return string().map(Value.string)
            case UInt8(ascii: "["):
                i += 1; depth += 1; defer { depth -= 1 }
                var items: [Value] = []
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    guard let item = value() else { return nil }
                    items.append(item)
                    skipSpace()
                    guard i < bytes.count else { return nil }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                    return nil
                }
            case UInt8(ascii: "{"):
                i += 1; depth += 1; defer { depth -= 1 }
                var fields: [String: Value] = [:]
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(fields) }
                while true {
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: "\""), let key = string() else { return nil }
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { return nil }
                    i += 1
                    guard let item = value() else { return nil }
                    fields[key] = item
                    skipSpace()
                    guard i < bytes.count else { return nil }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(fields) }
                    return nil
                }
            case UInt8(ascii: "t"): return literal("true") ? .other : nil
            case UInt8(ascii: "f"): return literal("false") ? .other : nil
            case UInt8(ascii: "n"): return literal("null") ? .other : nil
            default: return number()
            }
        }

        mutating func number() -> Value? {
            let start = i
            if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
            let digitsStart = i
            while i < bytes.count, (0x30...0x39).contains(bytes[i]) { i += 1 }
            guard i > digitsStart else { return nil }
            var integral = true
            if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
                integral = false
                i += 1
                let fraction = i
                while i < bytes.count, (0x30...0x39).contains(bytes[i]) { i += 1 }
                guard i > fraction else { return nil }
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
                integral = false
                i += 1
                if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
                let exponent = i
                while i < bytes.count, (0x30...0x39).contains(bytes[i]) { i += 1 }
                guard i > exponent else { return nil }
            }
            guard integral else { return .other }
            return Int64(String(decoding: bytes[start..<i], as: UTF8.self)).map(Value.integer) ?? .other
        }

        /// A string starting at the opening quote; escapes decoded, UTF-8 checked.
        mutating func string() -> String? {
            i += 1
            var scalars = String.UnicodeScalarView()
            var run: [UInt8] = []
            func flush() -> Bool {
                guard !run.isEmpty else { return true }
                guard let text = String(validating: run, as: UTF8.self) else { return false }
                scalars.append(contentsOf: text.unicodeScalars)
                run.removeAll()
                return true
            }
            while i < bytes.count {
                let b = bytes[i]
                i += 1
                switch b {
                case UInt8(ascii: "\""):
                    return flush() ? String(scalars) : nil
                case UInt8(ascii: "\\"):
                    guard flush(), i < bytes.count else { return nil }
                    let e = bytes[i]
                    i += 1
                    switch e {
                    case UInt8(ascii: "\""): scalars.append("\"")
                    case UInt8(ascii: "\\"): scalars.append("\\")
                    case UInt8(ascii: "/"): scalars.append("/")
                    case UInt8(ascii: "b"): scalars.append("\u{08}")
                    case UInt8(ascii: "f"): scalars.append("\u{0C}")
                    case UInt8(ascii: "n"): scalars.append("\n")
                    case UInt8(ascii: "r"): scalars.append("\r")
                    case UInt8(ascii: "t"): scalars.append("\t")
                    case UInt8(ascii: "u"):
                        guard var unit = hex4() else { return nil }
                        if (0xD800..<0xDC00).contains(unit) {
                            guard literal("\\u"), let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                            unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let scalar = Unicode.Scalar(unit) else { return nil }
                        scalars.append(scalar)
                    default: return nil
                    }
                case 0x00..<0x20: return nil
                default: run.append(b)
                }
            }
            return nil
        }

        mutating func hex4() -> UInt32? {
            guard i + 4 <= bytes.count,
                  let n = UInt32(String(decoding: bytes[i..<i + 4], as: UTF8.self), radix: 16) else { return nil }
            i += 4
            return n
        }
    }
}
