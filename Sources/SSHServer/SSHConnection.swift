import CLibSSH
import Foundation
import Logging
import Synchronization

/// One accepted SSH connection: its `ssh_session`, the session's `ssh_event`,
/// the server callbacks and every channel.
///
/// Confined to ONE thread for its whole life after the hand-off from the
/// accept thread (see `handoff()`): a libssh session is not thread-safe, and
/// every method here may block (key exchange, the auth message loop, PAM,
/// `ssh_event_dopoll`, channel writes). Never call it from Swift's
/// cooperative pool.
///
/// Lifecycle: `handshake()` → `authenticate(_:)` → `nextEvents(...)` in a loop
/// → `close()` (or `disconnect(message:)`). `deinit` only closes as a safety net.
public final class SSHConnection {
    var session: ssh_session?
    let config: SSHServerConfig
    var logger: Logger
    /// "ip:port" of the client, for logs and audit: the socket's peer, or
    /// the client a balancer's PROXY header named (`readProxyHeader`).
    public internal(set) var peerAddress: String
    /// The socket's peer when a PROXY header named another client: the
    /// balancer the connection came through; nil for a direct connection.
    public internal(set) var balancerAddress: String?

    /// Set at `handshake()`: key exchange and authentication must finish by then.
    var deadline = Date.distantFuture
    /// false until `handshake()`: before it the peer has heard nothing, and
    /// `close()` just drops the socket (a refusal at accept stays cheap).
    var handshakeStarted = false
    var authenticatedUser: String?

    // After authentication (see SSHConnection+Events.swift).
    var event: ssh_event?
    /// The caller's wake descriptor once added to `event` (see `nextEvents`).
    var wakeFD: Int32 = -1
    var serverCallbacks: UnsafeMutablePointer<ssh_server_callbacks_struct>?
    /// Channel callbacks structs handed to libssh and not yet released: each
    /// is freed when its channel is closed and its callbacks removed (see
    /// `channelReleased`), the rest after `ssh_free`. libssh keeps the
    /// pointer, not a copy.
    var channelCallbacks: [UnsafeMutablePointer<ssh_channel_callbacks_struct>] = []
    var channels: [ObjectIdentifier: SSHChannel] = [:]
    var channelsByHandle: [OpaquePointer: SSHChannel] = [:]
    var nextChannelID = 1
    var pending: [SSHSessionEvent] = []
    var disconnectReported = false

    init(session: ssh_session, config: SSHServerConfig, logger: Logger) {
        self.session = session
        self.config = config
        let fd = ssh_get_fd(session)
        if fd >= 0 { _ = gh_set_tcp_nodelay(fd) }
        peerAddress = SSHConnection.peerName(fd)
        var l = logger
        l[metadataKey: "peer"] = "\(peerAddress)"
        self.logger = l
    }

    deinit { close() }

    /// Wraps this connection so it can cross from the accept thread to the
    /// connection's own thread exactly once. The accept thread must not touch
    /// the connection after calling this.
    public func handoff() -> SSHConnectionHandoff { SSHConnectionHandoff(self) }

    /// `ssh_handle_key_exchange` under the login grace timeout
    /// (`SSH_OPTIONS_TIMEOUT`, set on the session first). Starts the grace
    /// clock that also bounds `authenticate`.
    public func handshake() throws {
        let s = try live("ssh_handle_key_exchange")
        handshakeStarted = true
        deadline = Date().addingTimeInterval(TimeInterval(config.loginGraceSeconds))
        try setTimeout(seconds: config.loginGraceSeconds)
        let rc = ssh_handle_key_exchange(s)
        guard rc == SSH_OK else {
            let detail = errorText()
            if Date() >= deadline {
                throw SSHError(.timeout, operation: "ssh_handle_key_exchange",
                               detail: "login grace time (\(config.loginGraceSeconds)s) exceeded: \(detail)")
            }
            throw SSHError(.library, operation: "ssh_handle_key_exchange", detail: detail)
        }
    }

    /// Tells the client why, then closes. The text goes out as the description
    /// of SSH_MSG_DISCONNECT (`ssh_session_set_disconnect_message` +
    /// `ssh_disconnect`), which OpenSSH prints as "Received disconnect from
    /// ...: 11: <message>". Control characters are stripped and the text is
    /// cut at 200 bytes.
    public func disconnect(message: String?) {
        if let s = session, let message {
            let clean = String(message.unicodeScalars.filter { !$0.isControlCharacter }
                .map(Character.init)).prefix(200)
            _ = ssh_session_set_disconnect_message(s, String(clean))
        }
        close()
    }

