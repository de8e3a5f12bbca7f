import GatehouseCore
import Synchronization

/// Everything a Lockbox decision is judged by, from one load: the directory
/// (baseline roles, managers, tenants) and the `lockbox.yaml` rules with
/// their notification hook. A reload replaces the whole value, never a part.
public struct LockboxRules: Sendable {
    public let directory: BaselineRoleSource
    public let policy: LockboxPolicy
    public let notifier: LockboxNotifier?

    public init(directory: BaselineRoleSource, policy: LockboxPolicy, notifier: LockboxNotifier?) {
        self.directory = directory
        self.policy = policy
        self.notifier = notifier
    }
}

/// Where a Lockbox gets its rules. Each operation asks once and judges
/// everything by that one answer, so a reload never shows it new rules with
/// an old directory. The Gateway answers from its policy snapshot, so a
/// command and the Lockbox see the same load.
public protocol LockboxRulesSource: Sendable {
    func currentRules() -> LockboxRules
}

/// Rules that are not part of a larger snapshot: the offline tools and
/// tests. A reload (as of a lowered `maxDuration`) replaces them here, and
/// every request from then on is judged by the new ones; requests already
/// filed or granted keep what they were approved for.
public final class ReplaceableLockboxRules: LockboxRulesSource {
    private let rules: Mutex<LockboxRules>
    public init(_ rules: LockboxRules) { self.rules = Mutex(rules) }
    public func currentRules() -> LockboxRules { rules.withLock { $0 } }
    /// New lockbox.yaml rules over the same directory, in one store.
    public func replace(policy: LockboxPolicy, notifier: LockboxNotifier?) {
        rules.withLock { $0 = LockboxRules(directory: $0.directory, policy: policy, notifier: notifier) }
    }
}

extension LockboxRules {
    /// The directory's approval facts; nil when only baseline roles are known.
    var lockboxDirectory: LockboxDirectory? { directory as? LockboxDirectory }
}
