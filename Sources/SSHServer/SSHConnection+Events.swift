import CLibSSH
import Foundation

extension SSHConnection {
    /// After `authenticate`: runs `ssh_event_dopoll` once (at most
    /// `timeoutMilliseconds`, -1 = forever) and returns what the callbacks
    /// recorded, in order. The callbacks only record; libssh has already sent
    /// each request's reply, so anything the caller writes next follows it.
    ///
    /// `wake` (a descriptor the caller makes readable from another thread)
    /// joins the SSH socket in that one poll() through `ssh_event_add_fd`, so
    /// it ends the wait at once; libssh keeps polling its socket as it would
    /// (POLLOUT while its output is queued). The caller empties it. Events
    /// the callbacks recorded outside this call (libssh reads packets while a
    /// blocking channel write waits for window) are returned without waiting.
    ///
    /// The first call installs the server callbacks
    /// (`channel_open_request_session_function`), a message callback that
    /// records (and refuses) everything without a callback (x11, forwarding,
    /// unknown channel types and requests), and the per-session `ssh_event`.
    ///
    /// Returns `[.disconnected]` once when the peer is gone; later calls throw.
    public func nextEvents(timeoutMilliseconds: Int, wake: Int32 = -1) throws -> [SSHSessionEvent] {
        let s = try live("ssh_event_dopoll")
        guard authenticatedUser != nil else {
            throw SSHError(.library, operation: "nextEvents", detail: "not authenticated")
        }
        if disconnectReported {
            // Events put back (`requeue`), the disconnect among them, are
            // returned once more; after that the connection is gone.
            guard !pending.isEmpty else {
                throw SSHError(.disconnected, operation: "ssh_event_dopoll", detail: "connection already ended")
            }
            defer { pending.removeAll() }
            return pending
        }
        let e = try installEventLoop(s)
        if wake >= 0 && wakeFD != wake {
            if wakeFD >= 0 { _ = ssh_event_remove_fd(e, wakeFD) }
            try check(ssh_event_add_fd(e, wake, Int16(POLLIN), wakeReadable, nil), "ssh_event_add_fd", s)
            wakeFD = wake
        }
        // libssh closes the socket (and drops it from the poll set) when it
        // reads the peer's disconnect or EOF, which can happen outside this
        // call (a blocking channel write reads packets too). Polling then
        // would wait on the wake descriptor alone, for ever.
        let gone = { ssh_is_connected(s) == 0 || ssh_get_status(s) & (SSH_CLOSED | SSH_CLOSED_ERROR) != 0 }
        let timeout = pending.isEmpty && !gone()
            ? Int32(clamping: timeoutMilliseconds < 0 ? -1 : timeoutMilliseconds) : 0
        let rc = ssh_event_dopoll(e, timeout)
        if rc == SSH_ERROR || gone() {
            if rc == SSH_ERROR { logger.debug("ssh_event_dopoll ended", metadata: ["error": "\(errorText())"]) }
            disconnectReported = true
            pending.append(.disconnected)
        }
        let out = pending
        pending.removeAll()
        return out
    }

    /// The socket libssh reads, for a caller that waits in a poll() of its
    /// own while it does something else (a running command that watches for
    /// Ctrl-C); -1 once closed. Readable means `nextEvents(timeoutMilliseconds: 0)`
    /// has something to read.
    public var socketDescriptor: Int32 { ssh_get_fd(session) }

    /// Events recorded outside `nextEvents` (a blocking channel write reads
    /// packets too) and not yet returned.
    public var hasPendingEvents: Bool { !pending.isEmpty }

    /// Puts events taken from `nextEvents` back, ahead of any recorded
    /// since: the next call returns them first, without waiting.
    public func requeue(_ events: [SSHSessionEvent]) {
        pending.insert(contentsOf: events, at: 0)
    }

    /// Number of channels neither side has closed.
    var openChannelCount: Int { channels.values.filter { $0.isOpen }.count }

