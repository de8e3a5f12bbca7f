import Crypto
import Foundation

/// Random identifiers and their comparison.
public enum WebTokens {
    /// 256 random bits from the system's generator (getrandom), base64url
    /// without padding: a session id, a CSRF token, a conversation id, an API token.
    public static func random() -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes = [UInt8](repeating: 0, count: 32)
        for i in bytes.indices { bytes[i] = UInt8.random(in: .min ... .max, using: &generator) }
        return base64url(bytes)
    }

    public static func base64url(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Compares in time that depends on the lengths only, never on where the
    /// first difference is (CSRF tokens).
    public static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var difference = UInt8(x.count == y.count ? 0 : 1)
        let n = max(x.count, y.count)
        for i in 0..<n {
            difference |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return difference == 0
    }

    /// SHA-256, hex: what is kept of a secret identifier (a session id in the
    /// table, an API token in its file), so a memory or file dump does not
    /// give a usable one.
    public static func digest(_ token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// Whether `token` looks like one of ours (43 base64url characters):
    /// anything else is refused before any lookup.
    public static func isWellFormed(_ token: String) -> Bool {
        token.utf8.count == 43 && token.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x2d || c == 0x5f
        }
    }
}

/// The monitor's server-side web sessions: created only after PAM
/// succeeded, each with its own CSRF token, ended after `idleTimeout`
/// without a request or `lifetime` after sign-in (the shell's `idleTimeout`
/// and `maxSessionLifetime`). Pure: the caller passes the time.
public struct WebSessionTable: Sendable {
    public struct Entry: Sendable, Equatable {
        public let user: String
        public let csrf: String
        public let created: Date
        public var lastSeen: Date

        public init(user: String, csrf: String, created: Date, lastSeen: Date) {
            self.user = user
            self.csrf = csrf
            self.created = created
            self.lastSeen = lastSeen
        }
    }

    public enum Lookup: Equatable, Sendable {
        case valid(Entry)
        /// Known, but idle too long or past its lifetime: removed now.
        case expired
        /// Never issued here (or signed out): a forged or stale cookie.
        case unknown
    }

    public let idleTimeout: TimeInterval
    public let lifetime: TimeInterval
    /// Keyed by the id's digest: the table never holds a usable cookie.
    private var entries: [String: Entry] = [:]
    /// A bound on live sessions, so no one can fill the monitor's memory.
    public let capacity: Int

    public init(idleTimeout: TimeInterval, lifetime: TimeInterval, capacity: Int = 10_000) {
        self.idleTimeout = idleTimeout
        self.lifetime = lifetime
        self.capacity = capacity
    }

    public var count: Int { entries.count }

    /// A new session for `user`: its cookie value and CSRF token.
    public mutating func create(user: String, now: Date) -> (id: String, entry: Entry) {
        purge(now: now)
        if entries.count >= capacity, let oldest = entries.min(by: { $0.value.lastSeen < $1.value.lastSeen })?.key {
            entries[oldest] = nil
        }
        let id = WebTokens.random()
        let entry = Entry(user: user, csrf: WebTokens.random(), created: now, lastSeen: now)
        entries[WebTokens.digest(id)] = entry
        return (id, entry)
    }

    /// The session `id` names at `now`; a valid one counts as activity.
    public mutating func lookup(_ id: String, now: Date) -> Lookup {
        guard WebTokens.isWellFormed(id) else { return .unknown }
        let key = WebTokens.digest(id)
        guard var entry = entries[key] else { return .unknown }
        if now.timeIntervalSince(entry.lastSeen) >= idleTimeout || now.timeIntervalSince(entry.created) >= lifetime {
            entries[key] = nil
            return .expired
        }
        entry.lastSeen = now
        entries[key] = entry
        return .valid(entry)
    }

    /// Whether `token` is this entry's CSRF token (constant time).
    public static func csrfMatches(_ entry: Entry, _ token: String) -> Bool {
        WebTokens.constantTimeEquals(entry.csrf, token)
    }

    public mutating func remove(_ id: String) {
        entries[WebTokens.digest(id)] = nil
    }

    /// Drops every session that has expired by `now`.
    public mutating func purge(now: Date) {
        entries = entries.filter { _, e in
            now.timeIntervalSince(e.lastSeen) < idleTimeout && now.timeIntervalSince(e.created) < lifetime
        }
    }
}
