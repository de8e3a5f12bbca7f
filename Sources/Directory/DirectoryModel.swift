import Foundation
import GatehouseCore
import PolicyFormat
import Yams

/// One OpenSSH public-key line (`type base64 [comment]`), shape-checked.
public struct AuthorizedKey: Sendable, Equatable {
    public let type: String
    public let base64: String
    public let comment: String?
    /// Decoded key blob (the SSH wire encoding).
    public let blob: Data

    /// Key types accepted in the directory.
    public static let knownTypes: Set<String> = [
        "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
    ]

    /// Why a key line was refused.
    public struct ParseError: Error, Sendable, Equatable {
        public let message: String
        init(_ message: String) { self.message = message }
    }

    /// Parses a line; nil with a reason when it is not a plain key line.
    /// Options (`from=…`, `command=…`) are refused: the gateway decides what
    /// a user may do, not a key option.
    public static func parse(_ line: String) -> Result<AuthorizedKey, ParseError> {
        if line.unicodeScalars.contains(where: \.isControlCharacter) {
            return .failure(.init("the key line contains a control character"))
        }
        let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
        guard parts.count >= 2 else { return .failure(.init("expected 'type base64 [comment]'")) }
        let type = String(parts[0])
        guard knownTypes.contains(type) else {
            return .failure(.init("unknown key type '\(type)' (key options are not supported)"))
        }
        let b64 = String(parts[1])
        guard let blob = Data(base64Encoded: b64), blob.count >= 4 else {
            return .failure(.init("the key is not valid base64"))
        }
        // The blob starts with the key type as an SSH string; they must agree.
        let length = blob.prefix(4).reduce(0) { ($0 << 8) | Int($1) }
        guard length > 0, length <= blob.count - 4,
              String(decoding: blob.dropFirst(4).prefix(length), as: UTF8.self) == type else {
            return .failure(.init("the key data does not match its type '\(type)'"))
        }
        let comment = parts.count == 3 ? String(parts[2]) : nil
        return .success(AuthorizedKey(type: type, base64: b64, comment: comment, blob: blob))
    }
}

/// A user in directory.yaml.
public struct DirectoryUser: Sendable {
    public let name: UserName
    public let keys: [AuthorizedKey]
    public let groups: [String]
    public let manager: UserName?
    /// Baseline roles (declared spelling as written).
    public let roles: [String]
    public let line: Int
    let roleLines: [Int]
}

/// A customer tenant, the scope of an elevation.
public struct Tenant: Sendable {
    public let name: String
    /// When on, the tenant's approver must approve after the manager.
    public let customerLockbox: Bool
    public let approvers: [UserName]
    public let line: Int
}

/// The validated directory: users and tenants.
public struct DirectoryModel: Sendable {
    public let file: String
    public let users: [DirectoryUser]
    public let tenants: [Tenant]

    public func user(named name: UserName) -> DirectoryUser? { users.first { $0.name == name } }

    /// Tenants are matched exactly (they are lower-case identifiers).
    public func tenant(named name: String) -> Tenant? { tenants.first { $0.name == name } }

    /// Cross-checks baseline roles against the roles a policy defines: each
    /// must exist. The directory knows nothing else of the policy.
    public func validate(knownRoles: [String]) -> [PolicyDiagnostic] {
        var result: [PolicyDiagnostic] = []
        let known = Set(knownRoles)
        for user in users {
            for (index, role) in user.roles.enumerated() where !known.contains(role) {
                let line = index < user.roleLines.count ? user.roleLines[index] : user.line
                let hint = ASCII.suggestion(for: role, among: knownRoles).map { "did you mean '\($0)'?" }
                result.append(.init(file: file, line: line, column: 0, severity: .error,
                                    message: "user '\(user.name)' has unknown role '\(role)'", hint: hint))
            }
        }
        return result
    }
}

/// Loads `directory.yaml`.
public enum DirectoryLoader {
    public static func load(file: String) throws -> DirectoryModel {
        let diagnostics = DiagnosticCollector()
        let reader = YAMLReader(file: file, diagnostics: diagnostics)
        let root = reader.composeFile()
        let model = root.map { parse($0, reader: reader) } ?? DirectoryModel(file: file, users: [], tenants: [])
        _ = try diagnostics.throwIfErrors()
        return model
    }

    /// Loads from text in memory (tests, demo setup).
    public static func load(text: String, file: String) throws -> DirectoryModel {
        let diagnostics = DiagnosticCollector()
        let reader = YAMLReader(file: file, diagnostics: diagnostics)
        let model = reader.compose(text).map { parse($0, reader: reader) } ?? DirectoryModel(file: file, users: [], tenants: [])
        _ = try diagnostics.throwIfErrors()
        return model
    }

