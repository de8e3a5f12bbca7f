import GatehouseCore
import Glibc
import Logging
import Synchronization

/// Why a conversation failed on the worker's side rather than in PAM: no
/// worker could be started, or it sent something malformed, out of order or
/// oversized, went silent past the deadline, or died. The login fails.
public struct PAMWorkerError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Runs each PAM conversation in a `gatehouse-pam-worker` process, never on
/// the daemon's threads: PAM modules are not built to run concurrently on
/// threads of one process, and a module that crashes or hangs takes only
/// its worker with it (issue 11).
///
/// A conversation borrows an idle worker, or spawns one (`posix_spawn`) when
/// none is idle, up to `capacity` at once, and returns it after the result;
/// workers keep their modules loaded between conversations. A worker that
/// breaks the protocol, says nothing before the deadline or dies is killed
/// (`SIGKILL`, then `waitpid`) and never lent again; its conversation fails.
public final class PAMWorkerPool: Sendable {
    private let executable: String
    private let capacity: Int
    private let idleLimit: Int
    private let conversationTimeout: Duration
    private let environment: [String]?
    private let logger: Logger
    private let state = Mutex(State())

    private struct State {
        var idle: [Worker] = []
        /// Every worker alive, lent or idle.
        var processIDs: Set<pid_t> = []
        /// Spawns under way, counted against `capacity` before they have a pid.
        var starting = 0
        var closed = false
    }

    /// - Parameters:
    ///   - executable: the worker program (`gatehouse-pam-worker` in the libexec directory).
    ///   - capacity: workers alive at once; a conversation beyond it fails.
    ///   - idleLimit: idle workers kept for the next logins; more are let go.
    ///   - conversationTimeout: the login grace time; a worker that has not
    ///     finished by then (blocked in a module, or its client gone) is killed.
    ///   - environment: the workers' environment (`NAME=value`); nil passes
    ///     this process's own on, as the daemon does (pam_wrapper's variables
    ///     in the tests and the demo must reach the worker).
    public init(executable: String, capacity: Int, idleLimit: Int, conversationTimeout: Duration, logger: Logger,
                environment: [String]? = nil) {
        self.executable = executable
        self.capacity = max(1, capacity)
        self.idleLimit = max(0, idleLimit)
        self.conversationTimeout = conversationTimeout
        self.environment = environment
        self.logger = logger
    }

    /// The process ids of the workers alive now, lent or idle.
    public var processIDs: Set<pid_t> { state.withLock { $0.processIDs } }

    /// Runs one PAM transaction for `user` against `service` in a worker
    /// (`pam_start` with `PAM_RHOST` = `remoteHost`, `pam_authenticate`,
    /// `pam_acct_mgmt`, `pam_end`), relaying each conversation call to
    /// `conversation` on this thread. Returns on success; throws `PAMError`
    /// when PAM refused, `PAMWorkerError` when the worker failed.
    public func authenticate(service: String, user: String, remoteHost: String,
                             conversation: PAMConversation) throws {
        let deadline = ContinuousClock.now + conversationTimeout
        let begin: [UInt8]
        do {
            begin = try PAMWorkerProtocol.encode(.begin(service: service, user: user, remoteHost: remoteHost))
        } catch {
            throw PAMWorkerError("cannot start a PAM conversation: \(error)")
        }
        let worker = try lend()
        let result: PAMWorkerResult
        do {
            result = try run(worker, begin: begin, conversation: conversation, until: deadline)
        } catch {
            logger.error("PAM worker failed; the login fails and the worker is killed",
                         metadata: ["pid": "\(worker.pid)", "user": "\(user)", "reason": "\(error)"])
            kill(worker)
            throw error
        }
        giveBack(worker)
        if case .failure(let error) = result { throw error }
    }

    /// Lets every idle worker go and refuses to keep any from now on.
    public func shutdown() {
        let idle = state.withLock { state in
            state.closed = true
            defer { state.idle = [] }
            return state.idle
        }
        for worker in idle { retire(worker) }
    }

    // MARK: - One conversation

    private func run(_ worker: Worker, begin: [UInt8], conversation: PAMConversation,
                     until deadline: ContinuousClock.Instant) throws(PAMWorkerError) -> PAMWorkerResult {
        try send(begin, to: worker)
        while true {
            switch try receive(from: worker, until: deadline) {
            case .result(let result):
                return result
            case .conversation(let messages):
                // A client that gave up, or answered what the protocol cannot
                // carry (over 1 KiB, a NUL), fails PAM's conversation call;
                // the worker is not at fault.
                guard let answers = conversation.converse(messages), answers.count == messages.count,
                      var packet = try? PAMWorkerProtocol.encode(.answers(answers)) else {
                    try send(Self.cancel, to: worker)
                    continue
                }
                defer { PacketChannel.wipe(&packet) }
                try send(packet, to: worker)
            }
        }
    }

    private static let cancel = try! PAMWorkerProtocol.encode(.cancel)

    private func send(_ packet: [UInt8], to worker: Worker) throws(PAMWorkerError) {
        do {
            try worker.channel.send(packet)
        } catch {
            throw PAMWorkerError("cannot write to the worker: \(error)")
        }
    }

