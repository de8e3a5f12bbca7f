// pam_oath's users file, edited for `gatehouse mfa enroll/reset`: one user's
// entry is added or replaced; every other line (other users' entries with
// pam_oath's replay-protection fields, comments, blank lines) is copied byte
// for byte.
import Foundation
import GatehouseCore

struct OathUsersFileError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }

    static func system(_ what: String, _ path: String, _ code: Int32) -> OathUsersFileError {
        OathUsersFileError("\(what) \(path): \(String(cString: strerror(code)))")
    }
}

enum OathUsersFile {
    enum Change {
        /// Add an entry; refused when the user has one.
        case enroll
        /// Replace the user's entries with one; refused when the user has none.
        case reset
    }

    /// An entry's type: RFC 6238 TOTP, 30 s steps, 6 digits (the PAM stack's
    /// `digits=6`), HMAC-SHA1 — what authenticator apps default to.
    static let tokenType = "HOTP/T30"
    static let secretLength = 20

    /// Applies `change` for `user` with `secret` under the lock pam_oath
    /// itself takes, and commits it before returning: temp file (0600, the
    /// old file's owner) in the same directory, fsync, rename, fsync of the
    /// directory.
    static func apply(_ change: Change, user: UserName, secret: borrowing SecretBytes, path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent.isEmpty
            ? "." : (path as NSString).deletingLastPathComponent
        do {
            let lock = try UsersFileLock(usersFile: path)
            defer { _ = lock }
            try applyLocked(change, user: user, secret: secret, path: path, directory: directory)
        }
        try confirm(user: user, secret: secret, path: path)
    }

    /// liboath opens and reads the users file before it takes the lock, and
    /// after a successful login rewrites the file from that earlier read. A
    /// login of any user that raced this change (waiting for our lock, or
    /// about to take it) can therefore put the old contents back: an
    /// enrolment lost, or a reset undone. Such a login finishes within
    /// milliseconds of our unlock, so after a pause the file is read again
    /// under the lock, and the change is reported as made only if the user's
    /// one entry still holds this secret.
    private static func confirm(user: UserName, secret: borrowing SecretBytes, path: String) throws {
        usleep(300_000)
        var current: Contents
        do {
            let lock = try UsersFileLock(usersFile: path)
            defer { _ = lock }
            current = try readFile(path)
        }
        defer { current.contents.removeAll() }
        var expected = hexEntry(user: user, secret: secret)
        defer { expected.removeAll() }
        let intact = current.contents.withUnsafeBytes { bytes in
            let entries = Self.lines(bytes, user: Array(user.rawValue.utf8)).filter(\.isEntryForUser)
            guard entries.count == 1, entries[0].fields.count >= 4 else { return false }
            let hex = bytes[entries[0].fields[3]]
            return expected.withUnsafeBytes { line in
                // The entry is "TYPE USER - HEX\n": its hex is the last field.
                let mine = line[(line.count - 1 - 2 * secretLength)..<(line.count - 1)]
                return hex.count == mine.count && zip(hex, mine).allSatisfy { $0 == $1 }
            }
        }
        guard intact else {
            throw OathUsersFileError("\(path) was rewritten after this change (by a login that read it before, "
                                     + "as pam_oath reads before it locks, or by another enrolment of '\(user)'), "
                                     + "so this secret is not the one in effect; run the command again")
        }
    }

    /// The users-file line for `user` with `secret`, newline included.
    private static func hexEntry(user: UserName, secret: borrowing SecretBytes) -> SecretBytes {
        var entry = SecretBytes(capacity: tokenType.utf8.count + user.rawValue.utf8.count + 2 * secretLength + 8)
        append(tokenType + " " + user.rawValue + " - ", to: &entry)
        secret.withUnsafeBytes { bytes in
            let hex = Array("0123456789abcdef".utf8)
            for b in bytes {
                entry.append(hex[Int(b >> 4)])
                entry.append(hex[Int(b & 15)])
            }
        }
        entry.append(0x0a)
        return entry
    }

