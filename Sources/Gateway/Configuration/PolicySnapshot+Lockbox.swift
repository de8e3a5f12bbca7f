import CmdletPolicy
import Lockbox

extension PolicySnapshot {
    /// The roles as the Lockbox sees them (name, `maxDuration`, where
    /// declared): the gateway loads both files and hands these over, so the
    /// Lockbox does not depend on the cmdlet policy model.
    public var lockboxRoles: [PolicyRoleFacts] {
        roles.map { PolicyRoleFacts(name: $0.name, maxDurationSeconds: $0.maxDurationSeconds, file: $0.file, line: $0.line) }
    }
}
