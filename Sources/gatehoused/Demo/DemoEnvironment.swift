import Foundation
import GatehouseCore
import SSHServer

/// Builds the demo's state directory: users with ECDSA P-256 keys (which
/// FIPS mode accepts) and TOTP secrets checked by the real pam_oath, a private
/// PAM service directory loaded through pam_wrapper, a directory file, demo
/// mailbox data, and `demo-users.json` so scripts can log in too.
///
/// Re-running is idempotent: existing keys, secrets and mailbox data are kept,
/// so a restarted demo accepts the same credentials.
struct DemoEnvironment {
    struct User: Codable, Sendable {
        var name: String
        var privateKey: String
        var publicKey: String
        var totpSecretHex: String
        var totpSecretBase32: String
        var roles: [String]
        var groups: [String]
        var manager: String?
        var description: String
        /// The console's first factor (pam_pwdfile), random per demo state.
        var webPassword: String?
    }

    struct Manifest: Codable, Sendable {
        var listen: String
        var users: [User]
        /// The web console's URL, when it runs.
        var web: String?
    }

    /// The demo's PAM service name; the production example is `gatehouse`.
    static let pamService = "gatehouse-demo"
    /// The console's sign-in: pam_pwdfile (password) then pam_oath (TOTP).
    static let webPamService = "gatehouse-demo-web"

    let stateDirectory: String
    private(set) var users: [User] = []

    var manifestPath: String { stateDirectory + "/demo-users.json" }
    var pamServiceDirectory: String { stateDirectory + "/pam.d" }
    var directoryFile: String { stateDirectory + "/directory.yaml" }
    var knownHostsPath: String { stateDirectory + "/known_hosts" }
    var oathUsersFile: String { stateDirectory + "/oath/users.oath" }
    var webPasswordFile: String { stateDirectory + "/web-passwords" }

    /// Who the demo users are, and what each may do at baseline.
    static let roster: [(name: String, groups: [String], manager: String?, roles: [String], description: String)] = [
        ("alice", ["engineers"], "bob", ["MailboxReader"], "engineer; manager bob; may read mailboxes, may request MailboxAdmin"),
        ("bob", ["managers"], nil, ["MailboxReader"], "manager of alice and dave: approves (first stage) or revokes their requests"),
        ("carol", ["customer-approvers"], nil, [], "Customer Lockbox approver for tenant contoso (second stage); no cmdlets at baseline"),
        ("dave", ["engineers"], "bob", ["MailboxReader"], "engineer; manager bob; may read mailboxes, may request MailboxAdmin"),
        ("rita", ["reviewers"], nil, [], "security reviewer: searches commands and plays transcripts in the web console; no cmdlets"),
    ]

    init(stateDirectory: String) {
        self.stateDirectory = stateDirectory
    }

