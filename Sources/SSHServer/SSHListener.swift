import CLibSSH
import Foundation
import GatehouseCore
import Logging
import Synchronization

/// The listening socket and its `ssh_bind`: host key, algorithm policy, accept.
///
/// Threading: `accept()` is called from one accept thread. `close()` may be
/// called from any thread (for example a signal-handling thread) and makes a
/// blocked `accept()` throw `SSHError(.closed)`; the `ssh_bind` itself is freed
/// only when the listener goes away, so a concurrent `accept()` never touches
/// freed memory.
// unchecked: `bind` is used by the accept thread only; other threads touch just `closed` (a Mutex) and the fd.
public final class SSHListener: @unchecked Sendable {
    private let bind: SSHBind
    private let config: SSHServerConfig
    private let logger: Logger
    private let closed = Mutex(false)
    private let listenFD: Int32
    /// A descriptor (`/dev/null`) held so that `accept` still has a number
    /// when the table is full; -1 while given up. Accept thread only.
    private var reserve: Int32 = -1

    /// The port actually bound (differs from `config.port` when that was 0).
    public let boundPort: Int
    /// The host's public key, for known_hosts lines and fingerprints.
    public let hostPublicKey: SSHPublicKey

    /// Loads or creates the host key, applies the algorithm lists to the
    /// `ssh_bind` (`ssh_bind_options_set`) and listens (`ssh_bind_listen`).
    /// Throws `SSHError(.hostKey)` for a host key file readable by group or
    /// others, and `.configuration` for lists that cannot work together.
    /// Whatever was acquired before a throw is freed once, by its owner.
    public init(config: SSHServerConfig, logger: Logger) throws {
        try SSHListener.validate(config)
        self.config = config
        self.logger = logger

        let key = try config.hostKeyDescriptor.map(SSHListener.readHostKey)
            ?? SSHListener.loadOrCreateHostKey(config, logger: logger)
        let pub = try SSHListener.servablePublicKey(of: key, config)
        hostPublicKey = pub

        let bind = try SSHBind()
        // Ignore /etc/ssh/libssh_server_config: the policy is ours alone.
        var processConfig = false
        try bind.set(SSH_BIND_OPTIONS_PROCESS_CONFIG, &processConfig, "PROCESS_CONFIG")
        try bind.set(SSH_BIND_OPTIONS_BINDADDR, config.host, "BINDADDR")
        var port = UInt32(config.port)
        try bind.set(SSH_BIND_OPTIONS_BINDPORT, &port, "BINDPORT")
        let a = config.algorithms
        try bind.set(SSH_BIND_OPTIONS_KEY_EXCHANGE, a.keyExchange, "KEY_EXCHANGE")
        try bind.set(SSH_BIND_OPTIONS_CIPHERS_C_S, a.ciphers, "CIPHERS_C_S")
        try bind.set(SSH_BIND_OPTIONS_CIPHERS_S_C, a.ciphers, "CIPHERS_S_C")
        try bind.set(SSH_BIND_OPTIONS_HMAC_C_S, a.macs, "HMAC_C_S")
        try bind.set(SSH_BIND_OPTIONS_HMAC_S_C, a.macs, "HMAC_S_C")
        try bind.set(SSH_BIND_OPTIONS_HOSTKEY_ALGORITHMS, a.hostKeyAlgorithms, "HOSTKEY_ALGORITHMS")
        try bind.set(SSH_BIND_OPTIONS_PUBKEY_ACCEPTED_KEY_TYPES, a.publicKeyAcceptedTypes,
                     "PUBKEY_ACCEPTED_KEY_TYPES")
        try bind.importHostKey(key)
        if let socket = config.listeningSocket {
            bind.adopt(socket)
        } else {
            try bind.listen(config)
        }
        let fd = bind.fd
        listenFD = fd
        self.bind = bind
        boundPort = SSHListener.boundPort(of: fd) ?? config.port
        refillReserve()
        logger.info("ssh listener bound", metadata: [
            "address": "\(config.host):\(boundPort)",
            "hostkey": "\(pub.type) \(pub.fingerprintSHA256)",
        ])
    }

