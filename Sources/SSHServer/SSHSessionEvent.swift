/// What happened on an authenticated connection during one
/// `SSHConnection.nextEvents` call, in the order libssh reported it.
///
/// libssh has already replied to each request when the event is delivered
/// (success for pty/shell/exec/window-change, failure for everything in
/// `.refused`), so data the caller writes in response always follows the
/// reply on the wire.
public enum SSHSessionEvent {
    /// A session channel was accepted (count bounded by `maxChannelsPerConnection`).
    case channelOpened(SSHChannel)
    /// pty-req accepted; sizes clamped to 1...1000. `term` is at most 64 printable ASCII bytes.
    case ptyRequested(SSHChannel, term: String, columns: Int, rows: Int)
    /// shell accepted (only one shell or exec per channel).
    case shellRequested(SSHChannel)
    /// exec accepted; the raw command line as the client sent it (not
    /// necessarily UTF-8; the caller's interpreter decides).
    case execRequested(SSHChannel, command: [UInt8])
    /// window-change; sizes clamped to 1...1000.
    case windowChanged(SSHChannel, columns: Int, rows: Int)
    /// Bytes on the channel's stdin (stderr-flagged data from a client is
    /// delivered here too).
    case data(SSHChannel, [UInt8])
    /// The client sent EOF; it may still read.
    case eof(SSHChannel)
    /// The client closed the channel. Call `SSHChannel.close()` to release it.
    case closed(SSHChannel)
    /// Something the gateway does not allow, already refused by the time this
    /// is delivered; recorded for the audit log. `request` is e.g. "env",
    /// "subsystem", "x11", "auth-agent", "direct-tcpip", "tcpip-forward",
    /// "channel-open", "shell", "exec", "pty"; `detail` never carries an env
    /// value. An "auth-agent" refusal names no channel: libssh refuses it
    /// itself and does not say on which channel (see `watchForAgentRequests`).
    case refused(SSHChannel?, request: String, detail: String)
    /// The peer is gone or the connection failed; no further events.
    case disconnected
}