    /// Creates whatever is missing and rewrites the derived files.
    mutating func prepare() throws {
        try Self.makeDirectory(stateDirectory)
        try Self.makeDirectory(stateDirectory + "/keys")
        try Self.makeDirectory(stateDirectory + "/oath")
        try Self.makeDirectory(pamServiceDirectory)
        try Self.makeDirectory(stateDirectory + "/mailboxes")

        let previous = (try? Data(contentsOf: URL(fileURLWithPath: manifestPath)))
            .flatMap { try? JSONDecoder().decode(Manifest.self, from: $0) }
        users = try Self.roster.map { entry in
            let keyPath = stateDirectory + "/keys/" + entry.name
            if let old = previous?.users.first(where: { $0.name == entry.name }),
               FileManager.default.fileExists(atPath: keyPath) {
                var user = old
                user.roles = entry.roles
                user.groups = entry.groups
                user.manager = entry.manager
                user.description = entry.description
                user.privateKey = keyPath
                if user.webPassword == nil { user.webPassword = Self.randomPassword() }
                return user
            }
            try? FileManager.default.removeItem(atPath: keyPath)
            let publicKey = try SSHKeyGenerator.generate(type: .ecdsaP256, privateKeyPath: keyPath)
            try Self.writeFile(keyPath + ".pub", publicKey.openSSHLine + " \(entry.name)@gatehouse-demo\n", mode: 0o644)
            let secret = TOTPSecret.random()
            return User(name: entry.name, privateKey: keyPath, publicKey: publicKey.openSSHLine,
                        totpSecretHex: secret.hex, totpSecretBase32: secret.base32, roles: entry.roles,
                        groups: entry.groups, manager: entry.manager, description: entry.description,
                        webPassword: Self.randomPassword())
        }

        // pam_oath rewrites this file to remember the last code used (replay
        // protection), so it is written only when the set of users changed.
        let oathLines = users.map { "HOTP/T30 \($0.name) - \($0.totpSecretHex)" }
        let existing = (try? String(contentsOfFile: oathUsersFile, encoding: .utf8)) ?? ""
        let existingSecrets = Set(existing.split(separator: "\n").map { $0.split(separator: " ").prefix(4).joined(separator: " ") })
        if !Set(oathLines).isSubset(of: existingSecrets) {
            try Self.writeFile(oathUsersFile, oathLines.joined(separator: "\n") + "\n", mode: 0o600)
        }
        try writePAMService()
        try Self.writeFile(webPasswordFile, try users.map { "\($0.name):\(try PasswordHash.sha512Crypt($0.webPassword ?? ""))" }
            .joined(separator: "\n") + "\n", mode: 0o600)
        try Self.writeFile(directoryFile, renderDirectory(), mode: 0o644)
        let mailboxes = stateDirectory + "/mailboxes/mailboxes.json"
        if !FileManager.default.fileExists(atPath: mailboxes) {
            try Self.writeFile(mailboxes, Self.seedMailboxes, mode: 0o600)
        }
    }

