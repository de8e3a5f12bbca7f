import Foundation
import CmdletPolicy
import Gateway
import GatehouseCore
import Logging
import Sandbox
import SSHServer
import Transcript

/// What `gatehoused`'s command line asked for.
struct DaemonOptions: Sendable {
    var configFile: String?
    var demo: Bool
    var stateDirectory: String?
    var listen: String?
    var policyDirectory: String?
    var checkConfig: Bool
    var dumpConfig: Bool
    /// `--web-listen`: the console's address (or off).
    var webListen: String?
    /// `--log-level` and `--log-format` as given, for the network side's command line.
    var logArguments: [String] = []
}

/// The daemon's life: configuration, demo set-up, policy load, listen, serve,
/// shut down on SIGTERM/SIGINT.
enum Daemon {
    /// Runs the daemon, logging to `logger`; returns the process exit status.
    static func run(_ options: DaemonOptions, logger: Logger) -> Int32 {
        resetSignals()
        if let (from, to) = raiseDescriptorLimit() {
            logger.info("raised the open-file limit", metadata: ["from": "\(from)", "to": "\(to)"])
        }

        var configuration: GatewayConfiguration
        switch buildConfiguration(options) {
        case .success(let c): configuration = c
        case .failure(let message):
            printError(message)
            return 2
        }

        // Before the demo set-up rewrites anything in the state directory; the
        // context takes the lock itself, so a race here still fails closed.
        if !options.checkConfig && !options.dumpConfig && DaemonLock.isHeld(stateDirectory: configuration.stateDirectory) {
            printError(GatewayStartupError.alreadyRunning(configuration.stateDirectory).description)
            return 1
        }

        // The network side runs as its own unprivileged account, which only
        // root can become: anything else fails closed here, before the demo
        // set-up or the daemon touches any state (docs/architecture.md,
        // "Privilege separation"). Checking or dumping the configuration only reads.
        if !options.checkConfig && !options.dumpConfig && geteuid() != 0 {
            printError("gatehoused must start as root: it keeps PAM, the keys and the audit log to itself and "
                       + "runs the network side as the account \(NetworkSide.account)")
            return 1
        }

        var demo: DemoEnvironment?
        if options.demo && !options.dumpConfig {
            var environment = DemoEnvironment(stateDirectory: configuration.stateDirectory)
            do {
                try environment.prepare()
            } catch {
                printError("demo set-up failed: \(error)")
                return 1
            }
            // PAM comes from the demo's private service directory, through
            // pam_wrapper, which must be preloaded before the process starts.
            if ProcessInfo.processInfo.environment["PAM_WRAPPER"] != "1" {
                return reexecWithPAMWrapper(serviceDirectory: environment.pamServiceDirectory)
            }
            demo = environment
        }

        if options.dumpConfig {
            print(configuration.dump())
            return 0
        }

        if options.checkConfig {
            // Like `sshd -t`, plus every effective setting and its source. It
            // only reads: a running daemon's audit log and store are not touched.
            do {
                let bundle = try PolicyBundle.load(policyDirectory: configuration.policyDirectory,
                                                   directoryFile: configuration.directoryFile,
                                                   libexecDirectory: GatewayContext.libexecDirectory(),
                                                   host: SystemHostInspector())
                print(GatewayContext.summary(configuration, bundle))
                print(configuration.dump())
                return 0
            } catch {
                printError("\(error)")
                return 1
            }
        }
        if demo != nil {
            do {
                try DemoEnvironment.ensureAccount(NetworkSide.account)
                if configuration.webHost != nil { try DemoEnvironment.ensureAccount(WebConsoleProcess.account) }
            } catch {
                printError("demo: \(error)")
                return 1
            }
        }
        do {
            _ = try SandboxAccount(named: NetworkSide.account)
        } catch {
            printError("the network side's account: \(error); create it (deploy/sysusers.d/gatehouse.conf, "
                       + "or useradd --system --no-create-home --shell /usr/sbin/nologin \(NetworkSide.account))")
            return 1
        }
        // systemd socket activation (gatehoused.socket binds port 22): read
        // before any thread exists, since it clears the environment it reads.
        let activated: Int32?
        switch activatedListener() {
        case .success(let socket): activated = socket
        case .failure(let message):
            printError(message)
            return 1
        }
        let context: GatewayContext
        let fleet: FleetStores?
        do {
            fleet = try FleetStores.open(configuration, logger: logger)
            context = try GatewayContext(configuration: configuration, logger: logger, shared: fleet?.shared)
            fleet?.feeder.start()
            fleet?.feeder.wake()
        } catch {
            printError("\(error)")
            return 1
        }

        // The monitor binds (or adopts systemd's socket); the network side only accepts.
        let listener: OwnedFileDescriptor
        if let activated {
            listener = OwnedFileDescriptor(adopting: activated)
            logger.notice("accepting on the socket systemd passed; the listen setting does not apply")
        } else {
            do {
                listener = try SSHListener.bindSocket(host: configuration.listenHost, port: configuration.listenPort)
            } catch {
                printError("cannot listen on \(configuration.listenHost):\(configuration.listenPort): \(error)")
                return 1
            }
        }
        let port = SSHListener.boundPort(of: listener.rawValue) ?? configuration.listenPort
        let network = NetworkSide(context: context, listener: listener,
                                  arguments: options.logArguments)
        let hostKey: SSHPublicKey
        do {
            hostKey = try network.start()
        } catch {
            printError("cannot start the network side: \(error)")
            return 1
        }
        context.startLockboxSweeper()
        let deadlineListener = fleet?.listenForDeadlines(context.lockbox)
        logger.info("listening", metadata: ["address": "\(configuration.listenHost):\(port)",
                                            "fips": "\(configuration.fips)"])
        // Without the control socket the gateway still serves; only the
        // operator commands (sessions list --live / kill, users unlock) are
        // unavailable, which is said loudly rather than refusing to start
        // (a state directory path longer than a socket path can be is enough).
        var control: ControlSocket?
        do {
            control = try ControlSocket(context: context, network: network)
            control?.start()
        } catch {
            logger.error("control socket unavailable; operator commands will not work", metadata: ["error": "\(error)"])
        }
        // Metrics are for watching the node; a port already taken is said,
        // not a reason to refuse logins.
        var metrics: MetricsEndpoint?
        if let host = configuration.metricsHost {
            do {
                let endpoint = try MetricsEndpoint(host: host, port: configuration.metricsPort) { [context, network] in
                    context.metrics.scrape(liveSessions: network.liveSessionCount, lockbox: context.lockbox)
                }
                endpoint.start(logger: logger)
                logger.info("metrics endpoint listening", metadata: ["address": "\(endpoint.address)"])
                metrics = endpoint
            } catch {
                logger.error("metrics endpoint unavailable", metadata: ["error": "\(error)"])
            }
        }
        // The console: a process of its own, unprivileged, that asks this
        // monitor for everything (issue 14). It cannot start: said, and the
        // gateway serves SSH all the same.
        var webProcess: WebConsoleProcess?
        var webURL: String?
        if let host = configuration.webHost {
            do {
                _ = try SandboxAccount(named: WebConsoleProcess.account)
                let process = WebConsoleProcess(context: context)
                let webPort = try process.start()
                let scheme = configuration.webCertificate == nil ? "http" : "https"
                webURL = "\(scheme)://\(host.contains(":") ? "[\(host)]" : host):\(webPort)"
                logger.info("web console listening", metadata: ["url": "\(webURL!)"])
                webProcess = process
            } catch {
                logger.error("web console unavailable", metadata: ["error": "\(error)"])
                if demo != nil {
                    printError("demo: the web console did not start: \(error)")
                }
            }
        }
        let web = webProcess
        let shutdownLogger = logger
        // The handler only starts the shutdown: the network side ends its
        // sessions (each writes its session.end through the monitor) within
        // the grace, or is killed after it; `run()` then returns on this
        // thread, and the audit log is closed.
        let grace = TimeInterval(configuration.shutdownGraceSeconds)
        let signals = installShutdownHandlers { signal in
            shutdownLogger.notice("shutting down", metadata: ["signal": "\(signal)"])
            web?.stop()
            network.stop(grace: grace + 2)
        } + [installReloadHandler { if context.reload().ok { network.reloaded() } }]
        // Ready only now: signals are handled, so a SIGTERM right after the
        // demo manifest appears is a graceful one. Connections that arrive
        // before the network side accepts wait in the kernel's backlog.
        if let demo {
            do {
                try demo.publish(listen: "\(configuration.listenHost):\(port)", host: configuration.listenHost,
                                 port: port, hostKey: hostKey, web: webURL)
            } catch {
                printError("demo: \(error)")
                return 1
            }
            print(demo.instructions(host: configuration.listenHost, port: port, fips: configuration.fips, web: webURL))
            fflush(nil)  // every stream: `stdout` is a C global Swift 6 will not read
        }

        let status = withExtendedLifetime(signals) { network.run() }
        context.beginShutdown()
        // After the sessions' end events: the final signed checkpoint.
        context.closeAudit()
        fleet?.feeder.stop()
        deadlineListener?.stop()
        control?.remove()
        metrics?.stop()
        logger.notice("stopped")
        return status
    }