    private static func applyLocked(_ change: Change, user: UserName, secret: borrowing SecretBytes, path: String,
                                    directory: String) throws(OathUsersFileError) {
        var old = try readFile(path)
        let lines = old.contents.withUnsafeBytes { Self.lines($0, user: Array(user.rawValue.utf8)) }
        let matches = lines.filter(\.isEntryForUser).count
        switch change {
        case .enroll where matches > 0:
            throw OathUsersFileError("'\(user)' already has a TOTP entry in \(path); "
                                     + "use 'gatehouse mfa reset \(user)' to replace it")
        case .reset where matches == 0:
            throw OathUsersFileError("'\(user)' has no TOTP entry in \(path) (nothing to reset); "
                                     + "use 'gatehouse mfa enroll \(user)' to add one")
        default: break
        }

        var entry = hexEntry(user: user, secret: secret)
        defer { entry.removeAll() }

        let temp = path + ".tmp-gatehouse-\(getpid())"
        // Under the lock, a temp file of this name is a crashed run's leftover.
        unlink(temp)
        let out = try open(temp, flags: O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, permissions: 0o600,
                           failure: "cannot create")
        var committed = false
        defer { if !committed { unlink(temp) } }
        if let owner = old.owner, owner != (geteuid(), getegid()), fchown(out.rawValue, owner.0, owner.1) != 0 {
            throw OathUsersFileError.system("cannot give \(temp) the owner of", path, errno)
        }
        do throws(Errno) {
            // The umask may have narrowed the mode; pam_oath needs neither more nor less.
            try out.setPermissions(0o600)
            try old.contents.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) throws(Errno) in
                var replaced = false
                for line in lines {
                    if !line.isEntryForUser {
                        try out.writeAll(UnsafeRawBufferPointer(rebasing: bytes[line.range]))
                        continue
                    }
                    // A reset: the first of the user's lines becomes the new
                    // entry, any further ones (pam_oath allows several) go.
                    if !replaced {
                        try entry.withUnsafeBytes { (e: UnsafeRawBufferPointer) throws(Errno) in try out.writeAll(e) }
                        replaced = true
                    }
                }
                if !replaced {
                    if let last = bytes.last, last != 0x0a { try out.writeAll([0x0a]) }
                    try entry.withUnsafeBytes { (e: UnsafeRawBufferPointer) throws(Errno) in try out.writeAll(e) }
                }
            }
            try out.synchronize()
            try out.close()
        } catch {
            throw OathUsersFileError.system("cannot write", temp, error.rawValue)
        }
        old.contents.removeAll()
        guard rename(temp, path) == 0 else { throw OathUsersFileError.system("cannot rename \(temp) to", path, errno) }
        committed = true
        // The rename is durable only once the directory is synced.
        guard let dir = try? OwnedFileDescriptor(opening: directory, flags: O_RDONLY | O_DIRECTORY | O_CLOEXEC) else {
            throw OathUsersFileError.system("cannot open", directory, errno)
        }
        do { try dir.synchronize() } catch { throw OathUsersFileError.system("cannot fsync", directory, error.rawValue) }
    }

    struct Line {
        /// The line with its newline, if it has one.
        let range: Range<Int>
        /// The first four whitespace-separated fields (type, user, PIN, secret).
        let fields: [Range<Int>]
        let isEntryForUser: Bool
    }

    /// Splits `bytes` into lines and marks the user's entries: a line whose
    /// second whitespace-separated field (space, tab; liboath writes tabs) is
    /// the user name. Comments (`#`) and blank lines are never entries;
    /// liboath keeps both when it rewrites the file.
    static func lines(_ bytes: UnsafeRawBufferPointer, user: [UInt8]) -> [Line] {
        var result: [Line] = []
        var start = 0
        while start < bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != 0x0a { end += 1 }
            let next = end < bytes.count ? end + 1 : end
            var fields: [Range<Int>] = []
            var i = start
            while i < end && fields.count < 4 {
                while i < end && (bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0d) { i += 1 }
                let fieldStart = i
                while i < end && !(bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0d) { i += 1 }
                if i > fieldStart { fields.append(fieldStart..<i) }
            }
            let isComment = fields.first.map { bytes[$0.lowerBound] == 0x23 } ?? true
            let matches = !isComment && fields.count >= 2 && fields[1].count == user.count
                && zip(bytes[fields[1]], user).allSatisfy { $0 == $1 }
            result.append(Line(range: start..<next, fields: fields, isEntryForUser: matches))
            start = next
        }
        return result
    }

    /// A users file as read: its bytes in wiped storage, and its owner
    /// (nil when there is no file yet).
    struct Contents: ~Copyable {
        var contents: SecretBytes
        let owner: (uid_t, gid_t)?
    }

    /// The file's bytes and owner.
    private static func readFile(_ path: String) throws(OathUsersFileError) -> Contents {
        let raw = Glibc.open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        if raw < 0 {
            if errno == ENOENT { return Contents(contents: SecretBytes(capacity: 0), owner: nil) }
            throw OathUsersFileError.system("cannot open", path, errno)
        }
        let fd = OwnedFileDescriptor(adopting: raw)
        var info = stat()
        guard fstat(fd.rawValue, &info) == 0 else { throw OathUsersFileError.system("cannot stat", path, errno) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw OathUsersFileError("\(path) is not a regular file") }
        var contents = SecretBytes(capacity: Int(info.st_size))
        // Under the lock the file does not change; if it grew anyway, stop
        // rather than write a truncated copy back.
        let complete: Bool
        do { complete = try fd.readToEnd(into: &contents) } catch { throw OathUsersFileError.system("cannot read", path, error.rawValue) }
        guard complete, contents.count <= Int(info.st_size) else {
            throw OathUsersFileError("\(path) changed while it was read; try again")
        }
        return Contents(contents: contents, owner: (info.st_uid, info.st_gid))
    }

    private static func open(_ path: String, flags: Int32, permissions: mode_t = 0,
                             failure: String) throws(OathUsersFileError) -> OwnedFileDescriptor {
        do {
            return try OwnedFileDescriptor(opening: path, flags: flags, permissions: permissions)
        } catch {
            throw OathUsersFileError.system(failure, path, error.rawValue)
        }
    }

    private static func append(_ text: String, to secret: inout SecretBytes) {
        var text = text
        text.withUTF8 { _ = secret.append(contentsOf: UnsafeRawBufferPointer($0)) }
    }
}

