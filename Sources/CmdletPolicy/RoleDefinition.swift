import PolicyFormat

/// A role: a named list of cmdlets. A command is allowed when one single role
/// lists it; roles are never merged, so a later per-role parameter restriction
/// can never be bypassed by combining two roles.
public struct RoleDefinition: Sendable {
    public let name: String
    public let description: String?
    /// Declared cmdlet names, each guaranteed to exist in the same snapshot.
    public let cmdlets: [String]
    /// Per-cmdlet parameter restrictions, keyed by ASCII-lower-cased cmdlet
    /// name. A cmdlet without an entry is allowed as its definition says.
    public let restrictions: [String: [ParameterRestriction]]
    /// Longest elevation that may be requested for this role (seconds);
    /// nil when the role sets none (the Lockbox applies its own default).
    public let maxDurationSeconds: Int?
    public let file: String
    public let line: Int

    /// ASCII case-insensitive membership.
    public func allows(cmdlet name: String) -> Bool {
        cmdlets.contains { ASCII.equalsIgnoringCase($0, name) }
    }

    /// The first restriction of this role that the bound values violate, as
    /// a reason; nil when this role alone allows every value.
    public func violation(cmdlet: String, values: [(name: String, value: ParameterValue)]) -> String? {
        guard let list = restrictions[ASCII.lowercased(cmdlet)] else { return nil }
        for restriction in list {
            guard let bound = values.first(where: { $0.name == restriction.parameter }) else { continue }
            if let reason = restriction.violation(bound.value) { return reason }
        }
        return nil
    }
}

/// A rule that refuses matching invocations whatever the caller's roles:
/// deny wins. It matches when every condition accepts its parameter's value
/// (a condition on a parameter that was not given does not match); a rule
/// without conditions refuses the cmdlet outright.
public struct DenyRule: Sendable {
    public let cmdlet: String
    public let conditions: [ParameterRestriction]
    public let reason: String?
    public let file: String
    public let line: Int

    public func matches(cmdlet name: String, values: [(name: String, value: ParameterValue)]) -> Bool {
        guard ASCII.equalsIgnoringCase(cmdlet, name) else { return false }
        return conditions.allSatisfy { condition in
            guard let bound = values.first(where: { $0.name == condition.parameter }) else { return false }
            return condition.violation(bound.value) == nil
        }
    }
}

/// An immutable, validated policy. A reload builds a whole new snapshot; a
/// command in flight keeps the snapshot it started with.
public struct PolicySnapshot: Sendable {
    /// Sorted by ASCII-lower-cased name.
    public let cmdlets: [CmdletDefinition]
    /// Sorted by ASCII-lower-cased name.
    public let roles: [RoleDefinition]
    /// Deny rules, in file order; any match refuses the invocation.
    public let denyRules: [DenyRule]
    /// Lint findings that did not stop the load.
    public let warnings: [PolicyDiagnostic]

    private let cmdletIndex: [String: Int]
    private let roleIndex: [String: Int]

    /// A policy that allows nothing.
    public static let empty = PolicySnapshot(validatedCmdlets: [], roles: [], denyRules: [], warnings: [])

    init(validatedCmdlets: [CmdletDefinition], roles: [RoleDefinition], denyRules: [DenyRule] = [],
         warnings: [PolicyDiagnostic]) {
        self.denyRules = denyRules
        let sortedCmdlets = validatedCmdlets.sorted { ASCII.lowercased($0.name) < ASCII.lowercased($1.name) }
        let sortedRoles = roles.sorted { ASCII.lowercased($0.name) < ASCII.lowercased($1.name) }
        cmdlets = sortedCmdlets
        self.roles = sortedRoles
        self.warnings = warnings
        var ci: [String: Int] = [:]
        for (i, c) in sortedCmdlets.enumerated() where ci[ASCII.lowercased(c.name)] == nil {
            ci[ASCII.lowercased(c.name)] = i
        }
        // Aliases after all names: the loader refuses a clash, and a name wins anyway.
        for (i, c) in sortedCmdlets.enumerated() {
            for alias in c.aliases where ci[ASCII.lowercased(alias.name)] == nil { ci[ASCII.lowercased(alias.name)] = i }
        }
        var ri: [String: Int] = [:]
        for (i, r) in sortedRoles.enumerated() where ri[ASCII.lowercased(r.name)] == nil {
            ri[ASCII.lowercased(r.name)] = i
        }
        cmdletIndex = ci
        roleIndex = ri
    }

    /// ASCII case-insensitive lookup by name or declared alias (`get-mailbox`
    /// and `gmbx` find `Get-Mailbox`).
    public func cmdlet(named name: String) -> CmdletDefinition? {
        cmdletIndex[ASCII.lowercased(name)].map { cmdlets[$0] }
    }

    /// ASCII case-insensitive lookup.
    public func role(named name: String) -> RoleDefinition? {
        roleIndex[ASCII.lowercased(name)].map { roles[$0] }
    }
}
