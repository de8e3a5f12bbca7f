import CmdletPolicy
import GatehouseCore

/// Everything a template placeholder can be replaced with.
struct TemplateValues {
    let claim: AccessClaim
    let grant: RoleGrant
    let context: ExecutionContext
    let parameters: [BoundParameter]

    func value(of variable: ContextVariable) -> String {
        switch variable {
        case .user: return claim.user.rawValue
        case .session: return claim.session.rawValue
        case .scope: return grant.scope ?? ""
        case .node: return context.node
        case .stateDir: return context.stateDir
        }
    }

    func parameter(_ name: String) -> ParameterValue? {
        parameters.first { $0.name == name }?.value
    }
}

/// Expands a backend template by concatenation only: each element becomes
/// exactly one argv string, values are never split, re-parsed or globbed.
/// A `when:` group of a list parameter is emitted once per list item.
enum TemplateExpander {
    static func expand(_ backend: BackendTemplate, values: TemplateValues) -> (argv: [String], environment: [String: String]) {
        var argv = [backend.executable]
        for element in backend.argv {
            switch element {
            case .single(let template):
                argv.append(render(template, values))
            case .group(let when, let items):
                guard let value = values.parameter(when) else { continue }
                // A list repeats its group once per item, in the typed order,
                // so every item is its own argv element(s): never joined.
                for item in value.items {
                    for template in items { argv.append(render(template, values, item: (when, item))) }
                }
            }
        }
        var environment: [String: String] = [:]
        for (name, template) in backend.environment { environment[name] = render(template, values) }
        if let account = backend.runAs { argv = account.argvPrefix + argv }
        return (argv, environment)
    }

    static func render(_ template: TemplateString, _ values: TemplateValues,
                       item: (name: String, value: ParameterValue)? = nil) -> String {
        var out = ""
        for segment in template.segments {
            switch segment {
            case .literal(let s): out += s
            case .context(let c): out += values.value(of: c)
            // Load-time checks guarantee the parameter is bound here (mandatory
            // or inside its own `when:` group); an absent one renders empty.
            case .parameter(let name):
                if let item, item.name == name { out += item.value.argumentText; continue }
                out += values.parameter(name)?.argumentText ?? ""
            }
        }
        return out
    }
}
