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
        let lock = try lockFile(path + ".lock")
        let result = Result { () throws(OathUsersFileError) in
            try applyLocked(change, user: user, secret: secret, path: path, directory: directory)
        }
        // Closing the lock file's descriptor releases the lock.
        _ = try? lock.close()
        try result.get()
    }

    private static func applyLocked(_ change: Change, user: UserName, secret: borrowing SecretBytes, path: String,
                                    directory: String) throws(OathUsersFileError) {
        var old = try readFile(path, extra: 128)
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
        let isEntryForUser: Bool
    }

    /// Splits `bytes` into lines and marks the user's entries: a line whose
    /// second whitespace-separated field is the user name, unless it is a
    /// comment (`#`) — the way pam_oath's parser reads the file.
    static func lines(_ bytes: UnsafeRawBufferPointer, user: [UInt8]) -> [Line] {
        var result: [Line] = []
        var start = 0
        while start < bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != 0x0a { end += 1 }
            let next = end < bytes.count ? end + 1 : end
            var fields: [Range<Int>] = []
            var i = start
            while i < end && fields.count < 2 {
                while i < end && (bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0d) { i += 1 }
                let fieldStart = i
                while i < end && !(bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0d) { i += 1 }
                if i > fieldStart { fields.append(fieldStart..<i) }
            }
            let isComment = fields.first.map { bytes[$0.lowerBound] == 0x23 } ?? true
            let matches = !isComment && fields.count == 2 && fields[1].count == user.count
                && zip(bytes[fields[1]], user).allSatisfy { $0 == $1 }
            result.append(Line(range: start..<next, isEntryForUser: matches))
            start = next
        }
        return result
    }

    /// Takes pam_oath's own lock: liboath holds an fcntl write lock on
    /// `<usersfile>.lock` while it rewrites the file after a login, and
    /// concurrent `gatehouse mfa` runs take the same one. A lock file that
    /// was unlinked or replaced while we waited is not the lock any more, so
    /// the lock is retaken until the locked file is the one at the path.
    private static func lockFile(_ lockPath: String) throws(OathUsersFileError) -> OwnedFileDescriptor {
        while true {
            let fd = try open(lockPath, flags: O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, permissions: 0o600,
                              failure: "cannot open the lock file")
            var request = flock()
            request.l_type = Int16(F_WRLCK)
            request.l_whence = Int16(SEEK_SET)
            request.l_start = 0
            request.l_len = 0
            while fcntl(fd.rawValue, F_SETLKW, &request) != 0 {
                guard errno == EINTR else { throw OathUsersFileError.system("cannot lock", lockPath, errno) }
            }
            var held = stat(), current = stat()
            if fstat(fd.rawValue, &held) == 0, stat(lockPath, &current) == 0,
               held.st_dev == current.st_dev, held.st_ino == current.st_ino {
                return fd
            }
            _ = try? fd.close()
        }
    }

    /// A users file as read: its bytes in wiped storage, and its owner
    /// (nil when there is no file yet).
    struct Contents: ~Copyable {
        var contents: SecretBytes
        let owner: (uid_t, gid_t)?
    }

    /// The file's bytes, with room for `extra` more.
    private static func readFile(_ path: String, extra: Int) throws(OathUsersFileError) -> Contents {
        let raw = Glibc.open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        if raw < 0 {
            if errno == ENOENT { return Contents(contents: SecretBytes(capacity: extra), owner: nil) }
            throw OathUsersFileError.system("cannot open", path, errno)
        }
        let fd = OwnedFileDescriptor(adopting: raw)
        var info = stat()
        guard fstat(fd.rawValue, &info) == 0 else { throw OathUsersFileError.system("cannot stat", path, errno) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw OathUsersFileError("\(path) is not a regular file") }
        var contents = SecretBytes(capacity: Int(info.st_size) + extra)
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
        defer {
            explicit_bzero(chunk.baseAddress!, chunk.count)
            chunk.deallocate()
        }
        while true {
            let n: Int
            do { n = try fd.read(into: chunk) } catch { throw OathUsersFileError.system("cannot read", path, error.rawValue) }
            if n == 0 { break }
            // Under the lock the file does not change; if it grew anyway, stop
            // rather than write a truncated copy back.
            guard contents.count + n <= Int(info.st_size) else {
                throw OathUsersFileError("\(path) changed while it was read; try again")
            }
            contents.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[0..<n]))
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