    /// Only a safety net: `close()` is what stops accepting; the `ssh_bind`
    /// is freed by its owner after this runs.
    deinit {
        close()
        if reserve >= 0 { _ = Glibc.close(reserve) }
    }

    /// What `accept(headroom:)` took from the queue.
    public enum Admission {
        case connection(SSHConnection)
        /// Accepted and closed at once, before the peer heard anything:
        /// fewer than `headroom` descriptors were free for its session.
        case outOfDescriptors(peer: String)
    }

    /// Accepts the next TCP connection itself (`accept4`, close-on-exec) and
    /// hands it to libssh (`ssh_bind_accept_fd`) only if `headroom` more
    /// descriptors can still be opened, so that a session is refused before
    /// key exchange rather than failing halfway through its login.
    ///
    /// A full table does not spin: Linux's accept takes its descriptor
    /// number before it waits, so it fails at once, client or not. The
    /// listener then gives up its reserve descriptor, and the next accept
    /// blocks as usual on the number it freed; the client that takes it is
    /// refused (`.outOfDescriptors`) and the reserve is reopened. Throws
    /// `.outOfDescriptors` only when there was no reserve to give up (its
    /// number went elsewhere), `.closed` after `close()`.
    public func accept(headroom: Int) throws -> Admission {
        // Not inside the loop: the reserve given up there must stay free
        // for the accept after it.
        refillReserve()
        while true {
            guard !isClosed else { throw SSHError(.closed, operation: "accept", detail: "listener closed") }
            let fd = gh_accept_cloexec(listenFD)
            if fd < 0 {
                let error = errno
                if isClosed { throw SSHError(.closed, operation: "accept", detail: "listener closed") }
                switch error {
                case EINTR, ECONNABORTED, EPROTO:
                    continue
                case EMFILE, ENFILE:
                    if reserve >= 0 {
                        _ = Glibc.close(reserve)
                        reserve = -1
                        continue
                    }
                    throw SSHError(.outOfDescriptors, operation: "accept", detail: String(cString: strerror(error)))
                default:
                    throw SSHError(.library, operation: "accept", detail: String(cString: strerror(error)))
                }
            }
            guard Self.canOpen(headroom, duplicating: fd) else {
                let peer = SSHConnection.peerName(fd)
                _ = Glibc.close(fd)
                refillReserve()
                return .outOfDescriptors(peer: peer)
            }
            if isClosed {
                _ = Glibc.close(fd)
                throw SSHError(.closed, operation: "accept", detail: "listener closed")
            }
            let session = try AcceptedSession()
            if bind.accept(session.handle, fd: fd) != SSH_OK {
                let detail = bind.lastError
                // Past `ssh_socket_set_fd` the session owns the socket and closes it when freed.
                if ssh_get_fd(session.handle) != fd { _ = Glibc.close(fd) }
                throw SSHError(.library, operation: "ssh_bind_accept_fd", detail: detail)
            }
            refillReserve()
            return .connection(SSHConnection(session: session.release(), config: config, logger: logger))
        }
    }

    /// Whether `count` more descriptors can be opened now: duplicates `fd`
    /// that many times and closes the copies (2 × `count` cheap system calls
    /// per connection; nothing cheaper counts the free slots of the table).
    static func canOpen(_ count: Int, duplicating fd: Int32) -> Bool {
        var copies = [Int32]()
        copies.reserveCapacity(count)
        defer { for copy in copies { _ = Glibc.close(copy) } }
        for _ in 0..<count {
            let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
            guard copy >= 0 else { return false }
            copies.append(copy)
        }
        return true
    }

    private func refillReserve() {
        guard reserve < 0 else { return }
        reserve = open("/dev/null", O_RDONLY | O_CLOEXEC)
    }

    /// Blocks until a TCP connection arrives and returns it before key
    /// exchange (`accept(headroom:)` with no headroom asked), so the slow part
    /// runs on the connection's own thread; `SSHConnection` sets `TCP_NODELAY`
    /// on it (libssh does not; without it each login waits on delayed ACKs).
    /// Throws `SSHError(.closed)` after `close()`.
    public func accept() throws -> SSHConnection {
        while true {
            if case .connection(let connection) = try accept(headroom: 0) { return connection }
        }
    }

