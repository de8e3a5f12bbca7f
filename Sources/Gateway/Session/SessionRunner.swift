import Foundation
import GatehouseCore
import CmdletPolicy
import CmdletShell
import Logging
import SSHServer

/// One SSH connection from accept to close, on its own thread: key exchange,
/// both authentication factors, then the session channels. Everything that
/// touches the libssh session stays on this thread.
final class SessionRunner {
    let connection: SSHConnection
    let gateway: NetworkContext
    let session = SessionID.random()
    var logger: Logger
    private(set) var channels: [Int: ShellChannel] = [:]
    private(set) var user: UserName?
    /// What the session may ask of the privileged side; set with `user`.
    private(set) var privileges: SessionPrivileges?
    private var endReason = "disconnect"
    /// The asciicast recording (issue 5), failing closed.
    let recorder = SessionRecorder()
    /// The running command's flag, so a failed recording can stop it.
    private(set) var running: CancellationFlag?
    /// The elevations this session held at the last look, to tell the user
    /// when one ends (see SessionRunner+Elevation.swift).
    var knownElevations: [Int64: RoleGrant] = [:]
    /// This session's interpreter: its Enter-Elevation handler and Lockbox
    /// commands act for this session.
    private var interpreter: CmdletInterpreter?
    /// Session limits (idle, lifetime, kill), see SessionRunner+Limits.swift.
    var limits: SessionLimitsState?
    /// What wakes this session's poll() from other threads (kill, shutdown,
    /// a revoked grant); registered in `SessionRegistry`. nil only when the
    /// node is out of descriptors, and then the session is refused.
    let wake = SessionWake()

    /// The monitor, which decides authentication and holds every privileged
    /// operation; this connection's number on its channel.
    private let monitor: MonitorClient
    private let monitorConnection: UInt64

    init(connection: SSHConnection, gateway: NetworkContext, monitor: MonitorClient, monitorConnection: UInt64) {
        self.connection = connection
        self.gateway = gateway
        self.monitor = monitor
        self.monitorConnection = monitorConnection
        var logger = gateway.logger
        logger[metadataKey: "session"] = "\(session)"
        logger[metadataKey: "peer"] = "\(connection.peerAddress)"
        if let balancer = connection.balancerAddress { logger[metadataKey: "balancer"] = "\(balancer)" }
        self.logger = logger
    }

