// gatehouse-demo-mailbox: the demo's stand-in for a real mailbox service.
//
// The gateway reaches it only through a policy argv template and posix_spawn,
// exactly as it would reach a production backend. It keeps its data in
// $GATEHOUSE_DEMO_DATA/mailboxes.json and appends one JSON line per invocation
// to $GATEHOUSE_DEMO_DATA/invocations.log, so tests can prove which backend
// runs happened (and that a denied line started none).
//
// It uses Glibc only, never Foundation: Foundation's start-up cost about 17 ms
// of CPU per run, which every command paid (see docs/performance.md). The
// JSON it reads and writes is the small subset its own data uses (MiniJSON.swift),
// written byte for byte as Foundation's encoders wrote it.
//
// Exit status: 0 success, 1 no such mailbox / already exists, 2 usage error,
// 3 data directory problem, 4 the mailbox lies outside the elevation's scope.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct Mailbox {
    var identity: String
    var displayName: String
    var primarySmtpAddress: String
    var prohibitSendQuotaBytes: Int64
    var itemCount: Int
    var totalItemSizeBytes: Int64
}

func fail(_ status: Int32, _ message: String) -> Never {
    writeAll(2, message + "\n")
    exit(status)
}

/// write(2) until every byte is out; a short write is retried.
func writeAll(_ fd: Int32, _ text: String) {
    var text = text
    text.withUTF8 { buffer in
        var offset = 0
        while offset < buffer.count {
            let n = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            offset += n
        }
    }
}

