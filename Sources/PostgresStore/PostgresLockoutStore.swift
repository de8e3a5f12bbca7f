import Foundation
import PostgresNIO

/// Second-factor failures of every node in one table, so a user's lockout
/// counts attempts made on any node. Each failure is one row (user, time,
/// node); recording one also deletes that user's rows older than the
/// window, so the table holds at most the attempts inside one window.
/// Conforms to Gateway's `LockoutStore` (in gatehoused, which links both).
public final class PostgresLockoutStore: Sendable {
    let database: FleetDatabase

    public init(database: FleetDatabase) {
        self.database = database
    }

    public func recordFailure(user: String, at: Date, since: Date, node: String) throws -> Int {
        try database.transaction { s in
            var b = PostgresBindings()
            b.append(user); b.append(since.timeIntervalSince1970)
            try s.execute("DELETE FROM user_lockout_failure WHERE user_name = $1 AND at <= $2", b)
            var i = PostgresBindings()
            i.append(user); i.append(at.timeIntervalSince1970); i.append(node)
            try s.execute("INSERT INTO user_lockout_failure(user_name, at, node) VALUES ($1, $2, $3)", i)
            return try Self.count(s, user: user, since: since)
        }
    }

    public func failureCount(user: String, since: Date) throws -> Int {
        try database.withConnection { s in try Self.count(s, user: user, since: since) }
    }

    public func clear(user: String, since: Date) throws -> Int {
        try database.transaction { s in
            let recent = try Self.count(s, user: user, since: since)
            var d = PostgresBindings()
            d.append(user)
            try s.execute("DELETE FROM user_lockout_failure WHERE user_name = $1", d)
            return recent
        }
    }

    /// `user`'s failures after `since`, on every node.
    private static func count(_ s: FleetDatabase.Session, user: String, since: Date) throws -> Int {
        var b = PostgresBindings()
        b.append(user); b.append(since.timeIntervalSince1970)
        return try s.query("SELECT COUNT(*) FROM user_lockout_failure WHERE user_name = $1 AND at > $2", b)
            .first!.decode(Int.self)
    }

    public func users(since: Date, atLeast: Int) throws -> [String] {
        try database.withConnection { s in
            var b = PostgresBindings()
            b.append(since.timeIntervalSince1970); b.append(atLeast)
            return try s.query("""
                SELECT user_name FROM user_lockout_failure WHERE at > $1
                GROUP BY user_name HAVING COUNT(*) >= $2 ORDER BY user_name
                """, b).map { try $0.decode(String.self) }
        }
    }
}