    private func receive(from worker: Worker, until deadline: ContinuousClock.Instant) throws(PAMWorkerError)
        -> PAMWorkerReply {
        let received: PacketChannel.Received
        do {
            guard try worker.channel.waitForInput(until: deadline) else {
                throw PAMWorkerError("no reply within the login grace time (\(conversationTimeout))")
            }
            received = try worker.channel.receive(maxBytes: PAMWorkerProtocol.maxPacketBytes)
        } catch let error as PAMWorkerError {
            throw error
        } catch {
            throw PAMWorkerError("unreadable message: \(error)")
        }
        switch consume received {
        case .endOfStream:
            throw PAMWorkerError("the worker ended mid-conversation")
        case .packet(let packet):
            do {
                return try PAMWorkerProtocol.decodeReply(packet.bytes)
            } catch {
                throw PAMWorkerError("malformed message: \(error)")
            }
        }
    }

    // MARK: - Workers

    /// An idle worker that is still sound, or a new one.
    private func lend() throws(PAMWorkerError) -> Worker {
        while let worker = state.withLock({ $0.idle.popLast() }) {
            // An idle worker has nothing to say: input is its end (it died)
            // or a message out of turn.
            if (try? worker.channel.waitForInput(until: .now)) == false { return worker }
            logger.warning("an idle PAM worker ended or spoke out of turn; it is killed",
                           metadata: ["pid": "\(worker.pid)"])
            kill(worker)
        }
        let admitted = state.withLock { state in
            guard state.processIDs.count + state.starting < capacity else { return false }
            state.starting += 1
            return true
        }
        guard admitted else {
            logger.error("PAM worker limit reached; the login fails", metadata: ["limit": "\(capacity)"])
            throw PAMWorkerError("all \(capacity) PAM workers are busy")
        }
        do {
            let worker = try spawn()
            state.withLock { state in
                state.starting -= 1
                state.processIDs.insert(worker.pid)
            }
            return worker
        } catch {
            state.withLock { $0.starting -= 1 }
            logger.error("cannot start a PAM worker; the login fails", metadata: ["reason": "\(error)"])
            throw error
        }
    }

    private func giveBack(_ worker: Worker) {
        let kept = state.withLock { state in
            guard !state.closed, state.idle.count < idleLimit else { return false }
            state.idle.append(worker)
            return true
        }
        if !kept { retire(worker) }
    }

    /// `SIGKILL` and `waitpid`: for a worker that cannot be trusted to end by itself.
    private func kill(_ worker: Worker) {
        _ = Glibc.kill(worker.pid, SIGKILL)
        reap(worker)
    }

    /// Ends an idle worker the polite way: it reads the end of its socket
    /// (`shutdown`) and exits, running its exit handlers (pam_wrapper's clean-up).
    private func retire(_ worker: Worker) {
        try? worker.channel.descriptor.shutdown(Int32(SHUT_RDWR))
        reap(worker)
    }

    /// `waitpid`, repeated on `EINTR`, so that no worker is left a zombie.
    private func reap(_ worker: Worker) {
        var status: Int32 = 0
        while waitpid(worker.pid, &status, 0) < 0, errno == EINTR {}
        _ = state.withLock { $0.processIDs.remove(worker.pid) }
    }

    /// `posix_spawn` of the worker with its end of a new `PacketChannel` as
    /// descriptor 3 (the only one it inherits: every other descriptor of
    /// this process is close-on-exec), no blocked signals and default
    /// dispositions, whatever the spawning thread had.
    private func spawn() throws(PAMWorkerError) -> Worker {
        let pair: PacketChannel.Pair
        do {
            pair = try PacketChannel.pair()
        } catch {
            throw PAMWorkerError("no socket pair for a PAM worker: \(error)")
        }
        let mine = pair.first, theirs = pair.second
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawnattr_init(&attributes)
        defer {
            posix_spawn_file_actions_destroy(&actions)
            posix_spawnattr_destroy(&attributes)
        }
        var noSignals = sigset_t(), allSignals = sigset_t()
        sigemptyset(&noSignals)
        sigfillset(&allSignals)
        var rc = posix_spawn_file_actions_adddup2(&actions, theirs.descriptor.rawValue, 3)
        if rc == 0 { rc = posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)) }
        if rc == 0 { rc = posix_spawnattr_setsigmask(&attributes, &noSignals) }
        if rc == 0 { rc = posix_spawnattr_setsigdefault(&attributes, &allSignals) }
        var pid: pid_t = 0
        if rc == 0 {
            var argv: [UnsafeMutablePointer<CChar>?] = [strdup(executable), nil]
            defer { free(argv[0]) }
            if let environment {
                var cEnvironment: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
                defer { for entry in cEnvironment { free(entry) } }
                rc = posix_spawn(&pid, executable, &actions, &attributes, &argv, &cEnvironment)
            } else {
                rc = posix_spawn(&pid, executable, &actions, &attributes, &argv, environ)
            }
        }
        guard rc == 0 else {
            throw PAMWorkerError("cannot start \(executable): \(Errno(rawValue: rc))")
        }
        _ = consume theirs
        return Worker(pid: pid, channel: mine)
    }
}

/// One worker process and the daemon's end of its channel. Lent to one
/// conversation at a time, so one thread uses it at a time.
final class Worker: Sendable {
    let pid: pid_t
    let channel: PacketChannel

    init(pid: pid_t, channel: consuming PacketChannel) {
        self.pid = pid
        self.channel = channel
    }
}
