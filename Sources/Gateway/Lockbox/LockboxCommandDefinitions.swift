import CmdletPolicy
import PolicyFormat

/// The Lockbox commands as cmdlet definitions. Limits that depend on the
/// role (its longest duration, its ticket pattern) are the Lockbox's to
/// check when the request is filed; what is the same for every request is
/// declared here, so the Binder refuses it with its usual messages.
extension LockboxCommands.Command {
    var definition: CmdletDefinition {
        switch self {
        case .newRequest:
            return Self.define("New-LockboxRequest",
                               "Asks for a role in one tenant for a while; your manager (and the tenant) approve.",
                               [Self.role, Self.scope, Self.duration,
                                Self.text("Reason", mandatory: true, "Why you need it; one line.", maxLength: 2000),
                                Self.text("Ticket", mandatory: false, "The change or incident ticket, when the role asks for one.")],
                               example: "New-LockboxRequest -Role MailboxAdmin -Scope contoso -Duration 2h -Reason 'quota fix'")
        case .getRequest:
            return Self.define("Get-LockboxRequest",
                               "Lists your requests, those waiting for you (-Pending), or one request (-Id).",
                               [Self.id(mandatory: false),
                                ParameterDefinition(name: "Pending", type: .switch, mandatory: false, position: nil,
                                                    description: "Only the requests waiting for your approval.",
                                                    pattern: nil, allowedValues: nil, minimum: nil, maximum: nil,
                                                    maxLength: 1)],
                               example: "Get-LockboxRequest -Pending")
        case .approve:
            return Self.define("Approve-LockboxRequest", "Approves a request at your stage (manager or tenant approver).",
                               [Self.id(), Self.text("Comment", mandatory: false, "Kept with the approval.", maxLength: 2000)],
                               example: "Approve-LockboxRequest -Id 12 -Comment 'ok'")
        case .deny:
            return Self.define("Deny-LockboxRequest", "Denies a request at your stage.",
                               [Self.id(), Self.text("Reason", mandatory: false, "Why.", maxLength: 2000)],
                               example: "Deny-LockboxRequest -Id 12 -Reason 'use the runbook'")
        case .revoke:
            return Self.define("Revoke-LockboxRequest", "Withdraws a request or ends its running grant (approvers, admins).",
                               [Self.id(), Self.text("Reason", mandatory: false, "Why.", maxLength: 2000)],
                               example: "Revoke-LockboxRequest -Id 12 -Reason 'done'")
        case .cancel:
            return Self.define("Cancel-LockboxRequest", "Withdraws your own request.", [Self.id()],
                               example: "Cancel-LockboxRequest -Id 12")
        case .getCredential:
            return Self.define("Get-LockboxCredential",
                               "Shows the one-time credential of your approved request, once, on this terminal only.",
                               [Self.id()], example: "Get-LockboxCredential -Id 12")
        case .exitElevation:
            return Self.define("Exit-Elevation", "Ends the elevations you hold in this session.", [],
                               example: "Exit-Elevation")
        }
    }

    private static func define(_ name: String, _ synopsis: String, _ parameters: [ParameterDefinition],
                               example: String) -> CmdletDefinition {
        CmdletDefinition(name: name, synopsis: synopsis,
                         description: "Answered by the gateway's Lockbox for every user; who may act on a request "
                             + "is decided from the directory (requester, manager, tenant approver, admin).",
                         examples: [.init(command: example, description: nil)], parameters: parameters,
                         file: "Gateway/Lockbox")
    }

    private static func id(mandatory: Bool = true) -> ParameterDefinition {
        ParameterDefinition(name: "Id", type: .int, mandatory: mandatory, position: 0, description: "The request number.",
                            pattern: nil, allowedValues: nil, minimum: 1, maximum: nil, maxLength: 20)
    }

    private static func text(_ name: String, mandatory: Bool, _ description: String,
                             maxLength: Int = ParameterDefinition.defaultMaxLength) -> ParameterDefinition {
        ParameterDefinition(name: name, type: .string, mandatory: mandatory, position: nil, description: description,
                            pattern: nil, allowedValues: nil, minimum: nil, maximum: nil, maxLength: maxLength)
    }

    /// The shapes of a role name and a tenant name as the policy and the
    /// directory accept them (`RoleParser.isRoleName`, `DirectoryModel.isTenantName`).
    private static let role = ParameterDefinition(
        name: "Role", type: .string, mandatory: true, position: nil, description: "The role to hold.",
        pattern: try! AnchoredPattern("[A-Za-z][A-Za-z0-9._-]{0,63}"), allowedValues: nil, minimum: nil, maximum: nil,
        maxLength: 64)

    private static let scope = ParameterDefinition(
        name: "Scope", type: .string, mandatory: true, position: nil, description: "The tenant the role is limited to.",
        pattern: try! AnchoredPattern("[A-Za-z0-9][A-Za-z0-9._-]{0,62}"), allowedValues: nil, minimum: nil,
        maximum: nil, maxLength: 63)

    private static let duration = ParameterDefinition(
        name: "Duration", type: .duration, mandatory: true, position: nil,
        description: "How long the grant lasts once redeemed, e.g. 30m or 2h; at most the role's limit.",
        pattern: nil, allowedValues: nil, minimum: 1, maximum: nil, maxLength: 16)
}