    /// Stops accepting: `shutdown(2)` on the listening socket wakes a blocked
    /// `accept(2)` on Linux, which then throws `.closed`. Idempotent; safe from
    /// any thread. Connections already accepted are unaffected.
    public func close() {
        let first = closed.withLock { wasClosed in
            defer { wasClosed = true }
            return !wasClosed
        }
        if first, listenFD >= 0 { _ = shutdown(listenFD, Int32(SHUT_RDWR)) }
    }

    private var isClosed: Bool { closed.withLock { $0 } }

    // MARK: - helpers

    private static func validate(_ c: SSHServerConfig) throws {
        func bad(_ s: String) -> SSHError { SSHError(.configuration, operation: "SSHServerConfig", detail: s) }
        guard (0...65535).contains(c.port) else { throw bad("port \(c.port) out of range 0...65535") }
        guard c.loginGraceSeconds > 0 else { throw bad("loginGraceSeconds must be > 0") }
        guard c.maxAuthTries > 0 else { throw bad("maxAuthTries must be > 0") }
        guard c.maxChannelsPerConnection > 0 else { throw bad("maxChannelsPerConnection must be > 0") }
        guard c.ioTimeoutSeconds > 0 else { throw bad("ioTimeoutSeconds must be > 0") }
        let a = c.algorithms
        for (name, v) in [("keyExchange", a.keyExchange), ("ciphers", a.ciphers), ("macs", a.macs),
                          ("hostKeyAlgorithms", a.hostKeyAlgorithms),
                          ("publicKeyAcceptedTypes", a.publicKeyAcceptedTypes)]
        where SSHAlgorithms.list(v).isEmpty {
            throw bad("algorithm list \(name) is empty")
        }
    }

    static func signatureAlgorithms(forKeyTypeName t: String) -> Set<String> {
        t == "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] : [t]
    }

    /// The key's public half, once it is known that one of the allowed host
    /// key algorithms can use it.
    private static func servablePublicKey(of key: borrowing SSHKey, _ config: SSHServerConfig) throws -> SSHPublicKey {
        guard let pub = key.publicKey else {
            throw SSHError(.hostKey, operation: "ssh_pki_export_pubkey_base64", detail: "cannot export host public key")
        }
        let hostAlgs = Set(SSHAlgorithms.list(config.algorithms.hostKeyAlgorithms))
        let servable = SSHListener.signatureAlgorithms(forKeyTypeName: pub.type)
        guard !hostAlgs.isDisjoint(with: servable) else {
            throw SSHError(.configuration, operation: "host key",
                           detail: "host key \(config.hostKeyPath) is \(pub.type), which none of the allowed "
                               + "host key algorithms (\(config.algorithms.hostKeyAlgorithms)) can use")
        }
        return pub
    }

    /// The most a host key's text may be (an RSA 16384 key is about 12 KiB);
    /// it also fits a pipe's buffer, so the monitor writes it before the
    /// network side exists.
    static let maxHostKeyBytes = 32 * 1024

    /// The monitor's half of handing the host key over: loads the key file
    /// (creating it when missing, with the same mode checks as a listener
    /// that reads it itself), checks that the allowed algorithms can serve
    /// it, and returns its public half and a descriptor holding the private
    /// key's text (`OwnedFileDescriptor.parcel`, close-on-exec: the spawner
    /// passes it on deliberately) for the network side's `hostKeyDescriptor`.
    public static func hostKeyParcel(_ config: SSHServerConfig, logger: Logger) throws -> HostKeyParcel {
        try validate(config)
        let key = try loadOrCreateHostKey(config, logger: logger)
        let pub = try servablePublicKey(of: key, config)
        let text = try key.exportPrivateKeyPEM()
        guard text.count < maxHostKeyBytes else {
            throw SSHError(.hostKey, operation: "host key", detail: "\(config.hostKeyPath) is larger than \(maxHostKeyBytes) bytes")
        }
        do throws(Errno) {
            let fd = try text.withUnsafeBytes { bytes throws(Errno) in try OwnedFileDescriptor.parcel(bytes).release() }
            return HostKeyParcel(publicKey: pub, descriptor: OwnedFileDescriptor(adopting: fd))
        } catch {
            throw SSHError(.io, operation: "socketpair", detail: "host key parcel: \(error)")
        }
    }