    private func installEventLoop(_ s: ssh_session) throws -> ssh_event {
        if let e = event { return e }
        let me = Unmanaged.passUnretained(self).toOpaque()
        let cb = UnsafeMutablePointer<ssh_server_callbacks_struct>.allocate(capacity: 1)
        cb.initialize(to: ssh_server_callbacks_struct())
        gh_server_callbacks_init(cb)
        cb.pointee.userdata = me
        cb.pointee.channel_open_request_session_function = channelOpenTrampoline
        serverCallbacks = cb
        try check(ssh_set_server_callbacks(s, cb), "ssh_set_server_callbacks", s)
        ssh_set_message_callback(s, messageTrampoline, me)
        guard let e = ssh_event_new() else {
            throw SSHError(.library, operation: "ssh_event_new", detail: "out of memory")
        }
        event = e
        try check(ssh_event_add_session(e, s), "ssh_event_add_session", s)
        watchForAgentRequests(true)    // undone in close(), which runs whenever `event` is set
        return e
    }

    /// libssh 0.10.6 answers auth-agent-req@openssh.com inside
    /// `ssh_packet_channel_request` (channels.c): SUCCESS when a
    /// `channel_auth_agent_req_function` is registered, FAILURE when none is,
    /// and it never passes the request to the message callback. So none is
    /// registered, the client reads FAILURE, and the refusal is recorded from
    /// the one trace libssh leaves: its log line. libssh's log callback, level
    /// and userdata are thread-local (`LIBSSH_THREAD` in log.c), and a
    /// connection is confined to its thread, so this sees this connection
    /// only. `false` points the sink at nothing and restores level 0;
    /// `close()` does that, so the callback never outlives the connection.
    func watchForAgentRequests(_ on: Bool) {
        ssh_set_log_userdata(on ? Unmanaged.passUnretained(self).toOpaque() : nil)
        _ = ssh_set_log_callback(agentRequestLogged)
        _ = ssh_set_log_level(Int32(on ? SSH_LOG_PROTOCOL : SSH_LOG_NOLOG))
    }

    // MARK: - called from the trampolines (inside ssh_event_dopoll, same thread)

    func openSessionChannel(_ s: ssh_session) -> ssh_channel? {
        guard openChannelCount < config.maxChannelsPerConnection else {
            pending.append(.refused(nil, request: "channel-open", detail: "too many channels"))
            return nil
        }
        guard let h = ssh_channel_new(s) else { return nil }
        let cb = UnsafeMutablePointer<ssh_channel_callbacks_struct>.allocate(capacity: 1)
        cb.initialize(to: ssh_channel_callbacks_struct())
        gh_channel_callbacks_init(cb)
        channelCallbacks.append(cb)
        let ch = SSHChannel(id: nextChannelID, handle: h, connection: self, callbacks: cb)
        nextChannelID += 1
        cb.pointee.userdata = Unmanaged.passUnretained(ch).toOpaque()
        cb.pointee.channel_data_function = dataTrampoline
        cb.pointee.channel_eof_function = eofTrampoline
        cb.pointee.channel_close_function = closeTrampoline
        cb.pointee.channel_pty_request_function = ptyTrampoline
        cb.pointee.channel_shell_request_function = shellTrampoline
        cb.pointee.channel_exec_request_function = execTrampoline
        cb.pointee.channel_pty_window_change_function = windowTrampoline
        cb.pointee.channel_env_request_function = envTrampoline
        cb.pointee.channel_subsystem_request_function = subsystemTrampoline
        // No x11 and no auth-agent callback on purpose: libssh 0.10 replies
        // SUCCESS to x11-req and to auth-agent-req@openssh.com whenever that
        // callback exists. Without one, x11-req reaches the message callback
        // (recorded there, refused by libssh); auth-agent-req is refused by
        // libssh itself and recorded through `agentRequestLogged`.
        guard ssh_set_channel_callbacks(h, cb) == SSH_OK else {
            ssh_channel_free(h)
            return nil
        }
        channels[ObjectIdentifier(ch)] = ch
        channelsByHandle[h] = ch
        pending.append(.channelOpened(ch))
        return h
    }

