import Foundation
import PolicyFormat
import Yams

/// How one role may be requested. A role without an entry here cannot be
/// requested at all: elevation is opt-in per role.
public struct ElevationRule: Sendable {
    public let role: String
    /// Directory groups whose members may request the role.
    public let requestableBy: [String]
    /// Longest grant that may be requested (seconds). Longer requests are
    /// refused with this limit in the message, never shortened.
    public let maxDurationSeconds: Int
    /// Anchored pattern a ticket must match (whole-string match).
    public let ticketPattern: String?
    public let ticketRequired: Bool
    /// Whether the tenant's approver must approve after the manager where the
    /// tenant has Customer Lockbox on (`approvals: [manager, customer]`).
    public let customerStage: Bool
    /// How long a request may wait for approval.
    public let pendingTTLSeconds: Int
    /// How long an approved request may wait to be redeemed.
    public let redeemWindowSeconds: Int

    public init(role: String, requestableBy: [String], maxDurationSeconds: Int, ticketPattern: String? = nil,
                ticketRequired: Bool = false, customerStage: Bool = true, pendingTTLSeconds: Int = 86_400,
                redeemWindowSeconds: Int = 3_600) {
        self.role = role
        self.requestableBy = requestableBy
        self.maxDurationSeconds = maxDurationSeconds
        self.ticketPattern = ticketPattern
        self.ticketRequired = ticketRequired
        self.customerStage = customerStage
        self.pendingTTLSeconds = pendingTTLSeconds
        self.redeemWindowSeconds = redeemWindowSeconds
    }

    /// Whole-string match of the ticket against `ticketPattern`.
    func ticketMatches(_ ticket: String) -> Bool {
        guard let ticketPattern else { return true }
        guard let regex = try? NSRegularExpression(pattern: ticketPattern) else { return false }
        let range = NSRange(ticket.startIndex..., in: ticket)
        guard let match = regex.firstMatch(in: ticket, options: [.anchored], range: range) else { return false }
        return match.range == range
    }
}

/// The optional notification hook: a command run on every state change with
/// the event as JSON on stdin.
public struct NotificationHook: Sendable, Equatable {
    public let argv: [String]
    public let timeoutSeconds: Int
    public init(argv: [String], timeoutSeconds: Int) {
        self.argv = argv
        self.timeoutSeconds = timeoutSeconds
    }
}

/// What the Lockbox needs to know of a policy role: its name, its
/// `maxDuration`, and where it is declared (for diagnostics). The caller that
/// loads both files hands these over, so the Lockbox does not depend on the
/// cmdlet policy model.
public struct PolicyRoleFacts: Sendable {
    public let name: String
    public let maxDurationSeconds: Int?
    public let file: String
    public let line: Int

    public init(name: String, maxDurationSeconds: Int?, file: String, line: Int) {
        self.name = name
        self.maxDurationSeconds = maxDurationSeconds
        self.file = file
        self.line = line
    }
}

/// `policies/lockbox.yaml`, validated: which roles may be requested, by whom,
/// for how long and with which approvals; who the Lockbox admins are; and the
/// notification hook. A file of its own so the Lockbox owns its rules while
/// roles keep `maxDuration` next to their cmdlets.
public struct LockboxPolicy: Sendable {
    public let rules: [String: ElevationRule]
    /// Directory groups whose members may revoke any request.
    public let adminGroups: [String]
    public let notify: NotificationHook?

    public init(rules: [ElevationRule], adminGroups: [String] = [], notify: NotificationHook? = nil) {
        var table: [String: ElevationRule] = [:]
        for r in rules { table[r.role.lowercased()] = r }
        self.rules = table
        self.adminGroups = adminGroups
        self.notify = notify
    }

    /// Nothing may be requested.
    public static let none = LockboxPolicy(rules: [])

    public func rule(for role: String) -> ElevationRule? { rules[role.lowercased()] }

    /// Loads the file, resolving role names and `maxDuration` against the
    /// policy's roles. Every problem is reported with file:line; a missing
    /// file means "no role can be requested".
    public static func load(file: String, roles: [PolicyRoleFacts]) throws -> LockboxPolicy {
        guard FileManager.default.fileExists(atPath: file) else { return .none }
        let diagnostics = DiagnosticCollector()
        let reader = YAMLReader(file: file, diagnostics: diagnostics)
        let policy = reader.composeFile().map { parse($0, reader: reader, roles: roles) } ?? .none
        _ = try diagnostics.throwIfErrors()
        return policy
    }

    public static func load(text: String, file: String, roles: [PolicyRoleFacts]) throws -> LockboxPolicy {
        let diagnostics = DiagnosticCollector()
        let reader = YAMLReader(file: file, diagnostics: diagnostics)
        let policy = reader.compose(text).map { parse($0, reader: reader, roles: roles) } ?? .none
        _ = try diagnostics.throwIfErrors()
        return policy
    }

    static let defaultPendingTTL = 86_400
    static let defaultRedeemWindow = 3_600