    /// `preAuthRelease` is called exactly once, when the connection leaves
    /// the unauthenticated state (the accept loop counted it).
    func run(preAuthRelease: (PreAuthLimits.Outcome) -> Void = { _ in }) {
        defer { connection.close() }
        // Until a session is open, the monitor forgets the connection when it goes.
        var sessionOpen = false
        defer { if !sessionOpen { _ = try? monitor.call(monitorConnection, .closeConnection) } }
        do {
            try connection.handshake()
        } catch {
            logger.debug("key exchange failed: \(error)")
            preAuthRelease(.noAuth)
            return
        }
        let authenticator = GatewayAuthenticator(monitor: monitor, connection: monitorConnection, session: session,
                                                 peer: connection.peerAddress, balancer: connection.balancerAddress)
        let name: String
        do {
            name = try connection.authenticate(authenticator)
        } catch {
            logger.info("authentication failed: \(error)")
            preAuthRelease(authenticator.failures > 0 ? .authFailed : .noAuth)
            return
        }
        preAuthRelease(.authenticated)
        guard !authenticator.auditFailed, let user = UserName(name) else {
            connection.disconnect(message: "audit log unavailable")
            return
        }
        self.user = user
        let privileges: SessionPrivileges
        do {
            privileges = try MonitoredSessionPrivileges(
                client: monitor, connection: monitorConnection, user: user, session: session,
                transcriptDirectory: gateway.configuration.transcriptDirectory,
                currentRules: { [gateway] in gateway.snapshot.lockboxRules })
        } catch {
            logger.error("the monitor did not open the session", metadata: ["error": "\(error)"])
            connection.disconnect(message: "The gateway cannot open a session now; try again later.")
            return
        }
        sessionOpen = true
        self.privileges = privileges
        // A session refused below never started: it ends on the monitor without an end event.
        var started = false
        defer { if !started { try? privileges.end(reason: "session refused", fields: nil) } }
        let box = UnownedRunner(self)
        interpreter = CmdletInterpreter(audit: privileges.audit, clock: gateway.clock, executor: privileges.executor,
                                        elevationHandler: { id, output in box.runner.beginElevation(id, output: output) },
                                        commandProvider: privileges.lockboxCommands)
        logger[metadataKey: "user"] = "\(user)"
        guard wake != nil else {
            logger.error("no descriptor for the session's wake-up pipe; session refused")
            connection.disconnect(message: "The gateway is out of resources; try again later.")
            return
        }
        guard admit(user) else { return }
        defer { gateway.sessions.remove(session) }
        var startFields = ["source": connection.peerAddress, "node": gateway.configuration.nodeName]
        if let balancer = connection.balancerAddress { startFields["balancer"] = balancer }
        guard audit(.sessionStart, startFields) else {
            connection.disconnect(message: "audit log unavailable; session refused")
            return
        }
        started = true
        logger.info("session started")
        serveChannels()
        // Free the user's slot before the (fsync'd) audit write, so a user
        // who reconnects at once is not refused by their own ended session.
        gateway.sessions.remove(session)
        recorder.close(reason: endReason)
        var endFields = ["reason": endReason]
        if let path = recorder.path { endFields["transcript"] = path }
        // The session's grants end with it (a grant never outlives its
        // session), and the monitor records the end.
        do {
            try privileges.end(reason: "session ended", fields: endFields)
        } catch {
            logger.error("the session's end was not recorded", metadata: ["error": "\(error)"])
        }
        logger.info("session ended", metadata: ["reason": "\(endReason)"])
    }

    // MARK: - Channels

    /// The session loop. It sleeps in one poll() (the SSH socket and the
    /// session's wake pipe) until an event or the next deadline, and after
    /// each wake-up looks at everything: what a wake-up announces (kill,
    /// shutdown, a revoked grant) lives in the registry and the Lockbox, so a
    /// wake-up only has to end the sleep.
    private func serveChannels() {
        while true {
            let events: [SSHSessionEvent]
            do {
                events = try connection.nextEvents(timeoutMilliseconds: Self.milliseconds(until: nextDeadline(),
                                                                                          now: gateway.clock.now()),
                                                   wake: wake?.fd ?? -1)
            } catch {
                endReason = "error"
                logger.info("connection error: \(error)")
                return
            }
            wake?.drain()
            for event in events {
                noteInput(event)
                if !handle(event) { return }
            }
            noticeEndedElevations(on: nil)
            // A transcript write that failed in the background (disk full)
            // ends the session at the next turn, not at the next command.
            if let state = channels.values.first(where: { $0.started && $0.channel.isOpen }),
               endForRecordFailure(state) {
                return
            }
            if let request = checkLimits() {
                endReason = request.reason
                endSession(request.message)
                return
            }
            if gateway.isShuttingDown {
                endReason = "shutdown"
                for state in channels.values where state.channel.isOpen {
                    try? state.channel.write(Array("\r\nThe gateway is shutting down.\r\n".utf8), stderr: true)
                }
                connection.disconnect(message: "gateway shutting down")
                return
            }
        }
    }

    /// The poll() timeout that wakes the loop at `deadline`: rounded up, so
    /// the loop never wakes before what it woke for is due; -1 (no timeout)
    /// when nothing is due.
    static func milliseconds(until deadline: Date?, now: Date) -> Int {
        guard let deadline else { return -1 }
        let ms = (deadline.timeIntervalSince(now) * 1000).rounded(.up)
        return ms <= 0 ? 0 : Int(min(ms, Double(Int32.max)))
    }

