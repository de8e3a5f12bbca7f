import CmdletPolicy
import Foundation
import GatehouseCore
import PolicyFormat
import SSHServer

/// Every setting of the daemon, each declared once (below, in `settings`) with
/// its type, default and documentation. `gatehoused --dump-config` prints the
/// effective value of each with where it came from, like `sshd -T`.
public struct GatewayConfiguration: Sendable, Codable {
    public var listenHost = "127.0.0.1"
    public var listenPort = 2222
    public var stateDirectory = "/var/lib/gatehouse"
    public var policyDirectory = "/etc/gatehouse/policies"
    /// `nil` means `<policyDirectory>/directory.yaml`.
    public var directoryFileOverride: String?
    /// `nil` means `<stateDirectory>/ssh_host_ecdsa_key`.
    public var hostKeyOverride: String?
    public var hostKeyType = "ecdsa-p256"
    public var pamService = "gatehouse"
    public var fips = true
    public var loginGraceSeconds = 30
    public var maxAuthTries = 6
    public var maxChannelsPerConnection = 10
    /// `nil` means `<stateDirectory>/audit.log`.
    public var auditLogOverride: String?
    public var nodeName = ProcessInfo.processInfo.hostName
    public var backendWorkingDirectory = "/"
    // Session controls and pre-auth limits (issue 6).
    public var maxSessionsPerUser = 1
    public var idleTimeoutSeconds = 30 * 60
    public var maxSessionLifetimeSeconds = 24 * 3600
    public var ioTimeoutSeconds = 120
    public var shutdownGraceSeconds = 5
    public var maxUnauthenticated = 64
    public var maxUnauthenticatedPerSource = 8
    public var perSourcePenalties = true
    public var perSourcePenaltyAuthFail = 5
    public var perSourcePenaltyNoAuth = 1
    public var perSourcePenaltyMin = 15
    public var perSourcePenaltyMax = 600
    public var perSourcePenaltyExempt: [String] = []
    /// Balancers (addresses or CIDR ranges, as written) whose connections
    /// must start with a PROXY protocol v2 header; empty: none (issue 13).
    public var proxyProtocolFrom: [String] = []
    public var userLockoutFailures = 10
    public var userLockoutWindowSeconds = 15 * 60
    // Transcripts and the audit chain (issue 5).
    public var recordTranscripts = true
    /// `nil` means `<stateDirectory>/transcripts`.
    public var transcriptDirectoryOverride: String?
    public var auditCheckpointSeconds = 60
    // Metrics (issue 13): a Prometheus endpoint; nil host means off.
    public var metricsHost: String? = "127.0.0.1"
    public var metricsPort = 9464
    // The fleet's shared store (issue 13): nil means the embedded SQLite
    // files in the state directory.
    public var store: PostgresLocation?
    /// A file holding the store's password (read by the monitor at start).
    public var storePasswordFile: String?
    // The approval and review console and the activity API (issue 14): a
    // gatehouse-web process the monitor starts; nil host means off.
    public var webHost: String?
    public var webPort = 8443
    public var webCertificate: String?
    public var webPrivateKey: String?
    public var webPamService = "gatehouse-web"
    /// `nil` means `<libexec>/../../share/gatehouse/web` (e.g. /usr/local/share/gatehouse/web beside /usr/local/libexec/gatehouse): the asciinema player's files.
    public var webAssetsOverride: String?

    public init() {}

    /// Plain HTTP is allowed only on a loopback address; anywhere else the
    /// console needs a certificate and its key. Returns the problem, if any.
    public var webProblem: String? {
        guard let host = webHost else { return nil }
        if (webCertificate == nil) != (webPrivateKey == nil) {
            return "webCertificate and webPrivateKey go together: set both or neither"
        }
        if webCertificate == nil && !Self.isLoopback(host) {
            return "webListen \(host) is not a loopback address: set webCertificate and webPrivateKey (HTTPS), "
                + "or listen on 127.0.0.1 or ::1"
        }
        return nil
    }

    /// A numeric loopback address (127.0.0.0/8 or ::1). Names are not: a
    /// name that merely starts with "127." (or a remapped "localhost") could
    /// resolve anywhere, and plain HTTP must never leave the host.
    public static func isLoopback(_ host: String) -> Bool {
        loopbackRanges.contains { $0.contains(host: host) }
    }

