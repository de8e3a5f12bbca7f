// gatehouse mfa enroll/reset: a user's TOTP second factor, as the PAM stack's
// pam_oath checks it (usersfile=<state dir>/oath/users.oath, see deploy/pam/).
import ArgumentParser
import Directory
import Foundation
import GatehouseCore
import Gateway

struct MFA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mfa",
        abstract: "Enrol a user's TOTP second factor, or replace it (pam_oath's users file).",
        discussion: """
            The new secret is shown once, on this terminal only (an otpauth:// URI and a QR code \
            for authenticator apps), and never logged. The running daemon audits the change \
            (mfa.enrolled, mfa.reset: user and operator uid, no secret) through its control socket; \
            with no daemon running the change is made unaudited, with a warning.
            """,
        subcommands: [Enroll.self, Reset.self])

    struct Location: ParsableArguments {
        @Option(name: .long, help: "The daemon's state directory.")
        var stateDir: String = "/var/lib/gatehouse"

        @Flag(name: .long, help: "Use the demo's state directory (./.gatehouse-demo).")
        var demo = false

        @Option(name: .long, help: ArgumentHelp("pam_oath's users file, as the PAM stack's usersfile= names it (default <state dir>/oath/users.oath).", valueName: "path"))
        var usersFile: String?

        @Option(name: .long, help: ArgumentHelp("Directory file the user must be in (default <state dir>/directory.yaml if it exists, as the demo writes it, else /etc/gatehouse/policies/directory.yaml).", valueName: "path"))
        var directory: String?

        @Flag(name: .long, help: "Draw the QR code for a terminal with a light background (default: dark background).")
        var lightTerminal = false

        var stateDirectory: String { demo ? FileManager.default.currentDirectoryPath + "/.gatehouse-demo" : stateDir }
        var usersFilePath: String { usersFile ?? stateDirectory + "/oath/users.oath" }
        var directoryPath: String {
            if let directory { return directory }
            let local = stateDirectory + "/directory.yaml"
            return FileManager.default.fileExists(atPath: local) ? local : "/etc/gatehouse/policies/directory.yaml"
        }
    }

    struct Enroll: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give USER a new TOTP secret; refused if USER already has one (see reset).")
        @OptionGroup var location: Location
        @Argument(help: "The user (an account in the gateway's directory).") var user: String
        func run() throws { try MFA.run(.enroll, user: user, location: location) }
    }

    struct Reset: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replace USER's TOTP secret (a lost phone); the old one stops working at once.")
        @OptionGroup var location: Location
        @Argument(help: "The user (an account in the gateway's directory).") var user: String
        func run() throws { try MFA.run(.reset, user: user, location: location) }
    }

    static func run(_ change: OathUsersFile.Change, user text: String, location: Location) throws {
        let command = change == .enroll ? "enroll" : "reset"
        func fail(_ message: String) -> ExitCode {
            FileHandle.standardError.write(Data("gatehouse mfa \(command): \(message)\n".utf8))
            return ExitCode(1)
        }
        if let problem = userNameProblem(text) {
            throw fail("user name '\(TerminalText.sanitize(text, keepLineBreaks: false))' \(problem)")
        }
        let user = UserName(text)!
        let directoryFile = location.directoryPath
        let directory: DirectoryModel
        do {
            directory = try DirectoryLoader.load(file: directoryFile)
        } catch {
            throw fail("cannot read the directory \(directoryFile) (pass --directory): \(error)")
        }
        guard directory.user(named: user) != nil else {
            throw fail("'\(user)' is not a user in the directory \(directoryFile); add the account there first")
        }

        // A first enrolment on a new install: the file's directory (pam_oath
        // writes beside the file, so it is the daemon's, mode 0700).
        let usersDirectory = (location.usersFilePath as NSString).deletingLastPathComponent
        if change == .enroll, !usersDirectory.isEmpty, !FileManager.default.fileExists(atPath: usersDirectory) {
            guard mkdir(usersDirectory, 0o700) == 0 || errno == EEXIST else {
                throw fail("cannot create \(usersDirectory): \(String(cString: strerror(errno)))")
            }
        }

        var secret = randomSecret()
        defer { secret.removeAll() }
        do {
            try OathUsersFile.apply(change, user: user, secret: secret, path: location.usersFilePath)
        } catch let error as OathUsersFileError {
            throw fail(error.description)
        }

        let audit = auditNote(change, user: user, location: location)

        // The enrolment URI (Google Authenticator's Key Uri Format), built in
        // wiped storage and NUL-terminated for libqrencode. A UserName needs
        // no percent-encoding.
        let prefix = "otpauth://totp/Gatehouse:\(user)?secret="
        let suffix = "&issuer=Gatehouse&algorithm=SHA1&digits=6&period=30"
        var uri = SecretBytes(capacity: prefix.utf8.count + (OathUsersFile.secretLength * 8 + 4) / 5 + suffix.utf8.count + 2)
        defer { uri.removeAll() }
        Array(prefix.utf8).withUnsafeBytes { _ = uri.append(contentsOf: $0) }
        secret.withUnsafeBytes { bytes in Base32.encode(bytes, into: { uri.append($0) }) }
        Array(suffix.utf8).withUnsafeBytes { _ = uri.append(contentsOf: $0) }
        uri.append(0)

        let heading = """
            \(change == .enroll ? "Enrolled" : "Reset") \(user): a new TOTP secret (6 digits, 30 s, SHA-1) is in \
            \(location.usersFilePath)\(change == .reset ? "; the old one no longer works" : "").
            Give it to \(user) only: scan the QR code with an authenticator app, or type the URI's secret.
            It is shown here only, never logged (\(audit)); clear this terminal's scrollback afterwards.


            """
        do {
            try Array(heading.utf8).withUnsafeBytes { try TerminalQR.writeAll($0, to: STDOUT_FILENO) }
            // The URI without its NUL, then the code of the same bytes.
            try uri.withUnsafeBytes { try TerminalQR.writeAll(UnsafeRawBufferPointer(rebasing: $0.dropLast()), to: STDOUT_FILENO) }
            try Array("\n\n".utf8).withUnsafeBytes { try TerminalQR.writeAll($0, to: STDOUT_FILENO) }
            try TerminalQR.write(uri, background: location.lightTerminal ? .light : .dark, to: STDOUT_FILENO)
        } catch let error as OathUsersFileError {
            throw fail("the secret is enrolled, but it could not be shown (run reset): \(error)")
        }
    }

    /// Asks the running daemon to audit the change (`mfa.enrolled` or
    /// `mfa.reset`, with the user and this operator's uid, never the
    /// secret): only the daemon holds the audit chain and its signing key,
    /// and a second writer would fork the chain. Without a daemon the change
    /// stands, unaudited, and stderr says so.
    static func auditNote(_ change: OathUsersFile.Change, user: UserName, location: Location) -> String {
        DaemonAudit.report(.mfaChanged(user: user.rawValue, reset: change == .reset),
                           stateDirectory: location.stateDirectory, command: "mfa")
            .map { "the audit log records \($0) without it" } ?? "and not audited: see the warning"
    }

    /// Why `text` cannot be a user name, named so the operator sees the
    /// problem; nil when it is a valid account name (`UserName`).
    static func userNameProblem(_ text: String) -> String? {
        let scalars = Array(text.unicodeScalars)
        if scalars.isEmpty { return "is empty" }
        if let c = scalars.first(where: { $0.isControlCharacter || $0.isLineOrParagraphSeparator || $0.isBidiControl }) {
            return "contains a control character (U+\(String(format: "%04X", c.value)))"
        }
        if scalars.contains(where: { $0.properties.isWhitespace }) { return "contains whitespace" }
        if text.utf8.count > 32 { return "is longer than 32 bytes" }
        if UserName.isValid(text) { return nil }
        if scalars.contains(where: { ("A"..."Z").contains($0) }) { return "has upper-case letters (account names are lower case)" }
        return "is not an account name: expected a lower-case letter or _ first, then letters, digits, '.', '_' or '-'"
    }

    /// 20 bytes (160 bits, RFC 4226's recommendation and what oathtool
    /// generates) from the system CSPRNG (`SystemRandomNumberGenerator`,
    /// getrandom(2) on Linux), appended byte by byte to wiped storage, so
    /// no other buffer ever holds them.
    static func randomSecret() -> SecretBytes {
        var rng = SystemRandomNumberGenerator()
        var secret = SecretBytes(capacity: OathUsersFile.secretLength)
        for _ in 0..<OathUsersFile.secretLength { secret.append(UInt8.random(in: .min ... .max, using: &rng)) }
        return secret
    }
}
