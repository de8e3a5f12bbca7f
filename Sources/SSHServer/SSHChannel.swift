import CLibSSH

/// One session channel and its `ssh_channel` handle.
///
/// Owned by its `SSHConnection` and confined to the connection's thread. The
/// heap-allocated callbacks struct that libssh points at belongs to the
/// connection and outlives this handle (libssh keeps the pointer, not a copy).
public final class SSHChannel {
    /// Unique within the connection, assigned in open order from 1.
    public let id: Int
    var handle: ssh_channel?
    unowned let connection: SSHConnection
    let callbacks: UnsafeMutablePointer<ssh_channel_callbacks_struct>

    // Request bookkeeping: one pty and one shell/exec per channel.
    var hasPTY = false
    var hasProgram = false
    var remoteClosed = false
    var localClosed = false

    init(id: Int, handle: ssh_channel, connection: SSHConnection,
         callbacks: UnsafeMutablePointer<ssh_channel_callbacks_struct>) {
        self.id = id
        self.handle = handle
        self.connection = connection
        self.callbacks = callbacks
    }

    /// True until either side closed the channel.
    public var isOpen: Bool { handle != nil && !localClosed && !remoteClosed }

    /// Sends bytes on stdout or stderr (`ssh_channel_write` /
    /// `ssh_channel_write_stderr`). Blocks until the client's window admits
    /// all of it, at most `ioTimeoutSeconds`.
    public func write(_ bytes: [UInt8], stderr: Bool = false) throws {
        guard let h = handle, !localClosed else {
            throw SSHError(.channelClosed, operation: "ssh_channel_write", detail: "channel \(id) is closed")
        }
        guard !bytes.isEmpty else { return }
        var offset = 0
        while offset < bytes.count {
            let chunk = min(bytes.count - offset, 32 * 1024)
            let n = bytes[offset..<(offset + chunk)].withUnsafeBytes { buf -> Int32 in
                stderr ? ssh_channel_write_stderr(h, buf.baseAddress, UInt32(buf.count))
                       : ssh_channel_write(h, buf.baseAddress, UInt32(buf.count))
            }
            if n == SSH_ERROR || n < 0 {
                throw SSHError(.library, operation: stderr ? "ssh_channel_write_stderr" : "ssh_channel_write",
                               detail: connection.errorText())
            }
            if n == 0 {
                // libssh gave up waiting for the client to open its window
                // (SSH_OPTIONS_TIMEOUT = ioTimeoutSeconds) and wrote nothing.
                // Retrying would block this thread forever on a client that
                // stopped reading; fail instead.
                throw SSHError(.timeout, operation: stderr ? "ssh_channel_write_stderr" : "ssh_channel_write",
                               detail: "the client has not read its output for \(connection.config.ioTimeoutSeconds)s")
            }
            offset += Int(n)
        }
    }

    /// `ssh_channel_request_send_exit_status`: what `ssh` returns as its own
    /// exit code. Send before `sendEOF`/`close`. Errors are ignored: the
    /// client may already be gone.
    public func sendExitStatus(_ status: Int32) {
        guard let h = handle, !localClosed, !remoteClosed else { return }
        _ = ssh_channel_request_send_exit_status(h, status)
    }

    /// `ssh_channel_send_eof`: no more output from us. Errors are ignored.
    public func sendEOF() {
        guard let h = handle, !localClosed, !remoteClosed else { return }
        _ = ssh_channel_send_eof(h)
    }

    /// `ssh_channel_close` then `ssh_channel_free` (after detaching our
    /// callbacks so libssh cannot call back into a released object). Idempotent.
    public func close() {
        guard let h = handle else { return }
        handle = nil
        localClosed = true
        _ = ssh_channel_close(h)
        _ = ssh_remove_channel_callbacks(h, callbacks)
        ssh_channel_free(h)
        connection.channelReleased(self, handle: h)
    }
}

@available(*, unavailable)
extension SSHChannel: Sendable {}