    /// The network role (`gatehoused --network-side`, started by the
    /// monitor, never by hand): reads the configuration the monitor handed
    /// over, becomes `gatehouse-net` with no capability, loads the policy
    /// through the descriptors it inherited (as that account), sets up the
    /// listener with the host key it inherited, enters the sandbox (no new
    /// privileges, the seccomp allow-list that kills on anything else), and
    /// only then accepts a connection. Any failure exits non-zero before a
    /// byte is read from the network.
    static func runNetworkSide(logger: Logger) -> Int32 {
        resetSignals()
        _ = raiseDescriptorLimit()
        let configuration: GatewayConfiguration
        do {
            let parcel = OwnedFileDescriptor(adopting: NetworkSide.Descriptor.configuration)
            let bytes = try parcel.readToEnd(limit: NetworkSide.maxConfigurationBytes)
            configuration = NetworkSide.networkConfiguration(try JSONDecoder().decode(GatewayConfiguration.self,
                                                                                      from: Data(bytes)))
        } catch {
            printError("network side: no configuration from the monitor on descriptor "
                       + "\(NetworkSide.Descriptor.configuration): \(error)")
            return 1
        }
        do {
            try PrivilegeDrop.drop(to: SandboxAccount(named: NetworkSide.account))
        } catch {
            printError("network side: cannot drop privileges to \(NetworkSide.account): \(error)")
            return 1
        }
        let context: NetworkContext
        let server: GatewayServer
        do {
            context = try NetworkContext(configuration: configuration, logger: logger)
            server = try GatewayServer(context: context, listeningSocket: NetworkSide.Descriptor.listener,
                                       hostKey: NetworkSide.Descriptor.hostKey,
                                       monitorChannel: PacketChannel(adopting: OwnedFileDescriptor(
                                           adopting: NetworkSide.Descriptor.channel)))
        } catch {
            printError("network side: \(error)")
            return 1
        }
        do {
            try Sandbox.enter(filter: NetworkSideSyscalls.filter())
        } catch {
            printError("network side: cannot enter the sandbox: \(error)")
            return 1
        }
        let shutdownLogger = logger
        let signals = installShutdownHandlers { signal in
            shutdownLogger.notice("network side shutting down", metadata: ["signal": "\(signal)"])
            server.beginShutdown()
        }
        // SIGHUP is the monitor's: it reloads and then tells this process.
        signal(SIGHUP, SIG_IGN)
        withExtendedLifetime(signals) {
            server.serve()
            server.waitForSessions(grace: TimeInterval(configuration.shutdownGraceSeconds))
        }
        return 0
    }