/// pam_oath's lock on its users file, taken the way liboath takes it: the
/// lock is `<usersfile>.lock` created exclusively (O_CREAT|O_EXCL) and
/// unlinked when done, with an fcntl write lock on it as well (what older
/// liboath releases wait on). Debian's liboath 2.6.7-3.1+deb12u1 does not
/// wait for an existing lock file: the login that finds one fails. So the
/// lock is held only for the read-modify-rename, terminating signals are
/// blocked meanwhile (a lock file left behind would fail every login), and
/// the file is unlinked in `deinit` on every path out.
struct UsersFileLock: ~Copyable {
    private let descriptor: OwnedFileDescriptor
    private let path: String
    private var savedSignals = sigset_t()

    /// How long to wait for a lock another process holds.
    static let patience: Double = 10

    init(usersFile: String) throws(OathUsersFileError) {
        path = usersFile + ".lock"
        var blocked = sigset_t()
        sigemptyset(&blocked)
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] { sigaddset(&blocked, signal) }
        pthread_sigmask(SIG_BLOCK, &blocked, &savedSignals)
        let deadline = Date().addingTimeInterval(Self.patience)
        // A lock file another process holds is waited for by its removal,
        // which inotify reports: no retry on an interval.
        let directory = (path as NSString).deletingLastPathComponent
        let watch = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        defer { if watch >= 0 { Glibc.close(watch) } }
        if watch >= 0 {
            _ = inotify_add_watch(watch, directory.isEmpty ? "." : directory, UInt32(IN_DELETE | IN_MOVED_FROM))
        }
        var raw: Int32 = -1
        while true {
            raw = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if raw >= 0 { break }
            let code = errno
            if code == EINTR { continue }
            let left = deadline.timeIntervalSinceNow
            if code != EEXIST || left <= 0 || watch < 0 {
                pthread_sigmask(SIG_SETMASK, &savedSignals, nil)
                if code != EEXIST { throw OathUsersFileError.system("cannot create the lock file", path, code) }
                throw OathUsersFileError(Self.heldTooLong(path))
            }
            var ready = pollfd(fd: watch, events: Int16(POLLIN), revents: 0)
            _ = poll(&ready, 1, Int32((left * 1000).rounded(.up)))
            var events = [UInt8](repeating: 0, count: 4096)
            while read(watch, &events, events.count) > 0 {}
        }
        descriptor = OwnedFileDescriptor(adopting: raw)
        var request = flock()
        request.l_type = Int16(F_WRLCK)
        request.l_whence = Int16(SEEK_SET)
        while fcntl(descriptor.rawValue, F_SETLKW, &request) != 0 && errno == EINTR {}
    }

    deinit {
        unlink(path)
        // Signals blocked meanwhile are delivered now: the lock file is gone
        // already, and the descriptor (with its fcntl lock) closes right
        // after this, or with the process.
        var saved = savedSignals
        pthread_sigmask(SIG_SETMASK, &saved, nil)
    }

    /// Why the lock file is still there: a holder that is alive (a login,
    /// another enrolment) keeps an fcntl lock on it; nobody does on one left
    /// behind by a crash, which fails every TOTP login until it is removed.
    private static func heldTooLong(_ path: String) -> String {
        let fd = Glibc.open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        defer { if fd >= 0 { close(fd) } }
        var probe = flock()
        probe.l_type = Int16(F_WRLCK)
        probe.l_whence = Int16(SEEK_SET)
        if fd >= 0, fcntl(fd, F_GETLK, &probe) == 0, probe.l_type == Int16(F_UNLCK) {
            return "\(path) exists but no process holds it: it was left behind (a crash?), and pam_oath "
                + "refuses every TOTP login while it is there; remove it once no login or enrolment is running"
        }
        return "\(path) has been held for more than \(Int(patience)) s by another process (a login or "
            + "another enrolment); try again"
    }
}