    /// Returns false when the connection is gone.
    private func handle(_ event: SSHSessionEvent) -> Bool {
        switch event {
        case .channelOpened(let channel):
            channels[channel.id] = ShellChannel(channel: channel)
        case .ptyRequested(let channel, let term, let columns, let rows):
            channels[channel.id]?.pty = (term, columns, rows)
        case .windowChanged(let channel, let columns, let rows):
            if let state = channels[channel.id], let pty = state.pty {
                state.pty = (pty.term, columns, rows)
                recorder.resize(columns: columns, rows: rows)
            }
        case .shellRequested(let channel):
            guard let state = channels[channel.id], !state.started else { break }
            state.started = true
            startRecording(state, command: nil)
            if endForRecordFailure(state) { return false }
            state.startShell(completer: { [unowned self] typed in self.complete(typed) })
            // The terminal marks pastes, so a pasted block is shown before it runs.
            if state.pty != nil { write(state, LineEditor.bracketedPasteOn, stderr: false, raw: true) }
            write(state, Array(banner().utf8), stderr: false)
            prompt(state)
        case .execRequested(let channel, let command):
            guard let state = channels[channel.id], !state.started else { break }
            state.started = true
            startRecording(state, command: command)
            if endForRecordFailure(state) { return false }
            let status: Int32
            switch runLine(command, on: state) {
            case .endSession: status = 0
            case .completed(let exitStatus): status = exitStatus
            }
            finish(state, status: status)
            if endForRecordFailure(state) { return false }
            // The command ran to its end: a disconnect that follows is the
            // client leaving normally, as after `exit` in a shell.
            endReason = "exit"
        case .data(let channel, let bytes):
            guard let state = channels[channel.id], state.isInteractive else { break }
            feed(bytes, to: state)
        case .eof(let channel):
            if let state = channels[channel.id], state.isInteractive, state.channel.isOpen {
                finish(state, status: state.lastStatus)
            }
        case .closed(let channel):
            channels[channel.id] = nil
            channel.close()     // release it now, not at connection close
        case .refused(let channel, let request, let detail):
            var fields = ["request": request, "detail": TerminalText.sanitize(String(detail.prefix(256)), keepLineBreaks: false)]
            if let channel { fields["channel"] = String(channel.id) }
            _ = audit(.channelRefused, fields)
        case .disconnected:
            return false
        }
        return true
    }

    /// Feeds typed bytes one at a time, so that a line which opens the
    /// secret prompt hides the very next byte.
    private func feed(_ bytes: [UInt8], to state: ShellChannel) {
        // Typed bytes are recorded in runs, hidden or not as decided per
        // byte: a secret typed ahead in the same packet as Enter-Elevation
        // is hidden too. Of a hidden run only a marker is recorded, and its
        // bytes are not even collected here.
        var visible: [UInt8] = []
        var hidden = false
        func flushInput() {
            if hidden { recorder.hiddenInput() } else if !visible.isEmpty { recorder.input(visible) }
            visible = []
            hidden = false
        }
        defer { flushInput() }
        for byte in bytes {
            guard state.channel.isOpen, state.isInteractive else { return }
            if state.isSecretPromptOpen {
                if !visible.isEmpty { flushInput() }
                hidden = true
            } else {
                if hidden { flushInput() }
                visible.append(byte)
            }
            switch state.feed(byte) {
            case .edited(let echo, let events):
                if !echo.isEmpty { write(state, echo, stderr: false, raw: true) }
                if !handleLineEvents(events, on: state) { return }
            case .secretTyping:
                break
            case .secretEntered:
                if let prompt = state.takeSecret() {
                    let requestID = prompt.requestID
                    finishElevation(requestID, secret: prompt.typed(), on: state)
                }
                if !afterSecretPrompt(state) { return }
            case .secretCancelled:
                write(state, Array("\nEnter-Elevation cancelled; nothing was redeemed.\n".utf8), stderr: true)
                state.lastStatus = 1
                if !afterSecretPrompt(state) { return }
            }
        }
    }