    private static let loopbackRanges = [AddressRange("127.0.0.0/8")!, AddressRange("::1")!]

    public var directoryFile: String { directoryFileOverride ?? policyDirectory + "/directory.yaml" }
    public var hostKeyPath: String { hostKeyOverride ?? stateDirectory + "/ssh_host_ecdsa_key" }
    public var auditLogPath: String { auditLogOverride ?? stateDirectory + "/audit.log" }
    public var transcriptDirectory: String { transcriptDirectoryOverride ?? stateDirectory + "/transcripts" }
    /// `proxyProtocolFrom`, parsed (each entry was checked when it was set).
    public var proxyProtocolRanges: [AddressRange] { proxyProtocolFrom.compactMap(AddressRange.init) }

    /// Where each effective value came from: "default", "demo", a file:line, or "command line".
    public private(set) var sources: [String: String] = [:]

    /// One declared setting.
    public struct Setting: Sendable {
        public let key: String
        public let doc: String
        let apply: @Sendable (inout GatewayConfiguration, String) -> String?   // returns an error message
        let render: @Sendable (GatewayConfiguration) -> String
    }

    /// The single declaration of every setting.
    public static let settings: [Setting] = [
        Setting(key: "listen", doc: "Address and port to listen on, HOST:PORT.",
                apply: { c, v in
                    guard let (host, port) = parseListen(v) else { return "expected HOST:PORT with a port 0-65535" }
                    c.listenHost = host; c.listenPort = port; return nil
                }, render: { "\($0.listenHost):\($0.listenPort)" }),
        Setting(key: "metricsListen", doc: "Prometheus metrics over HTTP (GET /metrics), HOST:PORT, or off. Loopback by default: the figures name no user, but say how busy the node is.",
                apply: { c, v in
                    if v == "off" { c.metricsHost = nil; return nil }
                    guard let (host, port) = parseListen(v) else { return "expected HOST:PORT with a port 0-65535, or off" }
                    c.metricsHost = host; c.metricsPort = port; return nil
                }, render: { c in c.metricsHost.map { "\($0):\(c.metricsPort)" } ?? "off" }),
        Setting(key: "store", doc: "Where Lockbox requests, user lockouts and the review index live: sqlite (files in the state directory, one node) or postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|require|verify-full], shared by every node of a fleet (sslmode defaults to verify-full). The password is never printed; prefer storePasswordFile.",
                apply: { c, v in
                    if v == "sqlite" { c.store = nil; return nil }
                    switch PostgresLocation.parse(v) {
                    case .success(let location): c.store = location; return nil
                    case .failure(let error): return "expected sqlite or a postgres:// URL: \(error)"
                    }
                }, render: { $0.store?.redacted ?? "sqlite" }),
        Setting(key: "storePasswordFile", doc: "A file (mode 0600, root's) whose first line is the PostgreSQL store's password; overrides one in the store URL.",
                apply: { c, v in absolute(v) { c.storePasswordFile = $0 } }, render: { $0.storePasswordFile ?? "none" }),
        Setting(key: "stateDirectory", doc: "Host key, audit log and runtime state live here (mode 0700).",
                apply: { c, v in absolute(v) { c.stateDirectory = $0 } }, render: { $0.stateDirectory }),
        Setting(key: "policyDirectory", doc: "Holds cmdlets/*.yaml and roles/*.yaml.",
                apply: { c, v in absolute(v) { c.policyDirectory = $0 } }, render: { $0.policyDirectory }),
        Setting(key: "directoryFile", doc: "Users, keys, managers and tenants (default <policyDirectory>/directory.yaml).",
                apply: { c, v in absolute(v) { c.directoryFileOverride = $0 } }, render: { $0.directoryFile }),
        Setting(key: "hostKey", doc: "Host private key; created on first start with mode 0600.",
                apply: { c, v in absolute(v) { c.hostKeyOverride = $0 } }, render: { $0.hostKeyPath }),
        Setting(key: "hostKeyType", doc: "Type of a newly created host key: ecdsa-p256, ecdsa-p384, rsa-3072, ed25519 (not FIPS).",
                apply: { c, v in
                    guard ["ecdsa-p256", "ecdsa-p384", "rsa-3072", "ed25519"].contains(v) else {
                        return "expected ecdsa-p256, ecdsa-p384, rsa-3072 or ed25519"
                    }
                    c.hostKeyType = v; return nil
                }, render: { $0.hostKeyType }),
        Setting(key: "webListen", doc: "The approval and review console and the activity API (gatehouse-web), HOST:PORT, or off (the default). Plain HTTP only on loopback; elsewhere set webCertificate and webPrivateKey.",
                apply: { c, v in
                    if v == "off" { c.webHost = nil; return nil }
                    guard let (host, port) = parseListen(v) else { return "expected HOST:PORT with a port 0-65535, or off" }
                    c.webHost = host; c.webPort = port; return nil
                }, render: { c in c.webHost.map { "\($0):\(c.webPort)" } ?? "off" }),
        Setting(key: "webCertificate", doc: "PEM certificate chain for the console's HTTPS (read by the monitor at start).",
                apply: { c, v in absolute(v) { c.webCertificate = $0 } }, render: { $0.webCertificate ?? "none" }),
        Setting(key: "webPrivateKey", doc: "PEM private key for webCertificate (read by the monitor at start; keep it 0600).",
                apply: { c, v in absolute(v) { c.webPrivateKey = $0 } }, render: { $0.webPrivateKey ?? "none" }),
        Setting(key: "webPamService", doc: "PAM service for the console's sign-in: a password (or other first factor) then pam_oath's TOTP prompt.",
                apply: { c, v in
                    guard v.range(of: "^[A-Za-z0-9._-]{1,64}$", options: .regularExpression) != nil else {
                        return "expected a PAM service name ([A-Za-z0-9._-]{1,64})"
                    }
                    c.webPamService = v; return nil
                }, render: { $0.webPamService }),
        Setting(key: "webAssets", doc: "Directory with asciinema-player.min.js and asciinema-player.css for the transcript player (scripts/install-deps fetches them).",
                apply: { c, v in absolute(v) { c.webAssetsOverride = $0 } }, render: { $0.webAssetsOverride ?? "default" }),
        Setting(key: "pamService", doc: "PAM service name for the keyboard-interactive step.",
                apply: { c, v in
                    guard v.range(of: "^[A-Za-z0-9._-]{1,64}$", options: .regularExpression) != nil else {
                        return "expected a PAM service name ([A-Za-z0-9._-]{1,64})"
                    }
                    c.pamService = v; return nil
                }, render: { $0.pamService }),
        Setting(key: "fips", doc: "Offer only FIPS-approved SSH algorithms (true/false).",
                apply: { c, v in bool(v) { c.fips = $0 } }, render: { String($0.fips) }),
        Setting(key: "loginGraceTime", doc: "Seconds a connection has to finish key exchange and authentication.",
                apply: { c, v in int(v, 1...600) { c.loginGraceSeconds = $0 } }, render: { String($0.loginGraceSeconds) }),
        Setting(key: "maxAuthTries", doc: "Failed authentication attempts before the connection is dropped.",
                apply: { c, v in int(v, 1...100) { c.maxAuthTries = $0 } }, render: { String($0.maxAuthTries) }),
        Setting(key: "maxChannelsPerConnection", doc: "Session channels one connection may open over its life.",
                apply: { c, v in int(v, 1...1000) { c.maxChannelsPerConnection = $0 } },
                render: { String($0.maxChannelsPerConnection) }),
        Setting(key: "auditLog", doc: "Audit log, hash-chained JSON lines (default <stateDirectory>/audit.log); its newest signed checkpoint is kept in <auditLog>.checkpoint.",
                apply: { c, v in absolute(v) { c.auditLogOverride = $0 } }, render: { $0.auditLogPath }),
        Setting(key: "nodeName", doc: "This gateway node's name in audit events and on the Lockbox grants its sessions redeem; in a fleet each node needs its own (default: host name).",
                apply: { c, v in
                    guard v.range(of: "^[A-Za-z0-9._-]{1,64}$", options: .regularExpression) != nil else {
                        return "expected [A-Za-z0-9._-]{1,64}"
                    }
                    c.nodeName = v; return nil
                }, render: { $0.nodeName }),
        Setting(key: "backendWorkingDirectory", doc: "Working directory of every backend process.",
                apply: { c, v in absolute(v) { c.backendWorkingDirectory = $0 } }, render: { $0.backendWorkingDirectory }),
        Setting(key: "maxSessionsPerUser", doc: "Live sessions one user may hold on this node; a further login is refused after authentication.",
                apply: { c, v in int(v, 1...100) { c.maxSessionsPerUser = $0 } }, render: { String($0.maxSessionsPerUser) }),
        Setting(key: "idleTimeout", doc: "Disconnect after this long without client input (30m; seconds or 30s/5m/1h). Warnings go out 5m and 1m before (scaled down for short timeouts).",
                apply: { c, v in duration(v, 1...(30 * 86400)) { c.idleTimeoutSeconds = $0 } },
                render: { PolicyDuration.format($0.idleTimeoutSeconds) }),
        Setting(key: "maxSessionLifetime", doc: "Forced logoff this long after login, whatever the activity (24h); warned like idleTimeout. Ends a running backend.",
                apply: { c, v in duration(v, 1...(30 * 86400)) { c.maxSessionLifetimeSeconds = $0 } },
                render: { PolicyDuration.format($0.maxSessionLifetimeSeconds) }),
        Setting(key: "shutdownGrace", doc: "On SIGTERM: how long sessions get to tell their users, close transcripts and write their end events before the daemon exits.",
                apply: { c, v in duration(v, 1...300) { c.shutdownGraceSeconds = $0 } },
                render: { PolicyDuration.format($0.shutdownGraceSeconds) }),
        Setting(key: "ioTimeout", doc: "After login: how long a write may wait for a client that does not read before the session is dropped.",
                apply: { c, v in duration(v, 1...3600) { c.ioTimeoutSeconds = $0 } },
                render: { PolicyDuration.format($0.ioTimeoutSeconds) }),
        Setting(key: "maxUnauthenticated", doc: "Connections not yet authenticated, in total; further ones are closed at accept, before key exchange (like sshd MaxStartups).",
                apply: { c, v in int(v, 1...10000) { c.maxUnauthenticated = $0 } }, render: { String($0.maxUnauthenticated) }),
        Setting(key: "maxUnauthenticatedPerSource", doc: "Unauthenticated connections from one source address, so one client cannot take every slot.",
                apply: { c, v in int(v, 1...10000) { c.maxUnauthenticatedPerSource = $0 } },
                render: { String($0.maxUnauthenticatedPerSource) }),
        Setting(key: "perSourcePenalties", doc: "Refuse connections from a source that keeps failing authentication (like sshd PerSourcePenalties).",
                apply: { c, v in bool(v) { c.perSourcePenalties = $0 } }, render: { String($0.perSourcePenalties) }),
        Setting(key: "perSourcePenaltyAuthFail", doc: "Penalty seconds a source earns for a connection that failed authentication.",
                apply: { c, v in duration(v, 0...86400) { c.perSourcePenaltyAuthFail = $0 } },
                render: { PolicyDuration.format($0.perSourcePenaltyAuthFail) }),
        Setting(key: "perSourcePenaltyNoAuth", doc: "Penalty seconds for a connection that ended without completing authentication or trying it.",
                apply: { c, v in duration(v, 0...86400) { c.perSourcePenaltyNoAuth = $0 } },
                render: { PolicyDuration.format($0.perSourcePenaltyNoAuth) }),
        Setting(key: "perSourcePenaltyMin", doc: "A source is refused once its accumulated penalty reaches this, until the penalty runs out.",
                apply: { c, v in duration(v, 1...86400) { c.perSourcePenaltyMin = $0 } },
                render: { PolicyDuration.format($0.perSourcePenaltyMin) }),
        Setting(key: "perSourcePenaltyMax", doc: "Upper bound of a source's accumulated penalty.",
                apply: { c, v in duration(v, 1...(30 * 86400)) { c.perSourcePenaltyMax = $0 } },
                render: { PolicyDuration.format($0.perSourcePenaltyMax) }),
        Setting(key: "perSourcePenaltyExempt", doc: "Comma-separated source addresses never penalized (for example a health checker or a load balancer).",
                apply: { c, v in
                    let items = v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                    guard items.allSatisfy({ $0.range(of: "^[0-9A-Fa-f:.]{2,45}$", options: .regularExpression) != nil }) else {
                        return "expected comma-separated IP addresses"
                    }
                    c.perSourcePenaltyExempt = items; return nil
                }, render: { $0.perSourcePenaltyExempt.joined(separator: ",") }),
        Setting(key: "proxyProtocolFrom", doc: "Comma-separated balancer addresses or CIDR ranges (127.0.0.1, 10.0.0.0/24) that send a PROXY protocol v2 header (HAProxy send-proxy-v2). From these a valid header is required, and its client address is the one audited, limited and penalized; from any other peer a header is not read (its bytes reach SSH and fail there). Empty: no balancer.",
                apply: { c, v in
                    let items = v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                    if let bad = items.first(where: { AddressRange($0) == nil }) {
                        return "'\(bad)' is not an IP address or CIDR range (expected for example 127.0.0.1, 10.0.0.0/24, fd00::/8)"
                    }
                    c.proxyProtocolFrom = items; return nil
                }, render: { $0.proxyProtocolFrom.joined(separator: ",") }),
        Setting(key: "userLockoutFailures", doc: "Failed second factors (after a valid key) within userLockoutWindow that lock the user until the window passes or an operator runs `gatehouse users unlock`.",
                apply: { c, v in int(v, 1...1000) { c.userLockoutFailures = $0 } }, render: { String($0.userLockoutFailures) }),
        Setting(key: "userLockoutWindow", doc: "The window for userLockoutFailures (15m); also how long a lockout lasts.",
                apply: { c, v in duration(v, 1...(30 * 86400)) { c.userLockoutWindowSeconds = $0 } },
                render: { PolicyDuration.format($0.userLockoutWindowSeconds) }),
        // Transcripts and the audit chain (issue 5).
        Setting(key: "recordTranscripts", doc: "Record every session as an asciicast v2 transcript (true/false; false only for benchmarks).",
                apply: { c, v in bool(v) { c.recordTranscripts = $0 } }, render: { String($0.recordTranscripts) }),
        Setting(key: "transcriptDirectory", doc: "Session transcripts, one .cast file per session (default <stateDirectory>/transcripts).",
                apply: { c, v in absolute(v) { c.transcriptDirectoryOverride = $0 } }, render: { $0.transcriptDirectory }),
        Setting(key: "auditCheckpointInterval", doc: "Seconds between Ed25519-signed audit checkpoints (also signed at shutdown).",
                apply: { c, v in int(v, 1...86400) { c.auditCheckpointSeconds = $0 } },
                render: { String($0.auditCheckpointSeconds) }),
    ]

