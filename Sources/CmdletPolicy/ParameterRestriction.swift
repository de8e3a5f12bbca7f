import PolicyFormat

/// A role's extra condition on one parameter of one cmdlet.
///
/// A restriction is checked *in addition to* the cmdlet's own definition, so
/// it can only narrow what the definition allows; the loader also refuses a
/// restriction that names values the definition would never accept, so an
/// admin never reads a policy that looks wider than it is. Roles never merge:
/// a value is allowed when one single role's restrictions all accept it.
public struct ParameterRestriction: Sendable {
    /// The parameter's declared name.
    public let parameter: String
    /// When set, the parameter may not be given at all under this role.
    public let forbidden: Bool
    public let pattern: AnchoredPattern?
    /// Declared spellings (ASCII case-insensitive comparison).
    public let allowedValues: [String]?
    /// Inclusive bounds in the parameter's unit (number, bytes, seconds).
    public let minimum: Int?
    public let maximum: Int?
    public let file: String
    public let line: Int

    /// nil when the value passes; otherwise a reason safe to show the user.
    public func violation(_ value: ParameterValue) -> String? {
        if forbidden { return "-\(parameter) may not be used" }
        for item in value.items {
            switch item {
            case .string(let s), .enumeration(let s):
                if let allowedValues, !allowedValues.contains(where: { ASCII.equalsIgnoringCase($0, s) }) {
                    return "-\(parameter) must be one of: \(allowedValues.joined(separator: ", "))"
                }
                if let pattern, !pattern.matches(s) {
                    return "-\(parameter) must match \(pattern.source)"
                }
            case .int(let n), .size(bytes: let n), .duration(seconds: let n):
                if let minimum, n < minimum { return "-\(parameter) must be at least \(describe(minimum, item))" }
                if let maximum, n > maximum { return "-\(parameter) must be at most \(describe(maximum, item))" }
            case .dateTime, .switchPresent, .list:
                break
            }
        }
        return nil
    }

    private func describe(_ n: Int, _ like: ParameterValue) -> String {
        switch like {
        case .size: return ByteSize.format(n)
        case .duration: return PolicyDuration.format(n)
        default: return String(n)
        }
    }
}
