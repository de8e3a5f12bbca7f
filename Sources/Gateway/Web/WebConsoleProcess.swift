import ConsoleCore
import Foundation
import GatehouseCore
import Logging
import Synchronization

/// What the monitor hands `gatehouse-web` at start (descriptor 4, JSON).
public struct WebProcessConfiguration: Codable, Sendable {
    public var listenHost: String
    public var listenPort: Int
    /// The account it becomes before it listens.
    public var account: String
    /// HTTPS: the certificate chain and key come as PEM on descriptor 5.
    public var tls: Bool
    /// Idle and lifetime limits, for the cookie's Max-Age.
    public var sessionLifetimeSeconds: Int
    /// A connection that sends nothing for this long (a silent or slow
    /// client, a TLS handshake that never ends) is closed: `loginGraceTime`.
    public var idleTimeoutSeconds: Int
}

/// The web console's process as the monitor sees it: `gatehouse-web`
/// (installed beside gatehoused) started with exactly these descriptors —
/// 3 its end of the web channel, 4 its configuration, 5 the TLS
/// certificate and key (PEM, read here as root; absent on loopback HTTP),
/// 6 and 7 the asciinema player's script and style when installed — then
/// watched, and started again when it dies (at most `maxRestarts` a minute).
public final class WebConsoleProcess: Sendable {
    public static let account = "gatehouse-web"
    public enum Descriptor {
        public static let channel: Int32 = 3
        public static let configuration: Int32 = 4
        public static let tls: Int32 = 5
        public static let playerScript: Int32 = 6
        public static let playerStyle: Int32 = 7
    }
    public static let playerFiles = ["asciinema-player.min.js", "asciinema-player.css"]
    static let maxRestarts = 5

    private let context: GatewayContext
    private struct Current {
        var pid: pid_t = 0
        var monitor: WebMonitor?
        var stopping = false
        var starts: [Date] = []
    }
    private let current = Mutex(Current())

    public init(context: GatewayContext) {
        self.context = context
    }

    public static func executable() -> String { GatewayContext.libexecDirectory() + "/gatehouse-web" }

    /// Where the asciinema player's files are looked for.
    public static func assetsDirectory(_ c: GatewayConfiguration) -> String {
        c.webAssetsOverride ?? URL(fileURLWithPath: GatewayContext.libexecDirectory() + "/../../share/gatehouse/web")
            .standardizedFileURL.path
    }

    /// Starts the process and waits until it listens; returns its port.
    public func start(timeout: Int = 60) throws -> Int {
        let monitor = try spawn()
        guard monitor.readySignal.wait(timeout: .now() + .seconds(timeout)) == .success,
              let port = monitor.readyPort.withLock({ $0 }) else {
            let pid = current.withLock { $0.pid }
            if pid > 0 { kill(pid, SIGKILL) }
            throw GatewayStartupError("the web console did not become ready (see its message above)")
        }
        let watcher = Thread { [self] in watch() }
        watcher.name = "gatehouse-web-watch"
        watcher.start()
        return port
    }

    public func stop() {
        let pid = current.withLock { state -> pid_t in
            state.stopping = true
            return state.pid
        }
        if pid > 0 { kill(pid, SIGTERM) }
    }

    private func watch() {
        while true {
            let (pid, monitor) = current.withLock { ($0.pid, $0.monitor) }
            guard pid > 0 else { return }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0, errno == EINTR {}
            monitor?.closed.wait()
            let (stopping, recent) = current.withLock { state -> (Bool, Int) in
                state.pid = 0
                state.monitor = nil
                let now = Date()
                state.starts = state.starts.filter { now.timeIntervalSince($0) < 60 }
                return (state.stopping, state.starts.count)
            }
            if stopping { return }
            context.logger.error("the web console ended", metadata: ["pid": "\(pid)", "status": "\(status)"])
            guard recent <= Self.maxRestarts else {
                context.logger.critical("the web console ended \(recent) times within a minute; it stays off")
                return
            }
            do {
                let monitor = try spawn()
                guard monitor.readySignal.wait(timeout: .now() + .seconds(60)) == .success else {
                    context.logger.critical("the restarted web console did not become ready")
                    continue
                }
            } catch {
                context.logger.critical("cannot start the web console again", metadata: ["error": "\(error)"])
                return
            }
        }
    }

    private func spawn() throws -> WebMonitor {
        let c = context.configuration
        guard let host = c.webHost else { throw GatewayStartupError("webListen is off") }
        if let problem = c.webProblem { throw GatewayStartupError(problem) }
        let pair = try PacketChannel.pair()
        let mine = pair.first, theirs = pair.second
        let settings = WebProcessConfiguration(listenHost: host, listenPort: c.webPort, account: Self.account,
                                               tls: c.webCertificate != nil,
                                               sessionLifetimeSeconds: c.maxSessionLifetimeSeconds,
                                               idleTimeoutSeconds: c.loginGraceSeconds)
        let json = try JSONEncoder().encode(settings)
        let parcel = OwnedFileDescriptor(adopting: try json.withUnsafeBytes { bytes throws(Errno) in
            try OwnedFileDescriptor.parcel(bytes).release()
        })
        var handed: [(Int32, Int32)] = [(theirs.descriptor.rawValue, Descriptor.channel),
                                        (parcel.rawValue, Descriptor.configuration)]
        // Our copies of the descriptors handed over, closed once the child has its own.
        var opened: [Int32] = []
        defer { for fd in opened { close(fd) } }
        if let certificate = c.webCertificate, let key = c.webPrivateKey {
            // Read as root here; the web process gets the bytes, never the path.
            let pem = try Data(contentsOf: URL(fileURLWithPath: certificate)) + Data("\n".utf8)
                + Data(contentsOf: URL(fileURLWithPath: key))
            let tls = try pem.withUnsafeBytes { bytes throws(Errno) in try OwnedFileDescriptor.parcel(bytes).release() }
            opened.append(tls)
            handed.append((tls, Descriptor.tls))
        }
        let assets = Self.assetsDirectory(c)
        for (file, target) in zip(Self.playerFiles, [Descriptor.playerScript, Descriptor.playerStyle]) {
            let fd = open(assets + "/" + file, O_RDONLY | O_CLOEXEC)
            if fd >= 0 {
                opened.append(fd)
                handed.append((fd, target))
            }
        }
        let monitor = WebMonitor(gateway: context, channel: mine)
        monitor.start()
        let executable = Self.executable()
        let pid = try current.withLock { state throws -> pid_t in
            let pid = try NetworkSide.spawn(handing: handed, arguments: [], executable: executable,
                                            argv: [executable])
            state.pid = pid
            state.monitor = monitor
            state.starts.append(Date())
            if state.stopping { kill(pid, SIGTERM) }
            return pid
        }
        _ = consume theirs
        _ = consume parcel
        context.logger.notice("web console started", metadata: ["pid": "\(pid)", "account": "\(Self.account)"])
        return monitor
    }
}
