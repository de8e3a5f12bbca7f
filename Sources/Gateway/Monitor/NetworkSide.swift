import Foundation
import GatehouseCore
import Logging
import SSHServer
import Synchronization

/// The network process as the monitor sees it: started as this same
/// executable with `NetworkSide.flag`, handed exactly the descriptors below,
/// watched until it exits, and started again on the same listening socket
/// when it dies, at most `maxRestarts` times a minute (then the daemon exits
/// non-zero and systemd's `Restart=on-failure` takes over).
///
/// Each network process gets a channel and a `Monitor` of its own. When it
/// ends, however it ends, its monitor sees the channel close and ends every
/// session it left open: backends killed, grants ended, `session.end`
/// written (`Monitor.endAll`); only then is the next one started.
public final class NetworkSide: Sendable {
    /// The hidden command-line flag of the network role.
    public static let flag = "--network-side"
    /// The unprivileged account the network side becomes (deploy/sysusers.d).
    public static let account = "gatehouse-net"

    /// The descriptors the network process inherits, and nothing else.
    public enum Descriptor {
        /// The listening socket (bound by the monitor, or by systemd).
        public static let listener: Int32 = 3
        /// Its end of the monitor's `PacketChannel`.
        public static let channel: Int32 = 4
        /// The private host key's text, read to its end (`SSHListener.hostKeyParcel`).
        public static let hostKey: Int32 = 5
        /// The effective `GatewayConfiguration`, as JSON, read to its end.
        public static let configuration: Int32 = 6
        /// The policy directory, opened by the monitor: the network side
        /// reads it as `/proc/self/fd/7`, so the directories above it need
        /// not be open to its account (only the directory and its files).
        public static let policyDirectory: Int32 = 7
        /// The directory file (users, keys), opened by the monitor, which
        /// may sit in the state directory the network side cannot search.
        public static let directoryFile: Int32 = 8
    }

    /// The configuration as the network side reads it: its policy sources
    /// are the inherited descriptors.
    public static func networkConfiguration(_ configuration: GatewayConfiguration) -> GatewayConfiguration {
        var c = configuration
        c.policyDirectory = "/proc/self/fd/\(Descriptor.policyDirectory)"
        c.directoryFileOverride = "/proc/self/fd/\(Descriptor.directoryFile)"
        return c
    }

    static let maxRestarts = 5
    static let restartWindow: TimeInterval = 60
    /// The largest configuration the network side reads.
    public static let maxConfigurationBytes = 64 * 1024

    private let context: GatewayContext
    private let listener: Int32
    private let arguments: [String]
    private struct Current {
        var pid: pid_t = 0
        var monitor: Monitor?
        var stopping = false
        var starts: [Date] = []
    }
    private let current = Mutex(Current())

    /// `listener`: the listening socket, owned by this object for the
    /// daemon's life (every network process accepts on it in turn).
    /// `arguments`: the network role's command line after the flag (the log level).
    public init(context: GatewayContext, listener: consuming OwnedFileDescriptor, arguments: [String]) {
        self.context = context
        self.listener = listener.release()
        self.arguments = arguments
    }

    /// Starts the first network process and returns the host's public key
    /// once it is confined and accepting; throws when it cannot be started
    /// or ends first (its own message is on the shared standard error).
    public func start() throws -> SSHPublicKey {
        let key = try spawn()
        guard let monitor, monitor.waitUntilReady(timeout: .seconds(Self.startupSeconds)) else {
            let pid = self.pid
            if pid > 0 { kill(pid, SIGKILL) }
            throw GatewayStartupError("the network side did not become ready (see its message above)")
        }
        return key
    }

    /// How long the first network process may take to be ready.
    static let startupSeconds = 60