    /// The secret prompt closed: a fresh prompt, unless the channel is gone.
    private func afterSecretPrompt(_ state: ShellChannel) -> Bool {
        guard state.channel.isOpen else { return false }
        prompt(state)
        return true
    }

    /// Returns false when the channel was finished.
    private func handleLineEvents(_ events: [LineEditor.Event], on state: ShellChannel) -> Bool {
        for event in events {
            guard state.channel.isOpen else { return false }
            switch event {
            case .line(let line):
                switch runLine(line, on: state) {
                case .endSession:
                    endReason = "exit"
                    finish(state, status: 0)
                    return false
                case .completed(let status):
                    state.lastStatus = status
                }
            case .tooLong:
                write(state, Array("Line too long (the limit is \(Lexer.maxLineBytes) bytes); nothing was run.\n".utf8), stderr: true)
                state.lastStatus = 2
            case .interrupt, .pasteDiscarded:
                break
            case .showCandidates(let names):
                // Like a shell's second Tab: the candidates in columns, then the
                // prompt and the line typed so far, ready to go on.
                write(state, Array(("\n" + state.candidateColumns(names)).utf8), stderr: false)
                prompt(state)
                if let line = state.editor?.echoOfLine { write(state, line, stderr: false, raw: true) }
                continue
            case .endOfInput:
                endReason = "exit"
                finish(state, status: state.lastStatus)
                return false
            }
            if endForRecordFailure(state) { return false }
            // No fresh prompt when the session is about to end (a kill or the
            // lifetime stopped that command): the goodbye follows at once.
            // A line that opened the secret prompt gets no prompt either:
            // the secret's own prompt is showing; later events on it are
            // stale (typed ahead in the same byte, never).
            if !state.isSecretPromptOpen && gateway.sessions.endRequest(session) == nil { prompt(state) }
        }
        return true
    }

    /// Tab completion with the claim as of now: only what the caller may run.
    private func complete(_ typed: [UInt8]) -> (addition: [UInt8], candidates: [String]) {
        guard let privileges else { return ([], []) }
        let snapshot = gateway.snapshot
        let claim = privileges.claim(now: gateway.clock.now(), rules: snapshot.lockboxRules)
        return Completion.candidates(line: typed, claim: claim, snapshot: snapshot.policy,
                                     provided: LockboxCommands.declared.map(\.definition))
    }

    /// Runs one line through the gate pipeline with the claim as of now.
    private func runLine(_ line: [UInt8], on state: ShellChannel) -> LineOutcome {
        guard let privileges, let interpreter else { return .completed(exitStatus: 126) }
        noticeEndedElevations(on: state)
        let output = ChannelOutput(runner: self, state: state)
        // One flag, set by whatever must stop the backend: a kill, the
        // shutdown or a revocation (through the registry, from another
        // thread), or one of this session's deadlines (the executor wakes for
        // them: ChannelOutput.secondsUntilNextTick).
        let cancellation = CancellationFlag()
        gateway.sessions.setRunning(session, cancellation)
        running = cancellation
        defer {
            running = nil
            gateway.sessions.setRunning(session, nil)
            commandFinished()
        }
        recorder.flush()
        defer { recorder.flush() }
        return CommandStep(gateway: gateway, privileges: privileges, interpreter: interpreter, session: session)
            .run(line, output: output, cancellation: cancellation)
    }