    public static func setting(named key: String) -> Setting? { settings.first { $0.key == key } }

    /// Sets `key` to `value`, recording `source`; returns an error message for a bad key or value.
    public mutating func set(_ key: String, to value: String, source: String) -> String? {
        guard let setting = Self.setting(named: key) else {
            return "unknown setting '\(key)'"
        }
        if let problem = setting.apply(&self, value) { return "\(key): \(problem)" }
        sources[key] = source
        return nil
    }

    /// Every setting with its effective value and source, `sshd -T` style.
    public func dump() -> String {
        Self.settings.map { s in
            "\(s.key) \(s.render(self))    # \(sources[s.key] ?? "default")"
        }.joined(separator: "\n")
    }

    static func parseListen(_ v: String) -> (String, Int)? {
        guard let colon = v.lastIndex(of: ":") else { return nil }
        var host = String(v[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(v[v.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        return (host, port)
    }

    private static func absolute(_ v: String, _ set: (String) -> Void) -> String? {
        let path = URL(fileURLWithPath: v).standardizedFileURL.path
        set(path)
        return nil
    }

    private static func bool(_ v: String, _ set: (Bool) -> Void) -> String? {
        switch v.lowercased() {
        case "true", "yes": set(true); return nil
        case "false", "no": set(false); return nil
        default: return "expected true or false"
        }
    }

    /// Seconds: a plain number, or one unit as in policy files (`30s`, `5m`, `1h`, `1d`).
    private static func duration(_ v: String, _ range: ClosedRange<Int>, _ set: (Int) -> Void) -> String? {
        let seconds = v.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) ? Int(v) : PolicyDuration.parseSeconds(v)
        guard let seconds, range.contains(seconds) else {
            return "expected a duration (seconds, or 30s/5m/1h/1d) in \(range.lowerBound)...\(range.upperBound) seconds"
        }
        set(seconds)
        return nil
    }

    private static func int(_ v: String, _ range: ClosedRange<Int>, _ set: (Int) -> Void) -> String? {
        guard v.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = Int(v), range.contains(n) else {
            return "expected an integer in \(range.lowerBound)...\(range.upperBound)"
        }
        set(n)
        return nil
    }
}