    /// Reads the host key's text from `descriptor` to its end (bounded),
    /// closes it, and imports it; the text lives only in a `SecretBytes`
    /// and a wiped read buffer.
    private static func readHostKey(from descriptor: Int32) throws -> SSHKey {
        let file = OwnedFileDescriptor(adopting: descriptor)
        var text = SecretBytes(capacity: maxHostKeyBytes + 1)   // and its NUL
        let complete: Bool
        do throws(Errno) {
            complete = try file.readToEnd(into: &text)
        } catch {
            throw SSHError(.hostKey, operation: "read", detail: "host key descriptor \(descriptor): \(error)")
        }
        guard complete, text.count <= maxHostKeyBytes else {
            throw SSHError(.hostKey, operation: "read", detail: "host key descriptor \(descriptor): too large")
        }
        text.append(0)
        return try SSHKey.importPrivateKey(text: text)
    }

    /// Binds `host:port` and listens, as `ssh_bind_listen` would, but hands
    /// the socket out (close-on-exec): the monitor binds, the network side
    /// accepts. The backlog is the kernel's maximum, not libssh's 10, so a
    /// burst of connections waits in the kernel rather than being refused.
    public static func bindSocket(host: String, port: Int) throws -> OwnedFileDescriptor {
        guard (0...65535).contains(port) else {
            throw SSHError(.configuration, operation: "listen", detail: "port \(port) out of range 0...65535")
        }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE
        var found: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &found)
        guard rc == 0, let first = found else {
            throw SSHError(.library, operation: "getaddrinfo", detail: "\(host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(first) }
        let address = first.pointee
        let fd = socket(address.ai_family, address.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), address.ai_protocol)
        guard fd >= 0 else { throw SSHKeyGenerator.posixError("socket", "\(host):\(port)") }
        let socket = OwnedFileDescriptor(adopting: fd)
        var on: Int32 = 1
        guard setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size)) == 0,
              Glibc.bind(fd, address.ai_addr, address.ai_addrlen) == 0,
              Glibc.listen(fd, SOMAXCONN) == 0 else {
            throw SSHError(.library, operation: "bind", detail: "\(host):\(port): \(String(cString: strerror(errno)))")
        }
        return socket
    }

    /// The port `socket` is bound to (the one the kernel picked for port 0).
    public static func boundPort(of socket: Int32) -> Int? {
        var addr = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let got = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &len) }
        }
        return got == 0 ? port(of: addr) : nil
    }

    /// Returns the private host key, generating it first if the file is missing.
    private static func loadOrCreateHostKey(_ c: SSHServerConfig, logger: Logger) throws -> SSHKey {
        let path = c.hostKeyPath
        var st = stat()
        if lstat(path, &st) != 0 {
            guard errno == ENOENT else { throw SSHKeyGenerator.posixError("stat", path) }
            let pub = try SSHKeyGenerator.generate(type: c.hostKeyType, privateKeyPath: path)
            logger.notice("generated new host key", metadata: [
                "path": "\(path)", "key": "\(pub.type) \(pub.fingerprintSHA256)",
            ])
            guard lstat(path, &st) == 0 else { throw SSHKeyGenerator.posixError("stat", path) }
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw SSHError(.hostKey, operation: "host key", detail: "\(path) is not a regular file")
        }
        guard st.st_mode & 0o077 == 0 else {
            throw SSHError(.hostKey, operation: "host key",
                           detail: String(format: "%@ has mode %04o; it must not be accessible by group or others "
                                          + "(chmod 600 it)", path, Int(st.st_mode & 0o7777)))
        }
        return try SSHKey.importPrivateKeyFile(path)
    }

    private static func port(of addr: sockaddr_storage) -> Int {
        var a = addr
        switch Int32(a.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &a) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
            }
        case AF_INET6:
            return withUnsafePointer(to: &a) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
            }
        default: return 0
        }
    }
}