    /// While a backend runs: what the client sent is read now, so Ctrl-C on
    /// this shell's pty interrupts the backend (SIGINT to its group, SIGKILL
    /// after the grace; what was typed before it is dropped, as a terminal
    /// flushes type-ahead on ^C), and a client that left stops it. Everything
    /// else waits for the session loop, in order (`requeue`).
    func readInputWhileRunning(on state: ShellChannel) {
        guard let running else { return }
        let events = (try? connection.nextEvents(timeoutMilliseconds: 0)) ?? []
        var keep: [SSHSessionEvent] = []
        keep.reserveCapacity(events.count)
        for event in events {
            switch event {
            case .data(let channel, let bytes) where channel === state.channel && state.pty != nil:
                if let last = bytes.lastIndex(of: 0x03) {
                    running.interrupt()
                    if last + 1 < bytes.endIndex { keep.append(.data(channel, Array(bytes[(last + 1)...]))) }
                } else {
                    keep.append(event)
                }
            case .disconnected:
                running.cancel(reason: "the client disconnected")
                keep.append(event)
            case .closed(let channel) where channel === state.channel:
                running.cancel(reason: "the client closed the channel")
                keep.append(event)
            default:
                keep.append(event)
            }
        }
        connection.requeue(keep)
    }

    // MARK: - Transcript and fail-closed audit (issue 5)

    private func startRecording(_ state: ShellChannel, command: [UInt8]?) {
        guard gateway.configuration.recordTranscripts, let user, let privileges else { return }
        let claim = privileges.claim(now: gateway.clock.now(), rules: nil)
        recorder.open(creating: privileges.createTranscript, path: privileges.transcriptPath, session: session,
                      user: user, node: gateway.configuration.nodeName, client: connection.peerAddress,
                      balancer: connection.balancerAddress, claim: claim,
                      term: state.pty?.term, columns: state.pty?.columns ?? 80, rows: state.pty?.rows ?? 24,
                      channel: command == nil ? "shell" : "exec",
                      command: command.map { String(decoding: $0, as: UTF8.self) })
    }

    /// What can no longer record this session, or nil (see SessionRecorder).
    private func recordFailure() -> String? {
        recorder.unrecordable(auditFailed: gateway.auditFailed) { failure in
            logger.error("transcript failed; the session ends", metadata: ["error": "\(failure)"])
            _ = audit(.transcriptFailed, ["error": failure, "directory": gateway.configuration.transcriptDirectory])
        }
    }

    /// While a backend runs: a transcript that stopped recording stops it
    /// too (at the executor's next wake-up, which its next output is), so
    /// unrecorded output stays bounded.
    func stopIfUnrecorded() {
        if let running, recorder.transcriptFailure != nil { running.cancel(reason: "session recording is unavailable") }
    }

    /// Every session is recorded, so when its audit log or its transcript
    /// can no longer be written the session ends (exit 125): the gateway
    /// fails closed rather than run unrecorded commands.
    private func endForRecordFailure(_ state: ShellChannel) -> Bool {
        guard let what = recordFailure() else { return false }
        endReason = "error"
        write(state, Array("\(what); the session ends.\n".utf8), stderr: true)
        finish(state, status: ExitStatus.auditUnavailable)
        connection.disconnect(message: what.prefix(1).lowercased() + what.dropFirst())
        return true
    }

    /// Says goodbye on every open channel, then disconnects with `message`.
    private func endSession(_ message: String) {
        for state in channels.values where state.channel.isOpen {
            write(state, Array("\n\(message)\n".utf8), stderr: true)
            leaveTerminalAsFound(state)
            state.channel.sendExitStatus(state.lastStatus == 0 ? 1 : state.lastStatus)
        }
        connection.disconnect(message: message)
    }

    /// Writes `text` (a warning) on stderr to every started channel; the
    /// prompt is drawn again after it, unless a command is running (its
    /// output continues instead).
    func broadcast(_ text: String, duringCommand: Bool = false) {
        for state in channels.values where state.channel.isOpen && state.started {
            write(state, Array("\n\(text)\n".utf8), stderr: true)
            if state.isInteractive && !duringCommand { prompt(state) }
        }
    }

    func finish(_ state: ShellChannel, status: Int32) {
        guard state.channel.isOpen else { return }
        leaveTerminalAsFound(state)
        state.channel.sendExitStatus(status)
        state.channel.sendEOF()
        state.channel.close()
    }