func formatSize(_ bytes: Int64) -> String {
    let units: [(String, Int64)] = [("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)]
    for (name, factor) in units where bytes >= factor && bytes % factor == 0 {
        return "\(bytes / factor)\(name)"
    }
    return "\(bytes)B"
}

/// Accepts a plain byte count or a number with a 1024-based unit (KB, MB, GB, TB).
func parseSize(_ text: String) -> Int64? {
    let upper = text.uppercased()
    let units: [(String, Int64)] = [("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10), ("B", 1)]
    for (name, factor) in units where upper.hasSuffix(name) {
        guard let n = Int64(upper.dropLast(name.count)), n >= 0 else { return nil }
        let (v, overflow) = n.multipliedReportingOverflow(by: factor)
        return overflow ? nil : v
    }
    return Int64(upper).flatMap { $0 >= 0 ? $0 : nil }
}

/// A mailbox as the JSON object the gateway renders (Get-Mailbox, Set-Mailbox,
/// New-Mailbox); key order is the column order of the gateway's table.
func mailboxObject(_ m: Mailbox) -> String {
    "{\"Identity\": \(JSON.string(m.identity)), \"DisplayName\": \(JSON.string(m.displayName)), "
        + "\"PrimarySmtpAddress\": \(JSON.string(m.primarySmtpAddress)), "
        + "\"ProhibitSendQuota\": \(JSON.string(formatSize(m.prohibitSendQuotaBytes)))}"
}

/// The environment's variable names, from environ(7).
func environmentNames() -> [String] {
    var names = Set<String>()
    var entry = environ
    while let pointer = entry.pointee {
        let text = String(cString: pointer)
        if let equals = text.firstIndex(of: "=") { names.insert(String(text[..<equals])) }
        entry += 1
    }
    return names.sorted()
}

/// Now in UTC as ISO 8601 to the second, like ISO8601DateFormatter's default.
func timestamp() -> String {
    var now = time(nil)
    var parts = tm()
    gmtime_r(&now, &parts)
    func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
    return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
}

guard let dataDirPointer = getenv("GATEHOUSE_DEMO_DATA"), dataDirPointer.pointee == UInt8(ascii: "/") else {
    fail(3, "GATEHOUSE_DEMO_DATA must name an absolute directory")
}
let dataDir = String(cString: dataDirPointer)
let dataFile = (dataDir.hasSuffix("/") ? dataDir : dataDir + "/") + "mailboxes.json"
let journal = (dataDir.hasSuffix("/") ? dataDir : dataDir + "/") + "invocations.log"
let arguments = Array(CommandLine.arguments.dropFirst())

// Journal first: one line per invocation, appended with O_APPEND so
// concurrent runs never interleave within a line. Keys are sorted, as
// JSONSerialization's .sortedKeys wrote them.
do {
    let actor = getenv("GATEHOUSE_ACTOR").map { String(cString: $0) } ?? ""
    let line = "{\"actor\":\(JSON.string(actor)),\"argv\":\(JSON.stringArray(arguments)),"
        + "\"env\":\(JSON.stringArray(environmentNames())),\"time\":\(JSON.string(timestamp()))}\n"
    let fd = open(journal, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
    guard fd >= 0 else { fail(3, "cannot open \(journal)") }
    writeAll(fd, line)
    close(fd)
}

// A lock file serialises read-modify-write of the data file.
let lockFD = open(dataDir + "/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
guard lockFD >= 0, flock(lockFD, LOCK_EX) == 0 else { fail(3, "cannot lock \(dataDir)") }

func load() -> [Mailbox] {
    guard let bytes = readFile(dataFile) else { return [] }
    guard let boxes = JSON.parseMailboxes(bytes) else { fail(3, "\(dataFile) is not valid mailbox data") }
    return boxes
}

/// The whole file, or nil when it cannot be opened (a missing file is no data).
func readFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return nil
        }
        if n == 0 { return bytes }
        bytes += chunk[0..<n]
    }
}

/// Replaces the data file atomically: a temporary file beside it, fsync, rename.
func save(_ boxes: [Mailbox]) {
    let tmp = dataFile + ".tmp-\(getpid())"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { fail(3, "cannot write \(dataFile)") }
    writeAll(fd, JSON.prettyMailboxes(boxes))
    guard fsync(fd) == 0, close(fd) == 0, rename(tmp, dataFile) == 0 else {
        unlink(tmp)
        fail(3, "cannot write \(dataFile)")
    }
}

/// Parses `--name value` pairs; anything else is a usage error.
func options(_ args: ArraySlice<String>, allowed: Set<String>) -> [String: String] {
    var result: [String: String] = [:]
    var i = args.startIndex
    while i < args.endIndex {
        let name = args[i]
        guard name.hasPrefix("--"), allowed.contains(String(name.dropFirst(2))), i + 1 < args.endIndex,
              result[String(name.dropFirst(2))] == nil else {
            fail(2, "usage error near '\(name)'")
        }
        result[String(name.dropFirst(2))] = args[i + 1]
        i += 2
    }
    return result
}

guard let command = arguments.first else { fail(2, "usage: gatehouse-demo-mailbox get|report|statistics|set|new|remove [--option value]...") }
var boxes = load()
let rest = arguments.dropFirst()

/// The tenant a mailbox belongs to: the first label of its address's domain
/// (alice@contoso.com → contoso).
func tenant(of box: Mailbox) -> String {
    let domain = box.primarySmtpAddress.split(separator: "@").last.map(String.init) ?? ""
    return domain.split(separator: ".").first.map { $0.lowercased() } ?? ""
}

/// Changes are confined to the elevation's scope, which the gateway passes
/// from the claim (`--tenant {scope}`), never from the typed line.
func requireScope(_ box: Mailbox, _ scope: String?) {
    guard let scope else { return }
    guard tenant(of: box) == scope.lowercased() else {
        fail(4, "Mailbox '\(box.identity)' is in tenant \(tenant(of: box)), outside your elevation's scope (\(scope)).")
    }
}

switch command {
case "get":
    let opts = options(rest, allowed: ["identity", "result-size"])
    if let identity = opts["identity"] {
        guard let box = boxes.first(where: { $0.identity.lowercased() == identity.lowercased() }) else {
            fail(1, "No mailbox '\(identity)'.")
        }
        print(mailboxObject(box))
    } else {
        let limit = opts["result-size"].flatMap(Int.init) ?? 100
        let shown = boxes.sorted { $0.identity < $1.identity }.prefix(limit)
        print("[" + shown.map { "\n  " + mailboxObject($0) }.joined(separator: ",") + "\n]")
    }
case "report":
    // JSON objects for the gateway's formatters; repeated --identity filters.
    var wanted: [String] = []
    var i = rest.startIndex
    while i < rest.endIndex {
        guard rest[i] == "--identity", i + 1 < rest.endIndex else { fail(2, "usage error near '\(rest[i])'") }
        wanted.append(rest[i + 1].lowercased())
        i += 2
    }
    let chosen = boxes.sorted { $0.identity < $1.identity }
        .filter { wanted.isEmpty || wanted.contains($0.identity.lowercased()) }
    // Key order is part of the output (the default table's column order).
    var text = "["
    for (n, box) in chosen.enumerated() {
        let fields = [
            "\"Identity\": \(JSON.string(box.identity))",
            "\"DisplayName\": \(JSON.string(box.displayName))",
            "\"PrimarySmtpAddress\": \(JSON.string(box.primarySmtpAddress))",
            "\"ProhibitSendQuota\": \(JSON.string(formatSize(box.prohibitSendQuotaBytes)))",
            "\"ItemCount\": \(box.itemCount)",
            "\"TotalItemSizeBytes\": \(box.totalItemSizeBytes)",
        ]
        text += (n == 0 ? "\n  {" : ",\n  {") + fields.joined(separator: ", ") + "}"
    }
    print(text + "\n]")
case "statistics":
    let opts = options(rest, allowed: ["identity"])
    guard let identity = opts["identity"] else { fail(2, "--identity is required") }
    guard let box = boxes.first(where: { $0.identity.lowercased() == identity.lowercased() }) else {
        fail(1, "No mailbox '\(identity)'.")
    }
    print("{\"Identity\": \(JSON.string(box.identity)), \"ItemCount\": \(box.itemCount), "
          + "\"TotalItemSize\": \(JSON.string(formatSize(box.totalItemSizeBytes)))}")
case "set":
    let opts = options(rest, allowed: ["identity", "prohibit-send-quota", "tenant"])
    guard let identity = opts["identity"], let quotaText = opts["prohibit-send-quota"],
          let quota = parseSize(quotaText) else { fail(2, "--identity and --prohibit-send-quota are required") }
    guard let index = boxes.firstIndex(where: { $0.identity.lowercased() == identity.lowercased() }) else {
        fail(1, "No mailbox '\(identity)'.")
    }
    requireScope(boxes[index], opts["tenant"])
    boxes[index].prohibitSendQuotaBytes = quota
    save(boxes)
    print(mailboxObject(boxes[index]))
case "new":
    let opts = options(rest, allowed: ["identity", "display-name", "tenant"])
    guard let identity = opts["identity"], let name = opts["display-name"] else {
        fail(2, "--identity and --display-name are required")
    }
    guard !boxes.contains(where: { $0.identity.lowercased() == identity.lowercased() }) else {
        fail(1, "Mailbox '\(identity)' already exists.")
    }
    let address = identity.contains("@") ? identity : "\(identity)@\(opts["tenant"] ?? "example").com"
    if let scope = opts["tenant"], !address.lowercased().hasSuffix("@\(scope.lowercased()).com") {
        fail(4, "Mailbox '\(identity)' would be outside your elevation's scope (\(scope)).")
    }
    boxes.append(Mailbox(identity: identity, displayName: name, primarySmtpAddress: address,
                         prohibitSendQuotaBytes: 2 << 30, itemCount: 0, totalItemSizeBytes: 0))
    save(boxes)
    print(mailboxObject(boxes[boxes.count - 1]))
case "remove":
    let opts = options(rest, allowed: ["identity", "tenant"])
    guard let identity = opts["identity"] else { fail(2, "--identity is required") }
    guard let index = boxes.firstIndex(where: { $0.identity.lowercased() == identity.lowercased() }) else {
        fail(1, "No mailbox '\(identity)'.")
    }
    requireScope(boxes[index], opts["tenant"])
    boxes.remove(at: index)
    save(boxes)
    print("{\"Identity\": \(JSON.string(identity)), \"Removed\": true}")
default:
    fail(2, "unknown command '\(command)'")
}