    /// Waits for the network process to exit and starts the next one, until
    /// `stop()` or too many restarts. Returns the daemon's exit status: 0
    /// after `stop()`, 1 when the network side cannot be kept running.
    public func run() -> Int32 {
        while true {
            let (pid, monitor) = current.withLock { ($0.pid, $0.monitor) }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0, errno == EINTR {}
            // Every session it left open ends before anything else happens.
            monitor?.closed.wait()
            let (stopping, recent) = current.withLock { state -> (Bool, Int) in
                state.monitor = nil
                state.pid = 0
                let now = Date()
                state.starts = state.starts.filter { now.timeIntervalSince($0) < Self.restartWindow }
                return (state.stopping, state.starts.count)
            }
            let how = Self.describe(status)
            if stopping {
                context.logger.notice("network side stopped", metadata: ["pid": "\(pid)", "status": "\(how)"])
                return 0
            }
            context.logger.error("network side ended; its sessions were ended and recorded",
                                 metadata: ["pid": "\(pid)", "status": "\(how)"])
            // `recent` counts the starts of the last minute, each of which has now ended.
            guard recent <= Self.maxRestarts else {
                context.logger.critical("network side ended \(recent) times within \(Int(Self.restartWindow)) s; exiting")
                return 1
            }
            do {
                _ = try spawn()
            } catch {
                context.logger.critical("cannot start the network side again; exiting", metadata: ["error": "\(error)"])
                return 1
            }
        }
    }

    /// Asks the network process to end (SIGTERM: it ends its sessions, each
    /// writing `session.end` through the monitor) and kills it if it is still
    /// there `grace` seconds later. `run()` returns once it is gone.
    public func stop(grace: TimeInterval) {
        let pid = current.withLock { state -> pid_t in
            state.stopping = true
            return state.pid
        }
        guard pid > 0 else { return }
        kill(pid, SIGTERM)
        DispatchQueue.global().asyncAfter(deadline: .now() + grace) { [self] in
            // Only the same, still unreaped process: `run()` clears the pid when it reaps.
            if current.withLock({ $0.pid }) == pid { kill(pid, SIGKILL) }
        }
    }

    /// The monitor put a reload in force: the network side loads the same
    /// files, through descriptors opened now (the files may have been replaced).
    /// Sessions open now, as the monitor holds them (0 while none runs).
    public var liveSessionCount: Int { current.withLock { $0.monitor }?.openSessionCount ?? 0 }

