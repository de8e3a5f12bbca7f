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

    /// Looks `name` up with `getpwnam_r(3)`, not `getpwnam`, whose static
    /// buffer a PAM module on another thread of the monitor may be
    /// rewriting. (CmdletPolicy's `SystemHostInspector` makes the same
    /// call; this target does not import the policy library, and the
    /// privilege graph keeps it that way.)
    public init(named name: String) throws(SandboxError) {
        var size = sysconf(Int32(_SC_GETPW_R_SIZE_MAX))
        if size <= 0 { size = 1024 }
        while true {
            var entry = passwd()
            var result: UnsafeMutablePointer<passwd>?
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: size)
            defer { buffer.deallocate() }
            let rc = getpwnam_r(name, &entry, buffer, size, &result)
            if rc == EINTR { continue }
            // The entry did not fit (long gecos or shell fields): a larger buffer.
            if rc == ERANGE && size < 1 << 20 {
                size *= 2
                continue
            }
            guard rc == 0 else { throw .systemCall("getpwnam_r(\(name))", Errno(rawValue: rc)) }
            guard result != nil else { throw .unknownAccount(name) }
            self.init(name: name, uid: entry.pw_uid, gid: entry.pw_gid)
            return
        }
    }
}
#endif