    enum ConfigurationResult { case success(GatewayConfiguration), failure(String) }

    enum ActivationResult { case success(Int32?), failure(String) }

    /// The one listening socket systemd passed (named `ssh` by
    /// gatehoused.socket, or the only one), or nil when not socket-activated.
    static func activatedListener() -> ActivationResult {
        do {
            let listeners = try SocketActivation.listeners()
            if listeners.isEmpty { return .success(nil) }
            if let ssh = listeners.first(where: { $0.name == "ssh" }) ?? (listeners.count == 1 ? listeners[0] : nil) {
                return .success(ssh.adopt().release())
            }
            return .failure("systemd passed \(listeners.count) sockets and none is named 'ssh' (FileDescriptorName=ssh)")
        } catch {
            return .failure("socket activation: \(error)")
        }
    }

    static func buildConfiguration(_ options: DaemonOptions) -> ConfigurationResult {
        var c = GatewayConfiguration()
        var problems: [String] = []
        func set(_ key: String, _ value: String, _ source: String) {
            if let problem = c.set(key, to: value, source: source) { problems.append(problem) }
        }
        let cwd = FileManager.default.currentDirectoryPath
        if options.demo {
            set("stateDirectory", cwd + "/.gatehouse-demo", "demo")
            set("policyDirectory", cwd + "/policies", "demo")
            set("pamService", DemoEnvironment.pamService, "demo")
            set("webPamService", DemoEnvironment.webPamService, "demo")
            set("webAssets", cwd + "/.gatehouse-assets", "demo")
            // The demo reads a configuration file only when one is named
            // (tests use it for short timeouts); its values win over the
            // demo's, and the command line wins over both.
            if let file = options.configFile {
                do {
                    try ConfigurationFile.apply(file: file, to: &c)
                } catch {
                    return .failure("\(error)")
                }
            }
        } else {
            let file = options.configFile ?? "/etc/gatehouse/gatehouse.yaml"
            if options.configFile != nil || FileManager.default.fileExists(atPath: file) {
                do {
                    try ConfigurationFile.apply(file: file, to: &c)
                } catch {
                    return .failure("\(error)")
                }
            }
        }
        if let v = options.stateDirectory { set("stateDirectory", v, "command line") }
        if let v = options.listen { set("listen", v, "command line") }
        if let v = options.policyDirectory { set("policyDirectory", v, "command line") }
        if let v = options.webListen { set("webListen", v, "command line") }
        if let problem = c.webProblem {
            problems.append("\(c.sources["webListen"] ?? "webListen"): \(problem)")
        }
        if options.demo {
            set("directoryFile", c.stateDirectory + "/directory.yaml", "demo")
        }
        if !problems.isEmpty { return .failure(problems.joined(separator: "\n")) }
        return .success(c)
    }