    public func reloaded() {
        guard let monitor = current.withLock({ $0.monitor }) else { return }
        do throws(Errno) {
            let directory = try OwnedFileDescriptor(opening: context.configuration.policyDirectory,
                                                    flags: O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            let file = try OwnedFileDescriptor(opening: context.configuration.directoryFile, flags: O_RDONLY | O_CLOEXEC)
            monitor.notify(.reload, descriptors: [directory.rawValue, file.rawValue])
        } catch {
            context.logger.error("cannot open the policy for the network side's reload", metadata: ["error": "\(error)"])
        }
    }

    /// The monitor serving the network process now, for the control socket.
    var monitor: Monitor? { current.withLock { $0.monitor } }

    /// The network process's pid now (0 between two).
    public var pid: pid_t { current.withLock { $0.pid } }

    @discardableResult
    private func spawn() throws -> SSHPublicKey {
        let pair = try PacketChannel.pair()
        let mine = pair.first, theirs = pair.second
        let c = context.configuration
        let hostKey = try SSHListener.hostKeyParcel(c.sshServer, logger: context.logger)
        let configuration = try JSONEncoder().encode(c)
        let parcel = OwnedFileDescriptor(adopting: try configuration.withUnsafeBytes { bytes throws(Errno) in
            try OwnedFileDescriptor.parcel(bytes).release()
        })
        let policyDirectory = try OwnedFileDescriptor(opening: c.policyDirectory, flags: O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        let directoryFile = try OwnedFileDescriptor(opening: c.directoryFile, flags: O_RDONLY | O_CLOEXEC)
        let handed: [(Int32, Int32)] = [
            (listener, Descriptor.listener), (theirs.descriptor.rawValue, Descriptor.channel),
            (hostKey.descriptor.rawValue, Descriptor.hostKey), (parcel.rawValue, Descriptor.configuration),
            (policyDirectory.rawValue, Descriptor.policyDirectory), (directoryFile.rawValue, Descriptor.directoryFile),
        ]
        let monitor = Monitor(gateway: context, channel: mine)
        // The monitor's state is in place before the process can send anything.
        let pid = try current.withLock { state throws -> pid_t in
            let pid = try Self.spawn(handing: handed, arguments: arguments)
            state.pid = pid
            state.monitor = monitor
            state.starts.append(Date())
            // A stop that came while this one was being started applies to it.
            if state.stopping { kill(pid, SIGTERM) }
            return pid
        }
        // Only the network process holds its end now: its exit is the channel's end.
        _ = consume theirs
        monitor.start()
        context.logger.notice("network side started", metadata: ["pid": "\(pid)", "account": "\(Self.account)"])
        return hostKey.publicKey
    }

    /// `posix_spawn` of `/proc/self/exe` with the flag, `handed` descriptors
    /// moved to their numbers (every other one is close-on-exec), no blocked
    /// signals, default dispositions, and an environment without what was
    /// meant for this process only (pam_wrapper's preload, systemd's
    /// activation and notification variables).
    /// `executable` and `argv`: another program of the gateway's (gatehouse-web), started the same way.
    static func spawn(handing handed: [(Int32, Int32)], arguments: [String], executable: String = "/proc/self/exe",
                      argv explicitArgv: [String]? = nil) throws -> pid_t {
        // First every source above the targets' range, so no move overwrites
        // a source still to be moved (a fresh descriptor may well be 4 or 5).
        var lifted: [(Int32, Int32)] = []
        defer { for (fd, _) in lifted { close(fd) } }
        for (source, target) in handed {
            let high = fcntl(source, F_DUPFD_CLOEXEC, 16)
            guard high >= 0 else { throw GatewayStartupError("network side: cannot duplicate descriptor \(source): \(Errno(rawValue: errno))") }
            lifted.append((high, target))
        }
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawnattr_init(&attributes)
        defer {
            posix_spawn_file_actions_destroy(&actions)
            posix_spawnattr_destroy(&attributes)
        }
        var rc: Int32 = 0
        for (source, target) in lifted where rc == 0 {
            rc = posix_spawn_file_actions_adddup2(&actions, source, target)
        }
        var noSignals = sigset_t(), allSignals = sigset_t()
        sigemptyset(&noSignals)
        sigfillset(&allSignals)
        if rc == 0 { rc = posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)) }
        if rc == 0 { rc = posix_spawnattr_setsigmask(&attributes, &noSignals) }
        if rc == 0 { rc = posix_spawnattr_setsigdefault(&attributes, &allSignals) }
        let dropped = ["LD_PRELOAD", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET"]
        let environment = ProcessInfo.processInfo.environment
            .filter { !dropped.contains($0.key) && !$0.key.hasPrefix("PAM_WRAPPER") }
            .map { "\($0.key)=\($0.value)" }
        let argv = explicitArgv ?? ([CommandLine.arguments.first ?? "gatehoused", flag] + arguments)
        var cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        var cEnvironment: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer {
            for entry in cArguments { free(entry) }
            for entry in cEnvironment { free(entry) }
        }
        var pid: pid_t = 0
        if rc == 0 { rc = posix_spawn(&pid, executable, &actions, &attributes, &cArguments, &cEnvironment) }
        guard rc == 0 else { throw GatewayStartupError("cannot start \(argv[0]): \(Errno(rawValue: rc))") }
        return pid
    }

    private static func describe(_ status: Int32) -> String {
        let signal = status & 0x7f
        if signal == 0 { return "exit \((status >> 8) & 0xff)" }
        return "killed by signal \(signal)"
    }
}

extension NetworkSide: LiveSessionsSource {
    func liveSessions(timeout: DispatchTimeInterval) -> (sessions: [SessionRegistry.Summary], unauthenticated: Int)? {
        monitor?.liveSessions(timeout: timeout)
    }

    func endSession(_ session: SessionID, message: String) -> UserName? {
        monitor?.endSession(session, message: message)
    }
}

extension GatewayConfiguration {
    /// The SSH listener's settings; the network side adds the socket and
    /// the host key it inherited.
    var sshServer: SSHServerConfig {
        SSHServerConfig(host: listenHost, port: listenPort, hostKeyPath: hostKeyPath,
                        hostKeyType: SSHKeyType(rawValue: hostKeyType) ?? .ecdsaP256,
                        algorithms: fips ? SSHAlgorithms.fips : SSHAlgorithms.modern,
                        loginGraceSeconds: loginGraceSeconds, maxAuthTries: maxAuthTries,
                        maxChannelsPerConnection: maxChannelsPerConnection, ioTimeoutSeconds: ioTimeoutSeconds)
    }
}

/// Where the control socket finds the live sessions and ends one: the
/// network side, through its monitor.
protocol LiveSessionsSource: Sendable {
    func liveSessions(timeout: DispatchTimeInterval) -> (sessions: [SessionRegistry.Summary], unauthenticated: Int)?
    func endSession(_ session: SessionID, message: String) -> UserName?
}