/// The host key as the monitor hands it to the network side: the public
/// half for the operator, the private half in a descriptor.
public struct HostKeyParcel: ~Copyable {
    public let publicKey: SSHPublicKey
    public var descriptor: OwnedFileDescriptor
}

/// The one owner of the listener's `ssh_bind`: `ssh_bind_free` runs exactly
/// once, when the owner goes away, whether `SSHListener.init` finished or threw.
private struct SSHBind: ~Copyable {
    let handle: ssh_bind

    /// `ssh_bind_new`.
    init() throws {
        guard let b = ssh_bind_new() else {
            throw SSHError(.library, operation: "ssh_bind_new", detail: "out of memory")
        }
        handle = b
    }

    deinit { ssh_bind_free(handle) }

    var lastError: String { SSHServer.lastError(handle) }
    /// `ssh_bind_get_fd`.
    var fd: Int32 { ssh_bind_get_fd(handle) }

    /// `ssh_bind_options_set` with a string value.
    func set(_ opt: ssh_bind_options_e, _ value: String, _ name: String) throws {
        if ssh_bind_options_set(handle, opt, value) != SSH_OK {
            throw SSHError(.configuration, operation: "ssh_bind_options_set(\(name))", detail: "\(value): \(lastError)")
        }
    }

    /// `ssh_bind_options_set` with a value passed by address.
    func set<T>(_ opt: ssh_bind_options_e, _ value: inout T, _ name: String) throws {
        let rc = withUnsafePointer(to: &value) { ssh_bind_options_set(handle, opt, UnsafeRawPointer($0)) }
        if rc != SSH_OK {
            throw SSHError(.configuration, operation: "ssh_bind_options_set(\(name))", detail: lastError)
        }
    }

    /// `ssh_bind_options_set(SSH_BIND_OPTIONS_IMPORT_KEY)`. On success the
    /// bind keeps the key itself (the option's value is the key) and frees it
    /// with the bind, so the owner gives it up; on failure (an unsupported key
    /// type) libssh 0.10.6 leaves it alone (bind_options.c) and the owner frees it.
    func importHostKey(_ key: consuming SSHKey) throws {
        let h = handle
        let rc = key.withHandle { ssh_bind_options_set(h, SSH_BIND_OPTIONS_IMPORT_KEY, UnsafeRawPointer($0)) }
        guard rc == SSH_OK else {
            throw SSHError(.hostKey, operation: "ssh_bind_options_set(IMPORT_KEY)", detail: lastError)
        }
        _ = key.release()
    }

    /// `ssh_bind_set_fd`: accept on a socket that is listening already; the
    /// bind closes it when freed, as one it opened itself.
    func adopt(_ socket: Int32) { ssh_bind_set_fd(handle, socket) }

    /// `ssh_bind_listen`.
    func listen(_ config: SSHServerConfig) throws {
        if ssh_bind_listen(handle) != SSH_OK {
            throw SSHError(.library, operation: "ssh_bind_listen", detail: "\(config.host):\(config.port): \(lastError)")
        }
    }

    /// `ssh_bind_accept` into `session`.
    func accept(_ session: ssh_session) -> Int32 { ssh_bind_accept(handle, session) }

    /// `ssh_bind_accept_fd`: `session` on a socket accepted by the caller.
    func accept(_ session: ssh_session, fd: Int32) -> Int32 { ssh_bind_accept_fd(handle, session, fd) }
}

/// An `ssh_session` between `ssh_new` and the `SSHConnection` that takes it:
/// `ssh_free` runs once if `accept()` throws; `release()` hands it over.
private struct AcceptedSession: ~Copyable {
    let handle: ssh_session

    /// `ssh_new`.
    init() throws {
        guard let s = ssh_new() else { throw SSHError(.library, operation: "ssh_new", detail: "out of memory") }
        handle = s
    }

    deinit { ssh_free(handle) }

    consuming func release() -> ssh_session {
        let h = handle
        discard self
        return h
    }
}
