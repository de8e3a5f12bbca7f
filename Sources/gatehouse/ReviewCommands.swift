// Reviewer tools: sessions list/show/play and audit search/verify/export/reindex.
// Everything printed goes through ReviewText, which escapes control characters.
import ArgumentParser
import Crypto
import Foundation
import GatehouseCore
import Logging
import PostgresStore
import Transcript

/// Where the daemon keeps its state; the reviewer tools read it.
struct StateLocation: ParsableArguments {
    @Option(name: .long, help: "The daemon's state directory.")
    var stateDir: String = "/var/lib/gatehouse"

    @Flag(name: .long, help: "Use the demo's state directory (./.gatehouse-demo).")
    var demo = false

    @Option(name: .long, help: "Audit log (default <state dir>/audit.log).")
    var auditLog: String?

    @Option(name: .long, help: "Transcript directory (default <state dir>/transcripts).")
    var transcriptDir: String?

    var directory: String { demo ? FileManager.default.currentDirectoryPath + "/.gatehouse-demo" : stateDir }
    var logPath: String { auditLog ?? directory + "/audit.log" }
    var transcripts: String { transcriptDir ?? directory + "/transcripts" }

    /// The index, caught up with the log.
    func index() throws -> AuditIndex {
        let index = try AuditIndex(path: directory + "/audit-index.sqlite", logPath: logPath)
        try index.catchUp()
        return index
    }

    func transcriptPath(session: String) -> String { transcripts + "/\(session).cast" }
}

/// A fleet's shared PostgreSQL (the daemons' `store` setting), for the
/// reviewer tools that can read every node's rows there.
struct SharedStoreOption: ParsableArguments {
    @Option(name: .long, help: "The fleet's shared store, postgres://USER@HOST[:PORT]/DB[?sslmode=...]: search every node's commands there instead of this node's SQLite index.")
    var store: String?

    @Option(name: .long, help: "A file (mode 0600) whose first line is the store's password (keeps it off the command line).")
    var storePasswordFile: String?

    func open() throws -> FleetDatabase? {
        guard let store else { return nil }
        var location: PostgresLocation
        switch PostgresLocation.parse(store) {
        case .success(let parsed): location = parsed
        case .failure(let error): throw ValidationError("--store: \(error)")
        }
        if let file = storePasswordFile {
            do {
                try location.readPassword(fromFile: file)
            } catch {
                throw ValidationError("--store-password-file \(file): \(error)")
            }
        }
        var logger = Logger(label: "gatehouse")
        logger.logLevel = .error
        return try FleetDatabase(location: location, logger: logger, maxConnections: 1)
    }
}

func parseTimeOption(_ text: String?, _ name: String) throws -> Date? {
    guard let text else { return nil }
    guard let date = ReviewText.parseTime(text) else {
        throw ValidationError("--\(name): expected 2026-11-29, 2026-11-29T04:00:00Z or an age such as 7d, 24h, 30m")
    }
    return date
}

/// A session's state as a reviewer should read it.
func sessionState(_ row: AuditIndex.SessionRow, location: StateLocation) -> String {
    if let reason = row.endReason { return "ended (\(ReviewText.field(reason)))" }
    return DaemonLock.isHeld(stateDirectory: location.directory) ? "live" : "CUT OFF (no end event; daemon gone)"
}

