import CLibSSH
import Foundation
import Logging

/// The listening socket and its `ssh_bind`: host key, algorithm policy, accept.
///
/// Threading: `accept()` is called from one accept thread. `close()` may be
/// called from any thread (for example a signal-handling thread) and makes a
/// blocked `accept()` throw `SSHError(.closed)`; the `ssh_bind` itself is freed
/// only in `deinit`, so a concurrent `accept()` never touches freed memory.
/// That is why this one type is `@unchecked Sendable`: the only state touched
/// across threads is the `closed` flag, guarded by a lock, and the listening
/// fd, which `shutdown(2)` may use from any thread.
public final class SSHListener: @unchecked Sendable {
    private let bind: OpaquePointer
    private let config: SSHServerConfig
    private let logger: Logger
    private let lock = NSLock()
    private var closed = false
    private let listenFD: Int32

    /// The port actually bound (differs from `config.port` when that was 0).
    public let boundPort: Int
    /// The host's public key, for known_hosts lines and fingerprints.
    public let hostPublicKey: SSHPublicKey

    /// Loads or creates the host key, applies the algorithm lists to the
    /// `ssh_bind` (`ssh_bind_options_set`) and listens (`ssh_bind_listen`).
    /// Throws `SSHError(.hostKey)` for a host key file readable by group or
    /// others, and `.configuration` for lists that cannot work together.
    public init(config: SSHServerConfig, logger: Logger) throws {
        try SSHListener.validate(config)
        self.config = config
        self.logger = logger

        let key = try SSHListener.loadOrCreateHostKey(config, logger: logger)
        guard let pub = SSHPublicKey(libsshKey: key) else {
            ssh_key_free(key)
            throw SSHError(.hostKey, operation: "ssh_pki_export_pubkey_base64", detail: "cannot export host public key")
        }
        let hostAlgs = Set(SSHAlgorithms.list(config.algorithms.hostKeyAlgorithms))
        let servable = SSHListener.signatureAlgorithms(forKeyTypeName: pub.type)
        guard !hostAlgs.isDisjoint(with: servable) else {
            ssh_key_free(key)
            throw SSHError(.configuration, operation: "host key",
                           detail: "host key \(config.hostKeyPath) is \(pub.type), which none of the allowed "
                               + "host key algorithms (\(config.algorithms.hostKeyAlgorithms)) can use")
        }
        hostPublicKey = pub

        guard let b = ssh_bind_new() else {
            ssh_key_free(key)
            throw SSHError(.library, operation: "ssh_bind_new", detail: "out of memory")
        }
        bind = b
        do {
            // Ignore /etc/ssh/libssh_server_config: the policy is ours alone.
            var processConfig = false
            try SSHListener.set(b, SSH_BIND_OPTIONS_PROCESS_CONFIG, &processConfig, "PROCESS_CONFIG")
            try SSHListener.set(b, SSH_BIND_OPTIONS_BINDADDR, config.host, "BINDADDR")
            var port = UInt32(config.port)
            try SSHListener.set(b, SSH_BIND_OPTIONS_BINDPORT, &port, "BINDPORT")
            let a = config.algorithms
            try SSHListener.set(b, SSH_BIND_OPTIONS_KEY_EXCHANGE, a.keyExchange, "KEY_EXCHANGE")
            try SSHListener.set(b, SSH_BIND_OPTIONS_CIPHERS_C_S, a.ciphers, "CIPHERS_C_S")
            try SSHListener.set(b, SSH_BIND_OPTIONS_CIPHERS_S_C, a.ciphers, "CIPHERS_S_C")
            try SSHListener.set(b, SSH_BIND_OPTIONS_HMAC_C_S, a.macs, "HMAC_C_S")
            try SSHListener.set(b, SSH_BIND_OPTIONS_HMAC_S_C, a.macs, "HMAC_S_C")
            try SSHListener.set(b, SSH_BIND_OPTIONS_HOSTKEY_ALGORITHMS, a.hostKeyAlgorithms, "HOSTKEY_ALGORITHMS")
            try SSHListener.set(b, SSH_BIND_OPTIONS_PUBKEY_ACCEPTED_KEY_TYPES, a.publicKeyAcceptedTypes,
                                "PUBKEY_ACCEPTED_KEY_TYPES")
        } catch {
            ssh_key_free(key)
            ssh_bind_free(b)
            throw error
        }
        // IMPORT_KEY takes ownership of the key (the value is the key itself),
        // even on failure paths after this point it belongs to the bind.
        let rc = ssh_bind_options_set(b, SSH_BIND_OPTIONS_IMPORT_KEY, UnsafeRawPointer(key))
        if rc != SSH_OK {
            let detail = lastError(b)
            ssh_bind_free(b)
            throw SSHError(.hostKey, operation: "ssh_bind_options_set(IMPORT_KEY)", detail: detail)
        }
        if ssh_bind_listen(b) != SSH_OK {
            let detail = lastError(b)
            ssh_bind_free(b)
            throw SSHError(.library, operation: "ssh_bind_listen", detail: "\(config.host):\(config.port): \(detail)")
        }
        let fd = ssh_bind_get_fd(b)
        listenFD = fd
        var addr = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let got = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        boundPort = got == 0 ? SSHListener.port(of: addr) : config.port
        logger.info("ssh listener bound", metadata: [
            "address": "\(config.host):\(boundPort)",
            "hostkey": "\(pub.type) \(pub.fingerprintSHA256)",
        ])
    }

