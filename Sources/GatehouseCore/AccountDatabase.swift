#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The local account database, read the one thread-safe way.
public enum AccountDatabase {
    /// Uid and primary gid of `name` through `getpwnam_r(3)`, or nil when no
    /// such account exists. Not `getpwnam`: its static buffer may be rewritten
    /// at the same moment by a PAM module on another thread. A lookup that
    /// fails (not a missing account) throws the error it returned.
    public static func account(named name: String) throws(Errno) -> (uid: UInt32, gid: UInt32)? {
        var size = sysconf(Int32(_SC_GETPW_R_SIZE_MAX))
        if size <= 0 { size = 1024 }
        while true {
            var entry = passwd()
            var result: UnsafeMutablePointer<passwd>?
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: size)
            defer { buffer.deallocate() }
            let rc = getpwnam_r(name, &entry, buffer, size, &result)
            if rc == EINTR { continue }
            // The entry did not fit (long gecos or shell fields): try a larger buffer.
            if rc == ERANGE && size < 1 << 20 {
                size *= 2
                continue
            }
            guard rc == 0 else { throw Errno(rawValue: rc) }
            guard result != nil else { return nil }
            return (UInt32(entry.pw_uid), UInt32(entry.pw_gid))
        }
    }
}
