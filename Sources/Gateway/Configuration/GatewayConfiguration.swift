import Foundation

/// Every setting of the daemon, each declared once (below, in `settings`) with
/// its type, default and documentation. `gatehoused --dump-config` prints the
/// effective value of each with where it came from, like `sshd -T`.
public struct GatewayConfiguration: Sendable {
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
    // Transcripts and the audit chain (issue 5).
    public var recordTranscripts = true
    /// `nil` means `<stateDirectory>/transcripts`.
    public var transcriptDirectoryOverride: String?
    public var auditCheckpointSeconds = 60

    public init() {}

    public var directoryFile: String { directoryFileOverride ?? policyDirectory + "/directory.yaml" }
    public var hostKeyPath: String { hostKeyOverride ?? stateDirectory + "/ssh_host_ecdsa_key" }
    public var auditLogPath: String { auditLogOverride ?? stateDirectory + "/audit.log" }
    public var transcriptDirectory: String { transcriptDirectoryOverride ?? stateDirectory + "/transcripts" }

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
        Setting(key: "nodeName", doc: "This gateway node's name in audit events (default: host name).",
                apply: { c, v in
                    guard v.range(of: "^[A-Za-z0-9._-]{1,64}$", options: .regularExpression) != nil else {
                        return "expected [A-Za-z0-9._-]{1,64}"
                    }
                    c.nodeName = v; return nil
                }, render: { $0.nodeName }),
        Setting(key: "backendWorkingDirectory", doc: "Working directory of every backend process.",
                apply: { c, v in absolute(v) { c.backendWorkingDirectory = $0 } }, render: { $0.backendWorkingDirectory }),
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

    private static func int(_ v: String, _ range: ClosedRange<Int>, _ set: (Int) -> Void) -> String? {
        guard v.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = Int(v), range.contains(n) else {
            return "expected an integer in \(range.lowerBound)...\(range.upperBound)"
        }
        set(n)
        return nil
    }
}
