// gatehouse-demo-mailbox: the demo's stand-in for a real mailbox service.
//
// The gateway reaches it only through a policy argv template and posix_spawn,
// exactly as it would reach a production backend. It keeps its data in
// $GATEHOUSE_DEMO_DATA/mailboxes.json and appends one JSON line per invocation
// to $GATEHOUSE_DEMO_DATA/invocations.log, so tests can prove which backend
// runs happened (and that a denied line started none).
//
// Exit status: 0 success, 1 no such mailbox / already exists, 2 usage error,
// 3 data directory problem, 4 the mailbox lies outside the elevation's scope.
import Foundation

struct Mailbox: Codable {
    var identity: String
    var displayName: String
    var primarySmtpAddress: String
    var prohibitSendQuotaBytes: Int64
    var itemCount: Int
    var totalItemSizeBytes: Int64
}

func fail(_ status: Int32, _ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(status)
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

func printMailbox(_ m: Mailbox) {
    print("""
    Identity           : \(m.identity)
    DisplayName        : \(m.displayName)
    PrimarySmtpAddress : \(m.primarySmtpAddress)
    ProhibitSendQuota  : \(formatSize(m.prohibitSendQuotaBytes))
    """)
}

let environment = ProcessInfo.processInfo.environment
guard let dataDir = environment["GATEHOUSE_DEMO_DATA"], dataDir.hasPrefix("/") else {
    fail(3, "GATEHOUSE_DEMO_DATA must name an absolute directory")
}
let dataFile = URL(fileURLWithPath: dataDir).appendingPathComponent("mailboxes.json")
let journal = URL(fileURLWithPath: dataDir).appendingPathComponent("invocations.log")
let arguments = Array(CommandLine.arguments.dropFirst())

// Journal first: one line per invocation, appended with O_APPEND so
// concurrent runs never interleave within a line.
do {
    let record: [String: Any] = [
        "time": ISO8601DateFormatter().string(from: Date()),
        "actor": environment["GATEHOUSE_ACTOR"] ?? "",
        "argv": arguments,
        "env": environment.keys.sorted(),
    ]
    var line = try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys])
    line.append(0x0a)
    let fd = open(journal.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
    guard fd >= 0 else { fail(3, "cannot open \(journal.path)") }
    _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
} catch {
    fail(3, "cannot write journal: \(error)")
}

// A lock file serialises read-modify-write of the data file.
let lockFD = open(dataDir + "/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
guard lockFD >= 0, flock(lockFD, LOCK_EX) == 0 else { fail(3, "cannot lock \(dataDir)") }

func load() -> [Mailbox] {
    guard let data = try? Data(contentsOf: dataFile) else { return [] }
    guard let boxes = try? JSONDecoder().decode([Mailbox].self, from: data) else {
        fail(3, "\(dataFile.path) is not valid mailbox data")
    }
    return boxes
}

func save(_ boxes: [Mailbox]) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    guard let data = try? encoder.encode(boxes), (try? data.write(to: dataFile, options: .atomic)) != nil else {
        fail(3, "cannot write \(dataFile.path)")
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
        printMailbox(box)
    } else {
        let limit = opts["result-size"].flatMap(Int.init) ?? 100
        let shown = boxes.sorted { $0.identity < $1.identity }.prefix(limit)
        print("Identity".padding(toLength: 12, withPad: " ", startingAt: 0) + "PrimarySmtpAddress".padding(toLength: 26, withPad: " ", startingAt: 0) + "ProhibitSendQuota")
        for box in shown {
            print(box.identity.padding(toLength: 12, withPad: " ", startingAt: 0)
                  + box.primarySmtpAddress.padding(toLength: 26, withPad: " ", startingAt: 0)
                  + formatSize(box.prohibitSendQuotaBytes))
        }
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
    let objects: [[String: Any]] = chosen.map {
        ["Identity": $0.identity, "DisplayName": $0.displayName, "PrimarySmtpAddress": $0.primarySmtpAddress,
         "ProhibitSendQuota": formatSize($0.prohibitSendQuotaBytes), "ItemCount": $0.itemCount,
         "TotalItemSizeBytes": $0.totalItemSizeBytes]
    }
    // Key order is part of the output (the default table's column order), so
    // each object is written by hand in a fixed order.
    let order = ["Identity", "DisplayName", "PrimarySmtpAddress", "ProhibitSendQuota", "ItemCount", "TotalItemSizeBytes"]
    var text = "["
    for (n, object) in objects.enumerated() {
        let fields = order.compactMap { key -> String? in
            guard let value = object[key],
                  let data = try? JSONSerialization.data(withJSONObject: [value], options: [.fragmentsAllowed]) else { return nil }
            let encoded = String(decoding: data, as: UTF8.self).dropFirst().dropLast()
            return "\"\(key)\": \(encoded)"
        }
        text += (n == 0 ? "\n  {" : ",\n  {") + fields.joined(separator: ", ") + "}"
    }
    print(text + "\n]")
case "statistics":
    let opts = options(rest, allowed: ["identity"])
    guard let identity = opts["identity"] else { fail(2, "--identity is required") }
    guard let box = boxes.first(where: { $0.identity.lowercased() == identity.lowercased() }) else {
        fail(1, "No mailbox '\(identity)'.")
    }
    print("Identity      : \(box.identity)\nItemCount     : \(box.itemCount)\nTotalItemSize : \(formatSize(box.totalItemSizeBytes))")
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
    print("Mailbox '\(boxes[index].identity)': ProhibitSendQuota set to \(formatSize(quota)).")
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
    print("Mailbox '\(identity)' created.")
case "remove":
    let opts = options(rest, allowed: ["identity", "tenant"])
    guard let identity = opts["identity"] else { fail(2, "--identity is required") }
    guard let index = boxes.firstIndex(where: { $0.identity.lowercased() == identity.lowercased() }) else {
        fail(1, "No mailbox '\(identity)'.")
    }
    requireScope(boxes[index], opts["tenant"])
    boxes.remove(at: index)
    save(boxes)
    print("Mailbox '\(identity)' removed.")
default:
    fail(2, "unknown command '\(command)'")
}