    /// Everything that reached libssh's message callback had no server or
    /// channel callback: record it and let libssh send the default refusal.
    func unhandledMessage(_ msg: ssh_message) {
        let type = UInt32(bitPattern: ssh_message_type(msg))
        let sub = ssh_message_subtype(msg)
        switch type {
        case SSH_REQUEST_CHANNEL_OPEN.rawValue:
            let dest = ssh_message_channel_request_open_destination(msg).map { String(cString: $0) } ?? ""
            let port = ssh_message_channel_request_open_destination_port(msg)
            switch UInt32(bitPattern: sub) {
            case SSH_CHANNEL_DIRECT_TCPIP.rawValue:
                pending.append(.refused(nil, request: "direct-tcpip", detail: SSHConnection.safe("\(dest):\(port)")))
            case SSH_CHANNEL_FORWARDED_TCPIP.rawValue:
                pending.append(.refused(nil, request: "forwarded-tcpip", detail: SSHConnection.safe("\(dest):\(port)")))
            case SSH_CHANNEL_X11.rawValue:
                pending.append(.refused(nil, request: "x11", detail: "channel"))
            default:
                pending.append(.refused(nil, request: "channel-open", detail: "unsupported channel type"))
            }
        case SSH_REQUEST_CHANNEL.rawValue:
            let ch = ssh_message_channel_request_channel(msg).flatMap { channelsByHandle[$0] }
            switch UInt32(bitPattern: sub) {
            case SSH_CHANNEL_REQUEST_WINDOW_CHANGE.rawValue:
                break    // handled by its callback; libssh passes it on anyway (no reply wanted)
            case SSH_CHANNEL_REQUEST_X11.rawValue:
                pending.append(.refused(ch, request: "x11", detail: ""))
            default:
                pending.append(.refused(ch, request: "channel-request", detail: "unsupported request"))
            }
        case SSH_REQUEST_GLOBAL.rawValue:
            let addr = ssh_message_global_request_address(msg).map { String(cString: $0) } ?? ""
            let port = ssh_message_global_request_port(msg)
            switch UInt32(bitPattern: sub) {
            case SSH_GLOBAL_REQUEST_TCPIP_FORWARD.rawValue:
                pending.append(.refused(nil, request: "tcpip-forward", detail: SSHConnection.safe("\(addr):\(port)")))
            case SSH_GLOBAL_REQUEST_CANCEL_TCPIP_FORWARD.rawValue:
                pending.append(.refused(nil, request: "cancel-tcpip-forward", detail: SSHConnection.safe("\(addr):\(port)")))
            default:
                break
            }
        case SSH_REQUEST_AUTH.rawValue:
            pending.append(.refused(nil, request: "userauth", detail: "already authenticated"))
        default:
            break
        }
    }

    /// Client-supplied text going into an audit record: printable ASCII only, bounded.
    static func safe(_ s: String, max: Int = 256) -> String {
        String(s.unicodeScalars.prefix(max).map { ($0.isASCII && !$0.isControlCharacter) ? Character($0) : "?" })
    }
}

// MARK: - C trampolines. Non-capturing; context comes through userdata. No
// Swift error crosses into C.

private func connection(_ p: UnsafeMutableRawPointer?) -> SSHConnection? {
    p.map { Unmanaged<SSHConnection>.fromOpaque($0).takeUnretainedValue() }
}

private func channel(_ p: UnsafeMutableRawPointer?) -> SSHChannel? {
    p.map { Unmanaged<SSHChannel>.fromOpaque($0).takeUnretainedValue() }
}

private func clampSize(_ v: Int32) -> Int { Int(min(max(v, 1), 1000)) }

private let channelOpenTrampoline: ssh_channel_open_request_session_callback = { session, userdata in
    guard let session, let c = connection(userdata) else { return nil }
    return c.openSessionChannel(session)
}

/// The wake descriptor's callback: its readiness has already ended the
/// poll(), which is all it is for; the caller empties it.
private let wakeReadable: ssh_event_callback = { _, _, _ in 0 }

/// Returns 1 so libssh sends its default refusal.
private let messageTrampoline: @convention(c) (ssh_session?, ssh_message?, UnsafeMutableRawPointer?) -> Int32 = {
    _, msg, userdata in
    if let msg, let c = connection(userdata) { c.unhandledMessage(msg) }
    return 1
}