    /// The client's terminal stops marking pastes: the shell it returns to may not expect them.
    private func leaveTerminalAsFound(_ state: ShellChannel) {
        if state.isInteractive && state.pty != nil { write(state, LineEditor.bracketedPasteOff, stderr: false, raw: true) }
    }

    func prompt(_ state: ShellChannel) {
        guard state.pty != nil, let user else { return }
        write(state, Array("gatehouse \(user)\(elevationPromptSuffix())> ".utf8), stderr: false, raw: true)
    }

    private func banner() -> String {
        guard let privileges else { return "" }
        let claim = privileges.claim(now: gateway.clock.now(), rules: nil)
        let roles = claim.grants.map(\.role)
        return """
        Gatehouse constrained shell on \(gateway.configuration.nodeName). Session \(session).
        Roles: \(roles.isEmpty ? "none" : roles.joined(separator: ", ")). Get-Command lists what you may run; exit leaves.
        \(LockboxCommands.bannerLine)

        """
    }

    /// Writes to the channel, and to the recording; see
    /// `ShellChannel.terminalBytes` for `raw`.
    func write(_ state: ShellChannel, _ bytes: [UInt8], stderr: Bool, raw: Bool = false) {
        guard state.channel.isOpen, !bytes.isEmpty else { return }
        let out = state.terminalBytes(bytes, raw: raw)
        recorder.output(out)
        do {
            try state.channel.write(out, stderr: stderr && state.pty == nil)
        } catch let error as SSHError where error.kind == .timeout {
            // A client that stops reading must not hold this thread (or the
            // backend's output) forever: end the session, stopping any backend.
            logger.info("channel write timed out; ending the session", metadata: ["error": "\(error)"])
            state.channel.close()
            _ = gateway.sessions.requestEnd(session, .init(reason: "io-timeout",
                                                           message: "The client stopped reading output."))
        } catch {
            logger.debug("channel write failed: \(error)")
        }
    }

    @discardableResult
    func audit(_ kind: AuditEventKind, _ fields: [String: String]) -> Bool {
        // Only an open session reports events; before it, the authenticator does.
        guard let privileges else { return false }
        do {
            try privileges.audit.record(AuditEvent(time: gateway.clock.now(), kind: kind, user: user?.rawValue,
                                                   session: session, fields: fields))
            return true
        } catch {
            logger.error("audit write failed: \(error)")
            return false
        }
    }

    /// Relays a command's output to the channel it came from.
    final class ChannelOutput: SensitiveOutput {
        unowned let runner: SessionRunner
        let state: ShellChannel
        init(runner: SessionRunner, state: ShellChannel) {
            self.runner = runner
            self.state = state
        }
        func stdout(_ bytes: [UInt8]) { runner.write(state, bytes, stderr: false) }
        func stderr(_ bytes: [UInt8]) { runner.write(state, bytes, stderr: true) }
        var terminalColumns: Int? { state.pty.map(\.columns) }
        /// The session's deadlines while the backend runs: a lifetime
        /// warning is said now, not after the command (which the logoff may
        /// cut short); the logoff and the end of the command's grant stop it.
        func tick() {
            if let running = runner.running { runner.checkDeadlinesWhileRunning(running) }
            runner.stopIfUnrecorded()
            // A blocking channel write reads packets too: a Ctrl-C it read is
            // in the connection's queue, not on the socket.
            if runner.connection.hasPendingEvents { inputReady() }
        }
        var secondsUntilNextTick: Double? { runner.secondsUntilDeadlineWhileRunning() }
        var inputDescriptor: Int32 { runner.connection.socketDescriptor }
        func inputReady() { runner.readInputWhileRunning(on: state) }
        /// The one-time secret: straight to this channel, bypassing `write`,
        /// so whatever records session output must never see it.
        func sensitive(_ bytes: [UInt8]) { runner.writeUnrecorded(state, bytes) }
    }
}
