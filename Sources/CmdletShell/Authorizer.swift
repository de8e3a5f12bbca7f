import CmdletPolicy
import GatehouseCore

/// The decision and, when allowed, the one grant that made it.
public struct Authorization: Sendable, Equatable {
    public let decision: Decision
    /// The deciding grant; its role and scope are what the backend is told.
    public let grant: RoleGrant?
}

/// Decides whether a claim may run a bound cmdlet. Default deny.
///
/// A command is allowed only when ONE single active grant's role lists the
/// cmdlet and that same role's parameter restrictions accept every bound
/// value; roles are never merged, so two half-permissions never add up to a
/// whole one.
///
/// When the backend template uses `{scope}`, only a scoped grant may decide,
/// and all scoped grants that could decide must agree on the tenant: the
/// scope comes from the claim, never from the typed line, so there would be
/// no honest way to pick one of two tenants.
public enum Authorizer {
    public static func authorize(cmdlet: CmdletDefinition, parameters: [BoundParameter], claim: AccessClaim,
                                 snapshot: PolicySnapshot) -> Authorization {
        // A command declared in code is answered by its declarer, never run
        // through a role; no snapshot holds one, so this is only a backstop.
        guard let backend = cmdlet.backend else {
            return Authorization(decision: .deny(reason: "'\(cmdlet.name)' is not a policy cmdlet"), grant: nil)
        }
        let needsScope = backend.requiresScope
        var candidates: [RoleGrant] = []
        var restricted: [String] = []
        let values = parameters.map { (name: $0.name, value: $0.value) }
        // Deny rules win over every role.
        if let rule = snapshot.denyRules.first(where: { $0.matches(cmdlet: cmdlet.name, values: values) }) {
            let why = rule.reason.map { ": " + Display.clip($0, max: 200) } ?? ""
            return Authorization(decision: .deny(reason: "'\(cmdlet.name)' is refused by a deny rule\(why)"), grant: nil)
        }
        for grant in claim.grants where grant.isActive(at: claim.issuedAt) {
            guard let role = snapshot.role(named: grant.role), role.allows(cmdlet: cmdlet.name) else { continue }
            // Each role is judged alone: its own restrictions must accept
            // every value. Two roles never add up to one permission.
            if let reason = role.violation(cmdlet: cmdlet.name, values: values) {
                if !restricted.contains(where: { $0.hasPrefix("role \(role.name):") }) {
                    restricted.append("role \(role.name): \(reason)")
                }
                continue
            }
            candidates.append(grant)
        }
        guard !candidates.isEmpty else {
            let reason = restricted.isEmpty ? notPermitted(cmdlet, claim)
                : "'\(cmdlet.name)' is not permitted with these values (\(restricted.joined(separator: "; ")))."
            return Authorization(decision: .deny(reason: reason), grant: nil)
        }
        guard needsScope else {
            return Authorization(decision: .allow(role: canonicalRole(candidates[0], snapshot)), grant: candidates[0])
        }
        let scoped = candidates.filter { ($0.scope ?? "").isEmpty == false }
        guard let first = scoped.first else {
            return Authorization(decision: .deny(reason: "'\(cmdlet.name)' requires a scoped elevation (a tenant); "
                                                 + "request one with the Lockbox"), grant: nil)
        }
        let tenants = Set(scoped.compactMap(\.scope))
        if tenants.count > 1 {
            return Authorization(decision: .deny(reason: "'\(cmdlet.name)' is permitted in several tenants "
                                                 + "(\(tenants.sorted().joined(separator: ", "))); "
                                                 + "the tenant cannot be chosen on the command line"), grant: nil)
        }
        return Authorization(decision: .allow(role: canonicalRole(first, snapshot)), grant: first)
    }

    /// True when some active grant's role lists the cmdlet at all, whatever
    /// its parameters; used to refuse hidden cmdlets before binding.
    public static func isListed(cmdlet: CmdletDefinition, claim: AccessClaim, snapshot: PolicySnapshot) -> Bool {
        claim.grants.contains { grant in
            grant.isActive(at: claim.issuedAt) && snapshot.role(named: grant.role)?.allows(cmdlet: cmdlet.name) == true
        }
    }

    static func canonicalRole(_ grant: RoleGrant, _ snapshot: PolicySnapshot) -> String {
        snapshot.role(named: grant.role)?.name ?? grant.role
    }

    static func notPermitted(_ cmdlet: CmdletDefinition, _ claim: AccessClaim) -> String {
        var roles: [String] = []
        for grant in claim.grants where !roles.contains(grant.role) { roles.append(grant.role) }
        let held = roles.isEmpty ? "none" : roles.map { Display.clip($0) }.joined(separator: ", ")
        return "'\(cmdlet.name)' is not permitted by your roles (\(held))."
    }

    /// The cmdlets the claim may run right now, for `Get-Command`/`Get-Help`.
    /// A cmdlet that needs a scope is listed only when a scoped grant allows it.
    public static func visibleCmdlets(claim: AccessClaim, snapshot: PolicySnapshot) -> [CmdletDefinition] {
        snapshot.cmdlets.filter {
            authorize(cmdlet: $0, parameters: [], claim: claim, snapshot: snapshot).decision.isAllowed
        }
    }
}