    deinit {
        close()
        ssh_bind_free(bind)
    }

    /// Blocks in `ssh_bind_accept` until a TCP connection arrives, sets
    /// `TCP_NODELAY` on it (libssh does not; without it each login waits on
    /// delayed ACKs) and returns before key exchange, so the slow part runs on
    /// the connection's own thread. Throws `SSHError(.closed)` after `close()`.
    public func accept() throws -> SSHConnection {
        guard !isClosed else { throw SSHError(.closed, operation: "accept", detail: "listener closed") }
        guard let session = ssh_new() else {
            throw SSHError(.library, operation: "ssh_new", detail: "out of memory")
        }
        let rc = ssh_bind_accept(bind, session)
        if rc != SSH_OK {
            let detail = lastError(bind)
            ssh_free(session)
            if isClosed { throw SSHError(.closed, operation: "accept", detail: "listener closed") }
            throw SSHError(.library, operation: "ssh_bind_accept", detail: detail)
        }
        if isClosed {
            ssh_free(session)
            throw SSHError(.closed, operation: "accept", detail: "listener closed")
        }
        return SSHConnection(session: session, config: config, logger: logger)
    }

    /// Stops accepting: `shutdown(2)` on the listening socket wakes a blocked
    /// `accept(2)` on Linux, which then throws `.closed`. Idempotent; safe from
    /// any thread. Connections already accepted are unaffected.
    public func close() {
        lock.lock()
        let first = !closed
        closed = true
        lock.unlock()
        if first, listenFD >= 0 { _ = shutdown(listenFD, Int32(SHUT_RDWR)) }
    }

    private var isClosed: Bool {
        lock.lock(); defer { lock.unlock() }
        return closed
    }

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

    private static func set(_ b: OpaquePointer, _ opt: ssh_bind_options_e, _ value: String, _ name: String) throws {
        let rc = ssh_bind_options_set(b, opt, value)
        if rc != SSH_OK {
            throw SSHError(.configuration, operation: "ssh_bind_options_set(\(name))",
                           detail: "\(value): \(lastError(b))")
        }
    }

    private static func set<T>(_ b: OpaquePointer, _ opt: ssh_bind_options_e, _ value: inout T, _ name: String) throws {
        let rc = withUnsafePointer(to: &value) { ssh_bind_options_set(b, opt, UnsafeRawPointer($0)) }
        if rc != SSH_OK {
            throw SSHError(.configuration, operation: "ssh_bind_options_set(\(name))", detail: lastError(b))
        }
    }

    /// Returns the private host key, generating it first if the file is missing.
    private static func loadOrCreateHostKey(_ c: SSHServerConfig, logger: Logger) throws -> ssh_key {
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
        var key: ssh_key?
        guard ssh_pki_import_privkey_file(path, nil, nil, nil, &key) == SSH_OK, let key else {
            throw SSHError(.hostKey, operation: "ssh_pki_import_privkey_file", detail: "\(path): cannot read private key")
        }
        return key
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