    /// Writes the manifest and a known_hosts file once the listener is up.
    func publish(listen: String, host: String, port: Int, hostKey: SSHPublicKey, web: String? = nil) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(Manifest(listen: listen, users: users, web: web))
        try Self.writeFile(manifestPath, String(decoding: data, as: UTF8.self) + "\n", mode: 0o600)
        let hostPattern = port == 22 ? host : "[\(host)]:\(port)"
        try Self.writeFile(knownHostsPath, "\(hostPattern) \(hostKey.openSSHLine)\n", mode: 0o644)
    }

    /// The text `make demo` prints: where to connect and how to log in.
    func instructions(host: String, port: Int, fips: Bool, web: String? = nil) -> String {
        var lines: [String] = []
        lines.append("")
        lines.append("Gatehouse demo is listening on \(host):\(port) (FIPS algorithms only: \(fips ? "yes" : "no")).")
        lines.append("State directory: \(stateDirectory)")
        lines.append("PAM: service '\(Self.pamService)' from \(pamServiceDirectory), loaded through pam_wrapper (demo only;")
        lines.append("     production uses /etc/pam.d/gatehouse, see deploy/pam/). TOTP is checked by pam_oath.")
        lines.append("")
        lines.append("Demo users:")
        for user in users {
            lines.append("  \(user.name.padding(toLength: 6, withPad: " ", startingAt: 0)) \(user.description); roles: \(user.roles.isEmpty ? "none" : user.roles.joined(separator: ", "))")
        }
        lines.append("")
        lines.append("Log in (you are asked for the key's TOTP code after the key is accepted):")
        for user in users {
            lines.append("  ssh -p \(port) -i \(user.privateKey) -o IdentitiesOnly=yes -o UserKnownHostsFile=\(knownHostsPath) \(user.name)@\(host)")
        }
        lines.append("")
        lines.append("Current TOTP code for a user (valid 30 s, each code works once):")
        for user in users {
            lines.append("  \(user.name): oathtool --totp \(user.totpSecretHex)")
        }
        lines.append("")
        lines.append("Try:  Get-Mailbox -Identity alice         (allowed for alice)")
        lines.append("      Set-Mailbox -Identity alice -ProhibitSendQuota 1GB   (refused: needs MailboxAdmin)")
        lines.append("Elevation (Lockbox): alice> New-LockboxRequest -Role MailboxAdmin -Scope contoso -Duration 1h -Reason 'quota' -Ticket INC-1")
        lines.append("      bob> Get-LockboxRequest -Pending; Approve-LockboxRequest -Id N   carol> Approve-LockboxRequest -Id N")
        lines.append("      alice> Get-LockboxCredential -Id N; Enter-Elevation -Id N (type the secret); Set-Mailbox -Identity alice -ProhibitSendQuota 1GB")
        lines.append("Or run one command:  ssh -p \(port) -i \(users.first?.privateKey ?? "KEY") -o IdentitiesOnly=yes -o UserKnownHostsFile=\(knownHostsPath) alice@\(host) 'Get-Mailbox -Identity alice'")
        if let web {
            lines.append("")
            lines.append("Web console (approvals, review, activity API): \(web)")
            lines.append("  Sign in with the password below, then the user's current TOTP code (oathtool line above):")
            for user in users where ["bob", "carol", "rita"].contains(user.name) {
                lines.append("  \(user.name.padding(toLength: 6, withPad: " ", startingAt: 0)) password \(user.webPassword ?? "?")   (\(user.name == "rita" ? "reviewer" : "approver"))")
            }
            lines.append("  rita: oathtool --totp \(users.first { $0.name == "rita" }?.totpSecretHex ?? "")")
            lines.append("  API token: .build/debug/gatehouse api-token create --name NAME --tenant contoso --state-dir \(stateDirectory)")
            lines.append("  then: curl -H 'Authorization: Bearer TOKEN' \(web)/api/v1/activity   (document: \(web)/api/v1/openapi.json)")
        }
        lines.append("Scripts can read users, keys and secrets from \(manifestPath).")
        lines.append("Audit log: \(stateDirectory)/audit.log    Stop with Ctrl-C.")
        lines.append("")
        return lines.joined(separator: "\n")
    }

    private func writePAMService() throws {
        guard let oath = Self.findPAMModule("pam_oath.so") else {
            throw DemoError("pam_oath.so not found; install libpam-oath")
        }
        guard let permit = Self.findPAMModule("pam_permit.so") else {
            throw DemoError("pam_permit.so not found; install libpam-modules")
        }
        let stack = """
        # Demo PAM stack, written by gatehoused --demo. Loaded through pam_wrapper.
        # The key was checked by the gateway already; PAM adds the TOTP factor.
        auth     required  \(oath) usersfile=\(oathUsersFile) window=2 digits=6
        account  required  \(permit)

        """
        try Self.writeFile(pamServiceDirectory + "/" + Self.pamService, stack, mode: 0o644)
        if let pwdfile = Self.findPAMModule("pam_pwdfile.so") {
            let web = """
            # The web console's demo sign-in, written by gatehoused --demo: a password
            # (pam_pwdfile, SHA-512 crypt hashes), then the same TOTP as the shell.
            auth     required  \(pwdfile) pwdfile=\(webPasswordFile)
            auth     required  \(oath) usersfile=\(oathUsersFile) window=2 digits=6
            account  required  \(permit)

            """
            try Self.writeFile(pamServiceDirectory + "/" + Self.webPamService, web, mode: 0o644)
        }
        // Anything else that asks for a PAM service is refused.
        let deny = Self.findPAMModule("pam_deny.so") ?? permit.replacingOccurrences(of: "pam_permit", with: "pam_deny")
        try Self.writeFile(pamServiceDirectory + "/other", "auth required \(deny)\naccount required \(deny)\n", mode: 0o644)
    }

    private func renderDirectory() -> String {
        var out = "# Demo directory, written by gatehoused --demo from demo-users.json.\n# Regenerated at every demo start: edit policies/directory.yaml for real deployments.\nusers:\n"
        for user in users {
            out += "  \(user.name):\n"
            out += "    groups: [\(user.groups.joined(separator: ", "))]\n"
            if let manager = user.manager { out += "    manager: \(manager)\n" }
            out += "    roles: [\(user.roles.joined(separator: ", "))]\n"
            out += "    keys:\n      - \"\(user.publicKey)\"\n"
        }
        out += """
        tenants:
          contoso:
            customerLockbox: true
            approvers: [carol]
          fabrikam:
            customerLockbox: false

        """
        return out
    }

    static let seedMailboxes = """
    [
      {"identity": "alice", "displayName": "Alice Anders", "primarySmtpAddress": "alice@contoso.com", "prohibitSendQuotaBytes": 2147483648, "itemCount": 1284, "totalItemSizeBytes": 734003200},
      {"identity": "bob", "displayName": "Bob Berg", "primarySmtpAddress": "bob@contoso.com", "prohibitSendQuotaBytes": 2147483648, "itemCount": 402, "totalItemSizeBytes": 104857600},
      {"identity": "carol", "displayName": "Carol Chen", "primarySmtpAddress": "carol@contoso.com", "prohibitSendQuotaBytes": 5368709120, "itemCount": 9120, "totalItemSizeBytes": 3221225472},
      {"identity": "dave", "displayName": "Dave Diaz", "primarySmtpAddress": "dave@fabrikam.com", "prohibitSendQuotaBytes": 1073741824, "itemCount": 77, "totalItemSizeBytes": 12582912},
      {"identity": "fiona", "displayName": "Fiona Falk", "primarySmtpAddress": "fiona@fabrikam.com", "prohibitSendQuotaBytes": 1073741824, "itemCount": 310, "totalItemSizeBytes": 52428800}
    ]

    """

    /// 18 random base32 characters (90 bits): typed by a person, never reused.
    static func randomPassword() -> String {
        let alphabet = Array("abcdefghijkmnpqrstuvwxyz23456789")
        var rng = SystemRandomNumberGenerator()
        return String((0..<18).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &rng)] })
    }

    /// Looks for a PAM module in the usual multiarch and lib directories.
    static func findPAMModule(_ name: String) -> String? {
        let dirs = ["/lib/x86_64-linux-gnu/security", "/usr/lib/x86_64-linux-gnu/security",
                    "/lib/aarch64-linux-gnu/security", "/usr/lib/aarch64-linux-gnu/security",
                    "/usr/lib64/security", "/lib64/security", "/usr/lib/security", "/lib/security"]
        return dirs.map { $0 + "/" + name }.first { FileManager.default.fileExists(atPath: $0) }
    }

    /// The pam_wrapper preload library, if installed (package libpam-wrapper).
    static func findPAMWrapper() -> String? {
        ["/usr/lib/x86_64-linux-gnu/libpam_wrapper.so", "/usr/lib/aarch64-linux-gnu/libpam_wrapper.so",
         "/usr/lib64/libpam_wrapper.so", "/usr/lib/libpam_wrapper.so"]
            .first { FileManager.default.fileExists(atPath: $0) }
    }

    /// The demo makes the network side's account when the system lacks it
    /// (a production system declares it: deploy/sysusers.d/gatehouse.conf):
    /// `useradd --system`, no home, no login shell. Only as root, which the
    /// daemon must be anyway.
    static func ensureAccount(_ name: String) throws {
        if (try? AccountDatabase.account(named: name)) ?? nil != nil { return }
        let useradd = ["/usr/sbin/useradd", "/sbin/useradd"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let useradd else { throw DemoError("no useradd to create the account \(name); create it yourself") }
        let argv = [useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name]
        var cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for argument in cArguments { free(argument) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, useradd, nil, nil, &cArguments, environ)
        guard rc == 0 else { throw DemoError("cannot run \(useradd): \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        guard (try? AccountDatabase.account(named: name)) ?? nil != nil else {
            throw DemoError("useradd \(name) failed (wait status \(status)); create the account yourself")
        }
    }

    static func makeDirectory(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
    }

    /// Writes atomically (temp file + rename) with the given mode.
    static func writeFile(_ path: String, _ text: String, mode: Int) throws {
        let tmp = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: tmp, contents: Data(text.utf8),
                                             attributes: [.posixPermissions: mode]) else {
            throw DemoError("cannot write \(tmp)")
        }
        guard rename(tmp, path) == 0 else {
            unlink(tmp)
            throw DemoError("cannot rename \(tmp) to \(path): \(String(cString: strerror(errno)))")
        }
    }
}

struct DemoError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
