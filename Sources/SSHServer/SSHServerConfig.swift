/// Host key algorithms a listener can generate and serve.
public enum SSHKeyType: String, Sendable, CaseIterable {
    case ecdsaP256 = "ecdsa-p256", ecdsaP384 = "ecdsa-p384", rsa3072 = "rsa-3072", ed25519

    /// The OpenSSH key type string (`ssh_key_type_to_char`).
    public var openSSHName: String {
        switch self {
        case .ecdsaP256: return "ecdsa-sha2-nistp256"
        case .ecdsaP384: return "ecdsa-sha2-nistp384"
        case .rsa3072: return "ssh-rsa"
        case .ed25519: return "ssh-ed25519"
        }
    }

    /// The host key signature algorithms this key type can serve.
    var signatureAlgorithms: [String] {
        switch self {
        case .rsa3072: return ["rsa-sha2-512", "rsa-sha2-256"]
        default: return [openSSHName]
        }
    }
}

/// Everything `SSHListener` needs. Values are checked in `SSHListener.init`.
public struct SSHServerConfig: Sendable {
    /// Address to bind, e.g. `"127.0.0.1"` or `"0.0.0.0"`.
    public var host: String
    /// TCP port; 0 picks an ephemeral port (read it from `SSHListener.boundPort`).
    public var port: Int
    /// Private host key. Created on first start if missing (mode 0600, written
    /// atomically, parent directory created 0700). An existing file that is
    /// group- or world-accessible is refused, as sshd does.
    public var hostKeyPath: String
    /// Type of a newly generated host key. An existing key file is used as is.
    public var hostKeyType: SSHKeyType
    public var algorithms: SSHAlgorithms
    /// Seconds from accept to the end of authentication (`SSH_OPTIONS_TIMEOUT`
    /// during key exchange, and the overall auth deadline), like sshd's
    /// `LoginGraceTime`.
    public var loginGraceSeconds: Int
    /// Failed authentication attempts before disconnect (sshd's `MaxAuthTries`).
    public var maxAuthTries: Int
    /// Session channels open at once per connection; more are refused.
    public var maxChannelsPerConnection: Int
    /// Optional pre-authentication banner (`SSH_MSG_USERAUTH_BANNER`), sent
    /// with the first authentication reply.
    public var banner: String?
    /// After authentication: how long a blocking write (`ssh_channel_write`)
    /// may wait for the client to open its window before the session fails.
    public var ioTimeoutSeconds: Int
    /// A socket already bound and listening (systemd socket activation),
    /// accepted on instead of binding `host:port`; the listener owns it from
    /// then on. Port 22 is then bound by systemd, not by this process.
    public var listeningSocket: Int32?
    /// The private host key as a descriptor to read to its end (a pipe the
    /// monitor filled, `SSHListener.hostKeyPipe`), instead of `hostKeyPath`:
    /// the unprivileged network side never opens the key file. The listener
    /// closes it once read.
    public var hostKeyDescriptor: Int32?

    public init(host: String = "127.0.0.1", port: Int = 2222,
                hostKeyPath: String, hostKeyType: SSHKeyType = .ecdsaP256,
                algorithms: SSHAlgorithms = .modern, loginGraceSeconds: Int = 60,
                maxAuthTries: Int = 6, maxChannelsPerConnection: Int = 10,
                banner: String? = nil, ioTimeoutSeconds: Int = 120, listeningSocket: Int32? = nil) {
        self.listeningSocket = listeningSocket
        self.host = host
        self.port = port
        self.hostKeyPath = hostKeyPath
        self.hostKeyType = hostKeyType
        self.algorithms = algorithms
        self.loginGraceSeconds = loginGraceSeconds
        self.maxAuthTries = maxAuthTries
        self.maxChannelsPerConnection = maxChannelsPerConnection
        self.banner = banner
        self.ioTimeoutSeconds = ioTimeoutSeconds
    }
}