    /// A process started by a test harness may inherit blocked signals
    /// (SIGTERM included); unblock everything so shutdown works. SIGPIPE is
    /// ignored: a client that vanishes must not kill the daemon.
    static func resetSignals() {
        var empty = sigset_t()
        sigemptyset(&empty)
        pthread_sigmask(SIG_SETMASK, &empty, nil)
        signal(SIGPIPE, SIG_IGN)
        // A file-size limit (RLIMIT_FSIZE) must fail the write (EFBIG), which
        // the audit log and transcripts handle by failing closed, rather than
        // kill the daemon. Backends get default dispositions again at spawn.
        signal(SIGXFSZ, SIG_IGN)
    }

    /// Each session holds three descriptors (its socket, its transcript, its
    /// wake eventfd), so the usual soft open-file limit of 1024 would stop a
    /// node at about 340 sessions, and the next login would fail inside PAM.
    /// Like most servers, the daemon raises the soft limit to the hard one
    /// the administrator granted (`LimitNOFILE=` in the systemd unit).
    /// Backends inherit the raised limit.
    static func raiseDescriptorLimit() -> (from: rlim_t, to: rlim_t)? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return nil }
        let from = limit.rlim_cur
        limit.rlim_cur = limit.rlim_max
        guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        return (from, limit.rlim_max)
    }

    /// SIGHUP reloads policy and directory (see `GatewayContext.reload`).
    static func installReloadHandler(_ handler: @escaping @Sendable () -> Void) -> DispatchSourceSignal {
        let queue = DispatchQueue(label: "gatehoused.reload")
        signal(SIGHUP, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: queue)
        source.setEventHandler { handler() }
        source.resume()
        return source
    }

    static func installShutdownHandlers(_ handler: @escaping @Sendable (Int32) -> Void) -> [DispatchSourceSignal] {
        let queue = DispatchQueue(label: "gatehoused.signals")
        return [SIGTERM, SIGINT].map { sig in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler { handler(sig) }
            source.resume()
            return source
        }
    }

    /// Re-executes this binary with pam_wrapper preloaded and pointed at the
    /// demo's service directory. Only the demo does this; production uses
    /// the system's /etc/pam.d.
    static func reexecWithPAMWrapper(serviceDirectory: String) -> Int32 {
        guard let wrapper = DemoEnvironment.findPAMWrapper() else {
            printError("demo: pam_wrapper not found; install libpam-wrapper (scripts/install-deps does)")
            return 1
        }
        var environment = ProcessInfo.processInfo.environment
        environment["LD_PRELOAD"] = wrapper
        environment["PAM_WRAPPER"] = "1"
        environment["PAM_WRAPPER_SERVICE_DIR"] = serviceDirectory
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        let argv = CommandLine.arguments.map { strdup($0) } + [nil]
        execve("/proc/self/exe", argv, envp)
        printError("demo: cannot re-execute with pam_wrapper: \(String(cString: strerror(errno)))")
        return 1
    }

    static func printError(_ message: String) {
        FileHandle.standardError.write(Data("gatehoused: \(message)\n".utf8))
    }
}
