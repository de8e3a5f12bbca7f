import Foundation
import GRDB

/// One activity-API client: a name, the tenants whose events it may read,
/// and the SHA-256 of its token. A token is 256 random bits (base64url, 43
/// characters) shown once at creation; only its digest is stored, which is
/// enough for a value with that much entropy (no salt or slow hash is
/// needed: nothing can be guessed). Tokens are read-only by construction:
/// the API has no call that changes anything.
public struct APIClient: Sendable, Equatable, Codable {
    public let id: Int64
    public let name: String
    /// Tenant names; `*` means every tenant and the events that name none.
    public let tenants: [String]
    public let created: Date
    public let revoked: Date?

    public var scope: TenantScope { TenantScope(tenants: tenants) }
}

/// What a token may read.
public struct TenantScope: Sendable, Equatable {
    public let all: Bool
    public let tenants: Set<String>

    public init(tenants: [String]) {
        all = tenants.contains("*")
        self.tenants = Set(tenants.filter { $0 != "*" })
    }

    /// An event, request or session is visible when its scope (tenant) is
    /// one of the token's; one that names no tenant only to an all-tenants
    /// token. Deny by default.
    public func allows(scope: String?) -> Bool {
        if all { return true }
        guard let scope, !scope.isEmpty else { return false }
        return tenants.contains(scope)
    }
}

public enum APITokenError: Error, CustomStringConvertible, Equatable {
    case invalidName(String)
    case invalidTenant(String)
    case duplicateName(String)
    case notFound(String)
    case database(String)

    public var description: String {
        switch self {
        case .invalidName(let n): "invalid client name \(n.debugDescription): use 1-64 letters, digits, '.', '_' or '-'"
        case .invalidTenant(let t): "invalid tenant \(t.debugDescription): use a tenant name from the directory, or '*'"
        case .duplicateName(let n): "an API client named \(n.debugDescription) exists already (revoke it first)"
        case .notFound(let n): "no active API client named \(n.debugDescription)"
        case .database(let d): "API token store: \(d)"
        }
    }
}

/// The tokens' SQLite file, owned by the monitor (0600 in the state
/// directory): `gatehouse api-token` writes it, the monitor reads it to
/// validate a bearer token. Not the Lockbox store.
public final class APITokenStore: Sendable {
    public static let fileName = "api-tokens.sqlite"
    private let db: DatabaseQueue

    public init(path: String) throws(APITokenError) {
        do {
            let previous = umask(0o077)
            defer { umask(previous) }
            var config = Configuration()
            config.label = "gatehouse.api-tokens"
            db = try DatabaseQueue(path: path, configuration: config)
            try Self.migrator.migrate(db)
        } catch {
            throw .database("\(path): \(error)")
        }
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1-api-clients") { db in
            try db.execute(sql: """
                CREATE TABLE clients (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, tokenHash TEXT NOT NULL UNIQUE,
                    tenants TEXT NOT NULL, created REAL NOT NULL, revoked REAL);
                CREATE UNIQUE INDEX clients_active_name ON clients(name) WHERE revoked IS NULL;
                """)
        }
        return m
    }

    public static func validName(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count) && name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x2e || c == 0x5f || c == 0x2d
        }
    }

    /// Creates a client and returns it with its token, which is never stored.
    public func create(name: String, tenants: [String], now: Date) throws(APITokenError) -> (APIClient, token: String) {
        guard Self.validName(name) else { throw .invalidName(name) }
        guard !tenants.isEmpty else { throw .invalidTenant("") }
        for t in tenants where t != "*" && !Self.validName(t) { throw .invalidTenant(t) }
        let token = WebTokens.random()
        let unique = Array(Set(tenants)).sorted()
        do {
            let id = try db.write { db -> Int64 in
                if try Int.fetchOne(db, sql: "SELECT count(*) FROM clients WHERE name = ? AND revoked IS NULL",
                                    arguments: [name]) ?? 0 > 0 {
                    throw APITokenError.duplicateName(name)
                }
                try db.execute(sql: "INSERT INTO clients(name, tokenHash, tenants, created) VALUES (?, ?, ?, ?)",
                               arguments: [name, WebTokens.digest(token), unique.joined(separator: ","),
                                           now.timeIntervalSince1970])
                return db.lastInsertedRowID
            }
            return (APIClient(id: id, name: name, tenants: unique, created: now, revoked: nil), token)
        } catch let error as APITokenError {
            throw error
        } catch {
            throw .database("\(error)")
        }
    }

    public func list() throws(APITokenError) -> [APIClient] {
        do {
            return try db.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM clients ORDER BY id").map(Self.client)
            }
        } catch {
            throw .database("\(error)")
        }
    }

    /// Revokes the active client `name`; its token stops working at once.
    public func revoke(name: String, now: Date) throws(APITokenError) {
        do {
            let changed = try db.write { db -> Int in
                try db.execute(sql: "UPDATE clients SET revoked = ? WHERE name = ? AND revoked IS NULL",
                               arguments: [now.timeIntervalSince1970, name])
                return db.changesCount
            }
            if changed == 0 { throw APITokenError.notFound(name) }
        } catch let error as APITokenError {
            throw error
        } catch {
            throw .database("\(error)")
        }
    }

    /// The active client whose token this is, or nil.
    public func validate(_ token: String) -> APIClient? {
        guard WebTokens.isWellFormed(token) else { return nil }
        let digest = WebTokens.digest(token)
        return try? db.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM clients WHERE tokenHash = ? AND revoked IS NULL",
                             arguments: [digest]).map(Self.client)
        }
    }

    private static func client(_ row: Row) -> APIClient {
        let tenants: String = row["tenants"]
        return APIClient(id: row["id"], name: row["name"], tenants: tenants.split(separator: ",").map(String.init),
                         created: Date(timeIntervalSince1970: row["created"]),
                         revoked: (row["revoked"] as Double?).map(Date.init(timeIntervalSince1970:)))
    }
}
