#if os(Linux)
import Glibc
import GatehouseCore

/// The unprivileged account the network side becomes: its uid and primary
/// gid, and no supplementary group but that one.
public struct SandboxAccount: Equatable, Sendable {
    public let name: String
    public let uid: uid_t
    public let gid: gid_t

    /// An account the caller has already resolved.
    public init(name: String, uid: uid_t, gid: gid_t) {
        self.name = name
        self.uid = uid
        self.gid = gid
    }

    /// Looks `name` up in `AccountDatabase` (`getpwnam_r(3)`, which a PAM
    /// module on another thread of the monitor cannot disturb).
    public init(named name: String) throws(SandboxError) {
        let found: (uid: UInt32, gid: UInt32)?
        do throws(Errno) {
            found = try AccountDatabase.account(named: name)
        } catch {
            throw .systemCall("getpwnam_r(\(name))", error)
        }
        guard let found else { throw .unknownAccount(name) }
        self.init(name: name, uid: found.uid, gid: found.gid)
    }
}
#endif