    static func isTenantName(_ name: String) -> Bool {
        let s = Array(name.unicodeScalars)
        guard let first = s.first, ASCII.isLetter(first) || ASCII.isDigit(first), s.count <= 63 else { return false }
        return s.allSatisfy { ASCII.isLetter($0) || ASCII.isDigit($0) || $0 == "-" || $0 == "." || $0 == "_" }
    }

    static func parse(_ root: Node, reader: YAMLReader) -> DirectoryModel {
        var users: [DirectoryUser] = []
        var tenants: [Tenant] = []
        var managerRefs: [(UserName, Node, UserName)] = []
        var approverRefs: [(UserName, Node)] = []
        for section in reader.mapping(root, what: "the directory", allowed: ["users", "tenants"]) ?? [] {
            guard let entries = reader.mapping(section.value, what: "'\(section.key)'") else { continue }
            for entry in entries {
                if section.key == "users" {
                    guard let name = UserName(entry.key) else {
                        reader.error(at: entry.keyNode, "invalid user name '\(entry.key)'",
                                     hint: "lower case [a-z_][a-z0-9._-], at most 32 characters")
                        continue
                    }
                    guard let fields = reader.mapping(entry.value, what: "user '\(entry.key)'",
                                                      allowed: ["keys", "groups", "manager", "roles"]) else { continue }
                    var keys: [AuthorizedKey] = []
                    var groups: [String] = []
                    var manager: UserName?
                    var roles: [String] = []
                    var roleLines: [Int] = []
                    for f in fields {
                        switch f.key {
                        case "keys":
                            for (text, node) in reader.stringList(f.value, what: "keys") ?? [] {
                                switch AuthorizedKey.parse(text) {
                                case .success(let k): keys.append(k)
                                case .failure(let e): reader.error(at: node, "invalid key: \(e.message)")
                                }
                            }
                        case "groups":
                            groups = (reader.stringList(f.value, what: "groups") ?? []).map(\.0)
                        case "manager":
                            if let text = reader.string(f.value, what: "manager") {
                                if let m = UserName(text) {
                                    manager = m
                                    managerRefs.append((m, f.value, name))
                                } else {
                                    reader.error(at: f.value, "invalid manager name '\(text)'")
                                }
                            }
                        case "roles":
                            for (role, node) in reader.stringList(f.value, what: "roles") ?? [] {
                                roles.append(role)
                                roleLines.append(reader.line(node))
                            }
                        default: break
                        }
                    }
                    users.append(DirectoryUser(name: name, keys: keys, groups: groups, manager: manager, roles: roles,
                                               line: reader.line(entry.keyNode), roleLines: roleLines))
                } else {
                    guard isTenantName(entry.key) else {
                        reader.error(at: entry.keyNode, "invalid tenant name '\(entry.key)'")
                        continue
                    }
                    guard let fields = reader.mapping(entry.value, what: "tenant '\(entry.key)'",
                                                      allowed: ["customerLockbox", "approvers"]) else { continue }
                    var lockbox = false
                    var approvers: [UserName] = []
                    for f in fields {
                        if f.key == "customerLockbox" { lockbox = reader.bool(f.value, what: "customerLockbox") ?? false }
                        if f.key == "approvers" {
                            for (text, node) in reader.stringList(f.value, what: "approvers") ?? [] {
                                if let a = UserName(text) {
                                    approvers.append(a)
                                    approverRefs.append((a, node))
                                } else {
                                    reader.error(at: node, "invalid approver name '\(text)'")
                                }
                            }
                        }
                    }
                    if lockbox && approvers.isEmpty {
                        reader.error(at: entry.keyNode, "tenant '\(entry.key)' has Customer Lockbox on but no approvers")
                    }
                    tenants.append(Tenant(name: entry.key, customerLockbox: lockbox, approvers: approvers,
                                          line: reader.line(entry.keyNode)))
                }
            }
        }
        let known = Set(users.map(\.name))
        for (manager, node, user) in managerRefs {
            if !known.contains(manager) {
                reader.error(at: node, "manager '\(manager)' of '\(user)' is not a user in the directory")
            } else if manager == user {
                reader.error(at: node, "'\(user)' cannot be their own manager")
            }
        }
        for (approver, node) in approverRefs where !known.contains(approver) {
            reader.error(at: node, "approver '\(approver)' is not a user in the directory")
        }
        return DirectoryModel(file: reader.file, users: users, tenants: tenants)
    }
}