    /// Ordered teardown: channels (`ssh_channel_close`, `ssh_channel_free`),
    /// the event (`ssh_event_remove_session`, `ssh_event_free`), then
    /// `ssh_disconnect` and `ssh_free`, and only then the callback structs
    /// libssh pointed at. Idempotent.
    public func close() {
        guard let s = session else { return }
        for ch in Array(channels.values) { ch.close() }
        if handshakeStarted { primeWrite(s) }
        if let e = event {
            if wakeFD >= 0 { _ = ssh_event_remove_fd(e, wakeFD) }
            wakeFD = -1
            _ = ssh_event_remove_session(e, s)
            ssh_event_free(e)
            event = nil
            watchForAgentRequests(false)
        }
        // ssh_is_connected() stays 0 on a server session driven by the message
        // loop, so test the socket instead: otherwise SSH_MSG_DISCONNECT (and
        // its message) is never sent.
        if handshakeStarted && ssh_get_fd(s) >= 0 { ssh_disconnect(s) }
        ssh_free(s)
        session = nil
        for cb in channelCallbacks { cb.deinitialize(count: 1); cb.deallocate() }
        channelCallbacks.removeAll()
        if let cb = serverCallbacks { cb.deinitialize(count: 1); cb.deallocate(); serverCallbacks = nil }
        channels.removeAll()
        channelsByHandle.removeAll()
    }

    /// libssh writes a packet straight to the socket only after a poll has
    /// seen it writable since the previous write (`write_wontblock`);
    /// otherwise it queues it for the next poll. `ssh_disconnect` queues
    /// SSH_MSG_DISCONNECT and closes the socket at once, so without this one
    /// zero-timeout poll the disconnect message would never leave.
    private func primeWrite(_ s: ssh_session) {
        if let e = event {
            _ = ssh_event_dopoll(e, 0)
            return
        }
        guard ssh_get_fd(s) >= 0, let e = ssh_event_new() else { return }
        if ssh_event_add_session(e, s) == SSH_OK {
            _ = ssh_event_dopoll(e, 0)
            _ = ssh_event_remove_session(e, s)
        }
        ssh_event_free(e)
    }

    // MARK: - internals shared by the extensions

    func live(_ op: String) throws -> ssh_session {
        guard let s = session else { throw SSHError(.disconnected, operation: op, detail: "connection closed") }
        return s
    }

    /// `ssh_get_error` for this session, copied out at once.
    func errorText() -> String { lastError(session) }

    /// `SSH_OPTIONS_TIMEOUT` takes a C `long` by address.
    func setTimeout(seconds: Int) throws {
        let s = try live("ssh_options_set(TIMEOUT)")
        var t = max(1, seconds)
        try check(ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &t), "ssh_options_set(TIMEOUT)", s)
    }

    /// Called by `SSHChannel.close()` after `ssh_remove_channel_callbacks`
    /// and `ssh_channel_free`: libssh no longer points at the callbacks
    /// struct, so it is freed now rather than at connection close. Otherwise
    /// a client opening and closing channels in a loop would grow memory for
    /// as long as its connection lives.
    func channelReleased(_ ch: SSHChannel, handle: ssh_channel) {
        if let i = channelCallbacks.firstIndex(of: ch.callbacks) {
            let cb = channelCallbacks.remove(at: i)
            cb.deinitialize(count: 1)
            cb.deallocate()
        }
        channels[ObjectIdentifier(ch)] = nil
        channelsByHandle[handle] = nil
    }

    static func peerName(_ fd: Int32) -> String {
        var addr = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &len) }
        }
        guard rc == 0 else { return "unknown" }
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var serv = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, len, &host, socklen_t(host.count), &serv, socklen_t(serv.count),
                            NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        guard r == 0 else { return "unknown" }
        func text(_ c: [CChar]) -> String {
            String(decoding: c.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        let h = text(host)
        return h.contains(":") ? "[\(h)]:\(text(serv))" : "\(h):\(text(serv))"
    }
}

@available(*, unavailable)
extension SSHConnection: Sendable {}

/// Moves an `SSHConnection` from the accept thread to its own thread exactly
/// once. `take()` returns the connection the first time and nil afterwards, so
/// the confinement rule holds even though this box is `Sendable`.
public final class SSHConnectionHandoff: Sendable {
    private let taken = Mutex(false)
    // unsafe: only the one `take()` that flips `taken` reads or clears it.
    nonisolated(unsafe) private var connection: SSHConnection?
    init(_ c: SSHConnection) { connection = c }

    /// The connection, the first time only.
    public func take() -> SSHConnection? {
        let first = taken.withLock { wasTaken in
            defer { wasTaken = true }
            return !wasTaken
        }
        guard first else { return nil }
        defer { connection = nil }
        return connection
    }
}
