#if os(Linux)
import CSandbox
import Glibc
import GatehouseCore

/// Turns a root process into `account` with no capability left, for good.
///
/// Must be called while the process has one thread. The id changes
/// (`setgroups`, `setresgid`, `setresuid`) reach every thread through
/// glibc's setxid broadcast, but the capability sets, the bounding set,
/// the ambient set and keep-caps are per thread in Linux: a thread that
/// existed before would keep its bounding set and inheritable set. So the
/// drop counts `/proc/self/task` first and refuses with `.otherThreads`
/// rather than leave a half-dropped thread. Threads started afterwards
/// inherit the dropped state.
///
/// The order differs from the obvious one for a reason: `PR_CAPBSET_DROP`
/// needs `CAP_SETPCAP`, which `setresuid` to a non-root uid takes away, so
/// the bounding set goes first, while the process is still root.
public enum PrivilegeDrop {
    /// Drops to `account`, then verifies the result from the kernel's side;
    /// any failure throws and the caller must exit, not go on half-dropped.
    public static func drop(to account: SandboxAccount) throws(SandboxError) {
        guard account.uid != 0, account.gid != 0 else { throw .privilegedAccount(account.name) }
        let threads = try threadCount()
        guard threads == 1 else { throw .otherThreads(count: threads) }

        let lastCapability = try self.lastCapability()
        for capability in 0...lastCapability {
            try prctl("PR_CAPBSET_DROP", PR_CAPBSET_DROP, UInt(capability))
        }
        // Off already unless someone set it: with it on, setresuid would keep
        // the permitted set.
        try prctl("PR_SET_KEEPCAPS", PR_SET_KEEPCAPS, 0)

        var groups = [account.gid]
        try check("setgroups", setgroups(1, &groups))
        try check("setresgid", gh_setresgid(account.gid, account.gid, account.gid))
        try check("setresuid", gh_setresuid(account.uid, account.uid, account.uid))

        // setresuid cleared the effective and permitted sets; capset(2)
        // clears the inheritable one too, and the ambient set goes with
        // PR_CAP_AMBIENT_CLEAR_ALL.
        try check("capset", gh_capset_clear())
        try prctl("PR_CAP_AMBIENT_CLEAR_ALL", PR_CAP_AMBIENT, UInt(PR_CAP_AMBIENT_CLEAR_ALL))

        try verify(account, lastCapability: lastCapability)
    }

    /// Reads back what the kernel now holds for this thread: every uid and
    /// gid the target's, its gid the only group, no capability in any set,
    /// an empty bounding set, and `setuid(0)`/`setgid(0)` refused.
    static func verify(_ account: SandboxAccount, lastCapability: Int) throws(SandboxError) {
        var ruid: uid_t = 0, euid: uid_t = 0, suid: uid_t = 0
        var rgid: gid_t = 0, egid: gid_t = 0, sgid: gid_t = 0
        try check("getresuid", gh_getresuid(&ruid, &euid, &suid))
        try check("getresgid", gh_getresgid(&rgid, &egid, &sgid))
        guard [ruid, euid, suid].allSatisfy({ $0 == account.uid }) else {
            throw .privilegeRemains("uids \(ruid) \(euid) \(suid), wanted \(account.uid)")
        }
        guard [rgid, egid, sgid].allSatisfy({ $0 == account.gid }) else {
            throw .privilegeRemains("gids \(rgid) \(egid) \(sgid), wanted \(account.gid)")
        }
        var groups = [gid_t](repeating: 0, count: 64)
        let count = getgroups(Int32(groups.count), &groups)
        guard count >= 0 else { throw .systemCall("getgroups", Errno(rawValue: errno)) }
        guard Array(groups.prefix(Int(count))) == [account.gid] else {
            throw .privilegeRemains("supplementary groups \(groups.prefix(Int(count)))")
        }
        guard setuid(0) == -1 else { throw .privilegeRemains("setuid(0) succeeded") }
        guard setgid(0) == -1 else { throw .privilegeRemains("setgid(0) succeeded") }

        var effective: UInt64 = 0, permitted: UInt64 = 0, inheritable: UInt64 = 0
        try check("capget", gh_capget(&effective, &permitted, &inheritable))
        guard effective == 0, permitted == 0, inheritable == 0 else {
            throw .privilegeRemains("capabilities effective \(effective) permitted \(permitted) inheritable \(inheritable)")
        }
        for capability in 0...lastCapability {
            let held = gh_prctl(PR_CAPBSET_READ, UInt(capability), 0, 0, 0)
            guard held == 0 else { throw .privilegeRemains("capability \(capability) in the bounding set") }
        }
        let keep = gh_prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0)
        guard keep == 0 else { throw .privilegeRemains("PR_GET_KEEPCAPS is \(keep)") }
    }

    /// `/proc/sys/kernel/cap_last_cap`: the highest capability this kernel
    /// knows, which may be past the one the headers were built with.
    static func lastCapability() throws(SandboxError) -> Int {
        let text = try ProcFile.read("/proc/sys/kernel/cap_last_cap")
        guard let last = Int(text.trimmingWhitespace()), (0..<64).contains(last) else {
            throw .privilegeRemains("unreadable /proc/sys/kernel/cap_last_cap: \(text)")
        }
        return last
    }

    /// Entries of `/proc/self/task`: this process's threads now.
    static func threadCount() throws(SandboxError) -> Int {
        guard let directory = opendir("/proc/self/task") else {
            throw .systemCall("opendir(/proc/self/task)", Errno(rawValue: errno))
        }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let isDot = withUnsafeBytes(of: entry.pointee.d_name) { $0.first == UInt8(ascii: ".") }
            if !isDot { count += 1 }
        }
        return count
    }

    /// `prctl(2)` of `option` with one argument; a failure throws naming `name`.
    static func prctl(_ name: String, _ option: Int32, _ argument: UInt) throws(SandboxError) {
        try check(name, gh_prctl(option, argument, 0, 0, 0))
    }

    /// A call that returns -1 with `errno` on failure becomes a thrown error naming it.
    static func check(_ call: String, _ rc: Int32) throws(SandboxError) {
        if rc != 0 { throw .systemCall(call, Errno(rawValue: errno)) }
    }
}
#endif
