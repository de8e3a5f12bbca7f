import Foundation

/// Where a fleet's shared PostgreSQL is: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=MODE]`
/// (the `store` setting, `gatehouse --store`). A plain value with its parser,
/// so the configuration can check it without linking a database driver.
///
/// The password is a secret: `description`, `redacted` and the `Codable`
/// form (which the monitor sends to the network side) never carry it.
public struct PostgresLocation: Sendable, Equatable, Codable, CustomStringConvertible {
    /// How the connection is protected, as libpq's `sslmode` names it.
    public enum TLSMode: String, Sendable, Codable, CaseIterable {
        /// No TLS (loopback test servers).
        case disable
        /// TLS, without checking the server's certificate.
        case require
        /// TLS, the certificate checked against the system's trust store and the host name.
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    public var user: String
    public var database: String
    public var tls: TLSMode
    /// From the URL or from a password file; never encoded, logged or printed.
    public var password: String?

    public init(host: String, port: Int = 5432, user: String, database: String, tls: TLSMode = .verifyFull,
                password: String? = nil) {
        self.host = host
        self.port = port
        self.user = user
        self.database = database
        self.tls = tls
        self.password = password
    }

    /// Parses a `postgres://` URL; the error says what is wrong without
    /// repeating the URL (it may hold a password).
    public static func parse(_ text: String) -> Result<PostgresLocation, PostgresLocationError> {
        guard let components = URLComponents(string: text) else { return .failure(.init("not a URL")) }
        guard let scheme = components.scheme, ["postgres", "postgresql"].contains(scheme.lowercased()) else {
            return .failure(.init("expected a postgres://USER@HOST[:PORT]/DATABASE URL"))
        }
        guard let host = components.host, !host.isEmpty else { return .failure(.init("no host")) }
        guard let user = components.user, !user.isEmpty else { return .failure(.init("no user (postgres://USER@HOST/DB)")) }
        let port = components.port ?? 5432
        guard (1...65535).contains(port) else { return .failure(.init("port out of range")) }
        var database = components.path
        if database.hasPrefix("/") { database.removeFirst() }
        guard !database.isEmpty, !database.contains("/") else { return .failure(.init("no database (postgres://USER@HOST/DB)")) }
        var tls = TLSMode.verifyFull
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let value = item.value, let mode = TLSMode(rawValue: value) else {
                    return .failure(.init("sslmode: expected disable, require or verify-full"))
                }
                tls = mode
            default:
                return .failure(.init("unknown URL parameter '\(item.name)' (only sslmode)"))
            }
        }
        let password = components.password.flatMap { $0.isEmpty ? nil : $0 }
        return .success(PostgresLocation(host: host, port: port, user: user, database: database, tls: tls,
                                         password: password))
    }

    /// The URL without its password: safe for logs, `--dump-config` and errors.
    public var redacted: String {
        "postgres://\(user)\(password == nil ? "" : ":***")@\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)?sslmode=\(tls.rawValue)"
    }

    public var description: String { redacted }

    private enum CodingKeys: String, CodingKey { case host, port, user, database, tls }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(host: try c.decode(String.self, forKey: .host), port: try c.decode(Int.self, forKey: .port),
                  user: try c.decode(String.self, forKey: .user), database: try c.decode(String.self, forKey: .database),
                  tls: try c.decode(TLSMode.self, forKey: .tls), password: nil)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(host, forKey: .host)
        try c.encode(port, forKey: .port)
        try c.encode(user, forKey: .user)
        try c.encode(database, forKey: .database)
        try c.encode(tls, forKey: .tls)
    }

    /// Takes the password from the first line of `file` (`storePasswordFile`,
    /// `gatehouse --store-password-file`), which must be readable by its
    /// owner only: a password file others can read is refused, not used.
    /// The error names the problem, never the file's content.
    public mutating func readPassword(fromFile file: String) throws(PostgresLocationError) {
        var info = stat()
        guard stat(file, &info) == 0 else { throw .init(String(cString: strerror(errno))) }
        guard info.st_mode & 0o077 == 0 else {
            throw .init("readable by group or others (mode " + String(info.st_mode & 0o777, radix: 8) + "); chmod 600 it")
        }
        guard let data = FileManager.default.contents(atPath: file) else { throw .init("cannot read it") }
        let first = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).first ?? ""
        guard !first.isEmpty else { throw .init("its first line is empty") }
        password = String(first)
    }
}

public struct PostgresLocationError: Error, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