    static func parse(_ root: Node, reader: YAMLReader, roles: [PolicyRoleFacts]) -> LockboxPolicy {
        var pendingTTL = defaultPendingTTL
        var redeemWindow = defaultRedeemWindow
        var adminGroups: [String] = []
        var notify: NotificationHook?
        var rules: [ElevationRule] = []
        var roleSection: [YAMLReader.Entry] = []
        for top in reader.mapping(root, what: "the Lockbox policy", allowed: ["lockbox", "roles"]) ?? [] {
            if top.key == "roles" {
                roleSection = reader.mapping(top.value, what: "'roles'") ?? []
                continue
            }
            for f in reader.mapping(top.value, what: "'lockbox'",
                                    allowed: ["pendingTTL", "redeemWindow", "admins", "notify"]) ?? [] {
                switch f.key {
                case "pendingTTL": pendingTTL = positive(reader, f.value, "pendingTTL") ?? pendingTTL
                case "redeemWindow": redeemWindow = positive(reader, f.value, "redeemWindow") ?? redeemWindow
                case "admins": adminGroups = (reader.stringList(f.value, what: "admins") ?? []).map(\.0)
                case "notify":
                    var argv: [String] = []
                    var timeout = 5
                    for n in reader.mapping(f.value, what: "'notify'", allowed: ["command", "timeout"]) ?? [] {
                        if n.key == "command" {
                            argv = (reader.stringList(n.value, what: "command") ?? []).map(\.0)
                            if let first = argv.first, !first.hasPrefix("/") {
                                reader.error(at: n.value, "the notify command must start with an absolute path",
                                             hint: "no PATH search is done")
                            }
                        } else {
                            timeout = positive(reader, n.value, "timeout") ?? timeout
                        }
                    }
                    if argv.isEmpty { reader.error(at: f.value, "notify needs a command (a list: program and arguments)") }
                    else { notify = NotificationHook(argv: argv, timeoutSeconds: timeout) }
                default: break
                }
            }
        }
        for entry in roleSection {
            guard let role = roles.first(where: { ASCII.equalsIgnoringCase($0.name, entry.key) }) else {
                let hint = ASCII.suggestion(for: entry.key, among: roles.map(\.name)).map { "did you mean '\($0)'?" }
                reader.error(at: entry.keyNode, "unknown role '\(entry.key)'", hint: hint ?? "declare it under roles/ first")
                continue
            }
            guard let fields = reader.mapping(entry.value, what: "role '\(entry.key)'", allowed: [
                "requestableBy", "ticketPattern", "ticketRequired", "approvals", "pendingTTL", "redeemWindow",
            ]) else { continue }
            var groups: [String] = []
            var pattern: String?
            var ticketRequired = false
            var customer = true
            var ttl = pendingTTL
            var window = redeemWindow
            var sawGroups = false
            for f in fields {
                switch f.key {
                case "requestableBy":
                    sawGroups = true
                    groups = (reader.stringList(f.value, what: "requestableBy") ?? []).map(\.0)
                case "ticketPattern":
                    if let text = reader.string(f.value, what: "ticketPattern") {
                        if !text.hasPrefix("^") || !text.hasSuffix("$") {
                            reader.error(at: f.value, "ticketPattern must be anchored with ^ and $")
                        } else if (try? NSRegularExpression(pattern: text)) == nil {
                            reader.error(at: f.value, "ticketPattern is not a valid regular expression")
                        } else {
                            pattern = text
                        }
                    }
                case "ticketRequired": ticketRequired = reader.bool(f.value, what: "ticketRequired") ?? false
                case "approvals":
                    let stages = reader.stringList(f.value, what: "approvals") ?? []
                    let names = stages.map(\.0)
                    for (name, node) in stages where name != "manager" && name != "customer" {
                        reader.error(at: node, "unknown approval stage '\(name)'", hint: "stages are manager and customer")
                    }
                    if !names.contains("manager") {
                        reader.error(at: f.value, "approvals must include manager (nobody elevates without their manager)")
                    }
                    if names.first != "manager" && names.contains("manager") {
                        reader.error(at: f.value, "the manager approves first: write [manager, customer]")
                    }
                    customer = names.contains("customer")
                case "pendingTTL": ttl = positive(reader, f.value, "pendingTTL") ?? ttl
                case "redeemWindow": window = positive(reader, f.value, "redeemWindow") ?? window
                default: break
                }
            }
            if role.maxDurationSeconds == nil {
                reader.error(at: entry.keyNode, "role '\(role.name)' can be requested but sets no maxDuration",
                             hint: "add maxDuration to the role in \(role.file):\(role.line); requests longer than it are refused")
            }
            if !sawGroups || groups.isEmpty {
                reader.error(at: entry.keyNode, "role '\(entry.key)' needs requestableBy: the groups that may request it")
            }
            rules.append(ElevationRule(role: role.name, requestableBy: groups,
                                       maxDurationSeconds: role.maxDurationSeconds ?? 0,
                                       ticketPattern: pattern, ticketRequired: ticketRequired, customerStage: customer,
                                       pendingTTLSeconds: ttl, redeemWindowSeconds: window))
        }
        return LockboxPolicy(rules: rules, adminGroups: adminGroups, notify: notify)
    }

    static func positive(_ reader: YAMLReader, _ node: Node, _ what: String) -> Int? {
        guard let v = reader.durationSeconds(node, what: what) else { return nil }
        if v <= 0 {
            reader.error(at: node, "\(what) must be longer than zero")
            return nil
        }
        return v
    }
}
