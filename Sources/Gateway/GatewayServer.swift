import Foundation
import GatehouseCore
import Logging
import SSHServer

/// The accept loop: one listener, one dedicated thread per connection (never
/// Swift's cooperative pool: libssh and PAM block), no process forked per
/// connection.
public final class GatewayServer: @unchecked Sendable {
    private let listener: SSHListener
    private let context: GatewayContext
    private let liveLock = NSLock()
    private var liveThreads = 0

    public var boundPort: Int { listener.boundPort }
    public var hostPublicKey: SSHPublicKey { listener.hostPublicKey }

    public init(context: GatewayContext) throws {
        self.context = context
        let c = context.configuration
        let ssh = SSHServerConfig(
            host: c.listenHost, port: c.listenPort, hostKeyPath: c.hostKeyPath,
            hostKeyType: SSHKeyType(rawValue: c.hostKeyType) ?? .ecdsaP256,
            algorithms: c.fips ? SSHAlgorithms.fips : SSHAlgorithms.modern,
            loginGraceSeconds: c.loginGraceSeconds, maxAuthTries: c.maxAuthTries,
            maxChannelsPerConnection: c.maxChannelsPerConnection)
        listener = try SSHListener(config: ssh, logger: context.logger)
    }

    /// Accepts until `shutdown()`; returns then.
    public func serve() {
        while !context.isShuttingDown {
            let connection: SSHConnection
            do {
                connection = try listener.accept()
            } catch {
                if context.isShuttingDown { break }
                context.logger.warning("accept failed: \(error)")
                continue
            }
            // The connection moves to its own thread and is touched only there.
            let handoff = connection.handoff()
            liveLock.withLock { liveThreads += 1 }
            let thread = Thread { [self, context] in
                if let connection = handoff.take() {
                    SessionRunner(connection: connection, gateway: context).run()
                }
                liveLock.withLock { liveThreads -= 1 }
            }
            thread.name = "gatehouse-session"
            thread.stackSize = 4 << 20
            thread.start()
        }
    }

    /// Stops accepting and tells every session to end; waits up to `grace` for them.
    public func shutdown(grace: TimeInterval = 5) {
        context.beginShutdown()
        listener.close()
        let deadline = Date() + grace
        while liveLock.withLock({ liveThreads }) > 0 && Date() < deadline {
            usleep(50_000)
        }
    }
}