struct Sessions: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Recorded sessions: list, inspect, replay. Live sessions: list --live, kill.",
        subcommands: [List.self, Show.self, Play.self, LiveSessions.Kill.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List recorded sessions, oldest first; --live asks the running daemon instead.")
        @OptionGroup var location: StateLocation
        @Flag(name: .long, help: "Live sessions of the running daemon on this node (its control socket).") var live = false
        @Flag(name: .long, help: "With --live: print the daemon's JSON answer.") var json = false
        @Option(help: "Only this user's sessions.") var user: String?
        @Option(help: "Sessions active at or after (2026-11-29, RFC 3339, or an age: 7d, 24h).") var since: String?
        @Option(help: "Sessions started at or before.") var until: String?
        @Option(help: "Only sessions on this gateway node.") var node: String?
        @Flag(help: "Only sessions with at least one denied command.") var deniedOnly = false
        @Option(help: "Only sessions that used this Lockbox request.") var request: Int64?

        func run() throws {
            if live {
                let live = try LiveSessions.List.parse(["--live", "--state-dir", location.directory] + (json ? ["--json"] : []))
                try live.run()
                return
            }
            var filter = AuditIndex.SessionFilter()
            filter.user = user
            filter.since = try parseTimeOption(since, "since")
            filter.until = try parseTimeOption(until, "until")
            filter.node = node
            filter.deniedOnly = deniedOnly
            filter.requestID = request
            let rows = try location.index().sessions(filter)
            print("SESSION                   USER         NODE             STARTED               COMMANDS DENIED STATE")
            for r in rows {
                print([pad(r.id, 25), pad(ReviewText.field(r.user), 12), pad(ReviewText.field(r.node), 16),
                       pad(ReviewText.time(r.started), 21), pad(String(r.commands), 8), pad(String(r.denied), 6),
                       sessionState(r, location: location)].joined(separator: " "))
            }
            print("\(rows.count) session(s)")
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A session's timeline: commands with decisions, elevation windows, Lockbox requests.")
        @OptionGroup var location: StateLocation
        @Argument(help: "Session id.") var id: String

        func run() throws {
            let index = try location.index()
            guard let row = try index.session(id: id) else {
                throw ValidationError("no session '\(ReviewText.field(id))' in the audit log")
            }
            print("Session   \(row.id)")
            print("User      \(ReviewText.field(row.user))")
            print("Node      \(ReviewText.field(row.node))")
            print("Client    \(ReviewText.field(row.client))")
            print("Started   \(ReviewText.time(row.started))")
            print("Ended     \(ReviewText.time(row.ended))")
            print("State     \(sessionState(row, location: location))")
            let transcriptPath = location.transcriptPath(session: row.id)
            if let transcript = try? AsciicastReader(path: transcriptPath) {
                let claim = transcript.gatehouse["claim"].map { String(decoding: $0.canonicalBytes, as: UTF8.self) } ?? "[]"
                print("Claim     \(ReviewText.field(claim))")
                print("Transcript \(ReviewText.field(transcriptPath)) (\(transcript.events.count) events, "
                      + (transcript.cutOff ? "CUT OFF: no end marker" : "ended: \(ReviewText.field(transcript.endReason))") + ")")
            } else {
                print("Transcript none")
            }
            let commands = try index.commands({ var f = AuditIndex.CommandFilter(); f.session = row.id; return f }())
            let others = try index.otherEvents(session: row.id)
            var lines: [(Int, String)] = []
            var requests = Set<Int64>()
            for c in commands {
                var text = "\(ReviewText.time(c.time))  #\(c.seq)  \(c.decision.uppercased())  \(ReviewText.field(c.line))"
                if c.decision == "allow" {
                    text += "\n        role \(ReviewText.field(c.role))"
                    if let scope = c.scope { text += ", scope \(ReviewText.field(scope))" }
                    if let status = c.exitStatus {
                        text += "; exit \(status), \(c.durationMs ?? 0) ms"
                        if c.stdoutBytes != nil || c.stderrBytes != nil {
                            text += ", \(c.stdoutBytes ?? 0)+\(c.stderrBytes ?? 0) bytes"
                        }
                    } else {
                        text += "; no finish event (cut off or still running)"
                    }
                    // A Lockbox line starts no backend, so it has no argv.
                    if let argv = c.argv { text += "\n        argv \(ReviewText.field(argv))" }
                } else {
                    text += "\n        \(ReviewText.field(c.reason))"
                }
                if let request = c.requestID {
                    requests.insert(request)
                    text += "\n        via Lockbox request #\(request)"
                }
                lines.append((c.seq, text))
            }
            for e in others {
                var text = "\(ReviewText.time(e.time))  #\(e.seq)  \(ReviewText.field(e.kind))"
                let detail = e.fields.keys.sorted().map { "\($0)=\(e.fields[$0]!)" }.joined(separator: " ")
                if !detail.isEmpty { text += "  " + ReviewText.field(detail) }
                if e.kind.contains("elevation") { text = "  >> " + text }
                if let request = e.requestID { requests.insert(request) }
                lines.append((e.seq, text))
            }
            let windows = elevationWindows(others, sessionEnd: row.ended)
            if !windows.isEmpty {
                print("\nElevation windows")
                for w in windows { print("  " + w) }
            }
            print("\nTimeline")
            for (_, text) in lines.sorted(by: { $0.0 < $1.0 }) { print("  " + text) }
            if !requests.isEmpty {
                print("\nLockbox requests: " + requests.sorted().map { "#\($0)" }.joined(separator: ", ")
                      + "  (gatehouse sessions list --request N finds every session that used one)")
            }
        }
    }

    struct Play: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replay a session's output at real speed or a chosen factor, with idle time capped.",
            discussion: "Control characters are shown escaped (\\x1b…), so the recording cannot act on your terminal; use `asciinema play FILE` for a faithful rendering.")
        @OptionGroup var location: StateLocation
        @Argument(help: "Session id.") var id: String
        @Option(help: "Speed factor (2 = twice as fast).") var speed: Double = 1
        @Option(help: "Longest pause, in seconds, whatever the recording's idle time.") var idleLimit: Double = 2

        func validate() throws {
            guard speed > 0 else { throw ValidationError("--speed must be positive") }
            guard idleLimit >= 0 else { throw ValidationError("--idle-limit must not be negative") }
        }

        func run() throws {
            guard !id.isEmpty, id.count <= 64, id.allSatisfy({ $0.isHexDigit }) else {
                throw ValidationError("not a session id")
            }
            let transcript = try AsciicastReader(path: location.transcriptPath(session: id))
            var last = 0.0
            for event in transcript.events {
                let pause = min(max(0, event.time - last), idleLimit) / speed
                last = event.time
                // The recording's own pacing (replay at real speed), not a
                // poll: the whole transcript is read already, nothing is followed.
                if pause > 0.001 {
                    fflush(nil)  // every stream: `stdout` is a C global Swift 6 will not read
                    usleep(UInt32(min(pause, 60) * 1_000_000))
                }
                switch event.type {
                case "o": print(ReviewText.terminalOutput(event.data), terminator: "")
                case "m" where event.data == AsciicastWriter.redactionMarker: print("[input redacted]", terminator: "")
                default: break
                }
            }
            print(transcript.cutOff ? "\n[transcript CUT OFF: the recording stops here; the session has no end marker]"
                                    : "\n[session ended: \(ReviewText.field(transcript.endReason))]")
        }
    }
}

