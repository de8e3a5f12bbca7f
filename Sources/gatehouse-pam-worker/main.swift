// gatehouse-pam-worker: runs PAM transactions for the daemon, one at a
// time, on the PacketChannel it inherits as descriptor 3 (PAMWorkerPool
// spawns it). PAM modules are not built to run on many threads of one
// process; here each runs on this process's only thread, and a module that
// crashes or hangs costs one worker, not the daemon.
//
// Each `begin` is one full PAMTransaction (start, authenticate, acct_mgmt,
// end); the modules stay loaded between transactions (PAMModulePins). The
// worker exits at the end of its socket (status 0), and on a message out of
// order or malformed (status 3), after saying why on standard error. The
// answers it relays to PAM are never written anywhere else.
import GatehouseCore
import Glibc
import PAMAuth
import PAMWorkers

/// The daemon's end, and what a conversation call learnt about it.
final class Link {
    let channel: PacketChannel
    /// The daemon closed its end: nothing more is sent.
    var ended = false
    /// The daemon broke the protocol: the worker exits after the transaction.
    var violation: String?

    init(_ channel: consuming PacketChannel) { self.channel = channel }

    /// The next request; nil at the end or on a protocol violation (recorded).
    func receive() -> PAMWorkerRequest? {
        let received: PacketChannel.Received
        do {
            received = try channel.receive(maxBytes: PAMWorkerProtocol.maxPacketBytes)
        } catch {
            violation = "unreadable request: \(error)"
            return nil
        }
        switch consume received {
        case .endOfStream:
            ended = true
            return nil
        case .packet(var packet):
            // The packet may hold answers: wipe it once decoded.
            defer { PacketChannel.wipe(&packet.bytes) }
            do {
                return try PAMWorkerProtocol.decodeRequest(packet.bytes)
            } catch {
                violation = "malformed request: \(error)"
                return nil
            }
        }
    }

    /// Sends `reply`; false when the protocol cannot carry it (reported) or the daemon is gone.
    func send(_ reply: PAMWorkerReply) -> Bool {
        let packet: [UInt8]
        do {
            packet = try PAMWorkerProtocol.encode(reply)
        } catch {
            report("a reply the protocol does not carry: \(error)")
            return false
        }
        do {
            try channel.send(packet)
            return true
        } catch {
            ended = true
            return false
        }
    }
}

/// PAM's conversation function, relayed to the daemon: each call is one
/// `conversation` out and one `answers` (or `cancel`) back.
final class RelayedConversation: PAMConversation {
    let link: Link

    init(_ link: Link) { self.link = link }

    func converse(_ messages: [PAMMessage]) -> [String?]? {
        guard !link.ended, link.violation == nil else { return nil }
        // More messages or longer text than the protocol carries fails the
        // call (PAM_CONV_ERR) rather than showing the client a cut prompt.
        guard link.send(.conversation(messages)) else { return nil }
        switch link.receive() {
        case .answers(let answers)? where answers.count == messages.count:
            return answers
        case .answers?:
            link.violation = "answers do not match the messages"
            return nil
        case .begin?:
            link.violation = "begin inside a conversation"
            return nil
        case .cancel?, nil:
            return nil
        }
    }
}

/// One line on standard error, which the daemon's journal keeps.
func report(_ line: String) {
    let text = Array("gatehouse-pam-worker[\(getpid())]: \(line)\n".utf8)
    _ = text.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

/// Serves transactions until the daemon closes its end.
func serve(_ link: Link) -> Int32 {
    while true {
        guard let request = link.receive() else { break }
        guard case .begin(let service, let user, let remoteHost) = request else {
            link.violation = "a request other than begin while idle"
            break
        }
        let result: PAMWorkerResult
        do {
            let transaction = try PAMTransaction(service: service, user: user, remoteHost: remoteHost,
                                                 conversation: RelayedConversation(link))
            defer { transaction.end() }
            try transaction.authenticate()
            try transaction.accountManagement()
            result = .success
        } catch let error as PAMError {
            result = .failure(error)
        } catch {
            result = .failure(PAMError(code: PAMError.systemError, message: "\(error)"))
        }
        if link.ended || link.violation != nil { break }
        guard link.send(.result(result)) else { break }
    }
    if let violation = link.violation {
        report("\(violation); exiting")
        return 3
    }
    return 0
}

// The channel came without close-on-exec (that is how it crossed the
// exec); set it again, so that a helper a module runs (unix_chkpwd,
// pam_exec's program) cannot talk to the daemon in the worker's name.
guard fcntl(3, F_SETFD, FD_CLOEXEC) == 0 else {
    report("descriptor 3 is not open: start me through PAMWorkerPool")
    exit(2)
}
exit(serve(Link(PacketChannel(adopting: OwnedFileDescriptor(adopting: 3)))))