private let dataTrampoline: ssh_channel_data_callback = { _, _, data, len, _, userdata in
    guard let ch = channel(userdata), let data, len > 0 else { return 0 }
    let bytes = [UInt8](UnsafeRawBufferPointer(start: data, count: Int(len)))
    ch.connection.pending.append(.data(ch, bytes))
    return Int32(clamping: len)
}

private let eofTrampoline: ssh_channel_eof_callback = { _, _, userdata in
    guard let ch = channel(userdata) else { return }
    ch.connection.pending.append(.eof(ch))
}

private let closeTrampoline: ssh_channel_close_callback = { _, _, userdata in
    guard let ch = channel(userdata), !ch.remoteClosed else { return }
    ch.remoteClosed = true
    ch.connection.pending.append(.closed(ch))
}

private let ptyTrampoline: ssh_channel_pty_request_callback = { _, _, term, width, height, _, _, userdata in
    guard let ch = channel(userdata) else { return 1 }
    guard !ch.hasPTY, !ch.hasProgram else {
        ch.connection.pending.append(.refused(ch, request: "pty", detail: ch.hasPTY ? "pty already allocated"
                                                                                    : "program already running"))
        return 1
    }
    ch.hasPTY = true
    let t = term.map { SSHConnection.safe(String(cString: $0), max: 64) } ?? ""
    ch.connection.pending.append(.ptyRequested(ch, term: t, columns: clampSize(width), rows: clampSize(height)))
    return 0
}

private let shellTrampoline: ssh_channel_shell_request_callback = { _, _, userdata in
    guard let ch = channel(userdata) else { return 1 }
    guard !ch.hasProgram else {
        ch.connection.pending.append(.refused(ch, request: "shell", detail: "program already running"))
        return 1
    }
    ch.hasProgram = true
    ch.connection.pending.append(.shellRequested(ch))
    return 0
}

private let execTrampoline: ssh_channel_exec_request_callback = { _, _, command, userdata in
    guard let ch = channel(userdata) else { return 1 }
    guard !ch.hasProgram else {
        ch.connection.pending.append(.refused(ch, request: "exec", detail: "program already running"))
        return 1
    }
    ch.hasProgram = true
    let bytes = command.map { [UInt8](UnsafeRawBufferPointer(start: $0, count: strlen($0))) } ?? []
    ch.connection.pending.append(.execRequested(ch, command: bytes))
    return 0
}

private let windowTrampoline: ssh_channel_pty_window_change_callback = { _, _, width, height, _, _, userdata in
    guard let ch = channel(userdata) else { return 1 }
    ch.connection.pending.append(.windowChanged(ch, columns: clampSize(width), rows: clampSize(height)))
    return 0
}

/// Always refuses; records the variable's name, never its value.
private let envTrampoline: ssh_channel_env_request_callback = { _, _, name, _, userdata in
    guard let ch = channel(userdata) else { return 1 }
    let n = name.map { SSHConnection.safe(String(cString: $0), max: 64) } ?? ""
    ch.connection.pending.append(.refused(ch, request: "env", detail: n))
    return 1
}

/// Always refuses (sftp, scp-over-subsystem, anything else).
private let subsystemTrampoline: ssh_channel_subsystem_request_callback = { _, _, name, userdata in
    guard let ch = channel(userdata) else { return 1 }
    let n = name.map { SSHConnection.safe(String(cString: $0), max: 64) } ?? ""
    ch.connection.pending.append(.refused(ch, request: "subsystem", detail: n))
    return 1
}

/// libssh's thread-local log sink while a connection is on this thread (see
/// `SSHConnection.watchForAgentRequests`). Only one line is of interest; the
/// rest is dropped, as it was before (the log level was 0).
private let agentRequestLogged: ssh_logging_callback = { _, _, text, userdata in
    guard let text, let c = connection(userdata), strstr(text, agentRequestLogLine) != nil else { return }
    c.pending.append(.refused(nil, request: "auth-agent", detail: ""))
}

/// What libssh 0.10.6 logs (`SSH_LOG_PROTOCOL`, in `ssh_packet_channel_request`)
/// when it refuses auth-agent-req@openssh.com for lack of a callback.
private let agentRequestLogLine = "Received an auth-agent-req request"