/// Pairs `elevation.start` with the `elevation.end` of the same request
/// (Lockbox, issue 4) into one line per window; a window with no end ran
/// until the session ended or was cut off.
func elevationWindows(_ events: [AuditIndex.EventRow], sessionEnd: Date?) -> [String] {
    var open: [Int64: AuditIndex.EventRow] = [:]
    var lines: [String] = []
    func describe(_ start: AuditIndex.EventRow, until: String) -> String {
        let f = start.fields
        var text = "request #\(start.requestID.map(String.init) ?? "?")"
        if let role = f["role"] { text += " role \(ReviewText.field(role))" }
        if let scope = f["scope"] { text += " scope \(ReviewText.field(scope))" }
        return text + ": \(ReviewText.time(start.time)) → \(until)"
    }
    for e in events {
        guard let request = e.requestID else { continue }
        if e.kind == "elevation.start" {
            open[request] = e
        } else if e.kind == "elevation.end", let start = open.removeValue(forKey: request) {
            let reason = e.fields["reason"].map { " (\(ReviewText.field($0)))" } ?? ""
            lines.append(describe(start, until: ReviewText.time(e.time) + reason))
        }
    }
    for start in open.values.sorted(by: { $0.seq < $1.seq }) {
        lines.append(describe(start, until: sessionEnd == nil ? "no end recorded" : "session end \(ReviewText.time(sessionEnd))"))
    }
    return lines
}

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Search, verify and export the audit log.",
        subcommands: [Search.self, Verify.self, Export.self, Reindex.self])

    struct Search: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Find commands across all sessions.",
            discussion: "Who ran Set-Mailbox on contoso last week: gatehouse audit search --cmdlet Set-Mailbox --scope contoso --since 7d")
        @OptionGroup var location: StateLocation
        @Option(help: "Cmdlet name (case-insensitive).") var cmdlet: String?
        @Option(name: .customLong("param"), help: "Bound parameter NAME=VALUE (repeatable; exact value).") var params: [String] = []
        @Option(help: "User.") var user: String?
        @Option(help: "At or after (2026-11-29, RFC 3339, or an age: 7d).") var since: String?
        @Option(help: "At or before.") var until: String?
        @Option(help: "allow or deny.") var decision: String?
        @Option(help: "Scope (tenant) the command ran in.") var scope: String?
        @Option(help: "Lockbox request id.") var request: Int64?
        @Option(help: "Session id.") var session: String?
        @OptionGroup var shared: SharedStoreOption
        @Option(help: "Only this node (with --store).") var node: String?

        func run() throws {
            var filter = AuditIndex.CommandFilter()
            filter.cmdlet = cmdlet
            filter.parameters = try params.map { p in
                guard let eq = p.firstIndex(of: "="), eq != p.startIndex else {
                    throw ValidationError("--param expects NAME=VALUE, got '\(ReviewText.field(p))'")
                }
                return (String(p[..<eq]), String(p[p.index(after: eq)...]))
            }
            filter.user = user
            filter.since = try parseTimeOption(since, "since")
            filter.until = try parseTimeOption(until, "until")
            if let decision {
                guard ["allow", "deny"].contains(decision) else { throw ValidationError("--decision is allow or deny") }
                filter.decision = decision
            }
            filter.scope = scope
            filter.requestID = request
            filter.session = session
            let rows: [AuditIndex.CommandRow]
            if let database = try shared.open() {
                defer { database.shutdown() }
                rows = try PostgresAuditIndex(database: database).commands(filter, node: node)
            } else {
                guard node == nil else { throw ValidationError("--node needs --store (the fleet's shared index)") }
                rows = try location.index().commands(filter)
            }
            for c in rows {
                var text = "\(ReviewText.time(c.time))  "
                    + (c.node.map { "node \(ReviewText.field($0))  " } ?? "")
                    + "\(ReviewText.field(c.user))  session \(ReviewText.field(c.session))  #\(c.seq)  "
                    + "\(c.decision)  \(ReviewText.field(c.line))"
                if c.decision == "allow" {
                    text += "  [role \(ReviewText.field(c.role))" + (c.scope.map { ", scope \(ReviewText.field($0))" } ?? "")
                        + (c.exitStatus.map { ", exit \($0)" } ?? "") + "]"
                } else {
                    text += "  [\(ReviewText.field(c.reason))]"
                }
                if let r = c.requestID { text += "  request #\(r)" }
                if let path = c.logPath { text += "  (\(ReviewText.field(path)))" }
                print(text)
            }
            print("\(rows.count) command(s)")
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the hash chain and the checkpoint signatures; name the first bad sequence number and why.")
        @OptionGroup var location: StateLocation
        @Option(help: "Trusted public key (base64 Ed25519; default <state dir>/audit-signing.pub).") var publicKey: String?

        func run() throws {
            let keyPath = publicKey ?? location.directory + "/" + AuditSigningKey.publicFileName
            let key: Curve25519.Signing.PublicKey?
            if publicKey != nil || FileManager.default.fileExists(atPath: keyPath) {
                key = try AuditSigningKey.readPublicKey(path: keyPath)
            } else {
                key = nil
            }
            let report = try AuditLogVerifier(logPath: location.logPath, publicKey: key).verify()
            for note in report.notes { print("note: \(ReviewText.field(note))") }
            if let problem = report.problem {
                print("FAILED at seq \(problem.seq): \(ReviewText.field(problem.description))")
                print("events before it verified: \(report.events) (through seq \(report.lastSeq)), signed through seq \(report.signedThrough)")
                throw ExitCode(1)
            }
            var summary = "OK: \(report.events) events, chain intact through seq \(report.lastSeq); "
                + "\(report.checkpoints) checkpoint(s)"
            if key != nil {
                summary += ", signatures valid (key \(AuditSigningKey.keyID(of: key!))), signed through seq \(report.signedThrough)"
                if report.unsignedTail > 0 {
                    summary += "; \(report.unsignedTail) event(s) after the last checkpoint are chained but not yet signed"
                }
            }
            print(summary)
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Export audit events for auditors: JSON lines (verifiable, as written) or CSV.")
        @OptionGroup var location: StateLocation
        @Option(help: "jsonl or csv.") var format: String = "jsonl"
        @Option(help: "Only this user's events.") var user: String?
        @Option(help: "Only this session's events.") var session: String?
        @Option(help: "At or after.") var since: String?
        @Option(help: "At or before.") var until: String?

        func run() throws {
            guard ["jsonl", "csv"].contains(format) else { throw ValidationError("--format is jsonl or csv") }
            let since = try parseTimeOption(since, "since")
            let until = try parseTimeOption(until, "until")
            guard let data = FileManager.default.contents(atPath: location.logPath) else {
                throw ValidationError("cannot read \(location.logPath)")
            }
            if format == "csv" { print("seq,time,kind,user,session,fields,prev,hash") }
            for line in [UInt8](data).split(separator: 0x0a, omittingEmptySubsequences: true) {
                guard let r = try? AuditRecord.parse(line: line).record else { continue }
                if let user, r.user != user { continue }
                if let session, r.session != session { continue }
                if let since, r.time < since { continue }
                if let until, r.time > until { continue }
                if format == "jsonl" {
                    print(ReviewText.jsonLine(Array(line)))
                } else {
                    let fields = String(decoding: JSONValue.object(r.fields.mapValues { .string($0) }).canonicalBytes, as: UTF8.self)
                    print([String(r.seq), AuditTime.format(r.time), r.kind, r.user ?? "", r.session ?? "", fields, r.prev, r.hash]
                        .map { ReviewText.csvCell($0) }.joined(separator: ","))
                }
            }
        }
    }

    struct Reindex: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rebuild the SQLite index from the audit log (the log is the source of truth).")
        @OptionGroup var location: StateLocation

        func run() throws {
            let index = try AuditIndex(path: location.directory + "/audit-index.sqlite", logPath: location.logPath)
            let n = try index.rebuild()
            print("indexed \(n) events")
        }
    }
}

private func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
}
