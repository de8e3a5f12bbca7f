// gatehouse-web: the approval and review console and the activity API
// (issue 14). Started by the monitor (gatehoused) with its descriptors
// (WebConsoleProcess in Gateway); reads them, becomes its own unprivileged
// account while still single-threaded, listens, and asks the monitor for
// everything over the web channel. The only process that links Hummingbird.
import ConsoleCore
import Foundation
import GatehouseCore
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import Sandbox

enum Descriptor {
    static let channel: Int32 = 3
    static let configuration: Int32 = 4
    static let tls: Int32 = 5
    static let playerScript: Int32 = 6
    static let playerStyle: Int32 = 7
}

struct WebSettings: Decodable {
    var listenHost: String
    var listenPort: Int
    var account: String
    var tls: Bool
    var sessionLifetimeSeconds: Int
    var idleTimeoutSeconds: Int
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("gatehouse-web: \(message)\n".utf8))
    exit(1)
}

func isOpen(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) >= 0 }

func readParcel(_ fd: Int32, limit: Int) -> [UInt8]? {
    guard isOpen(fd) else { return nil }
    let owned = OwnedFileDescriptor(adopting: fd)
    return try? owned.readToEnd(limit: limit)
}

signal(SIGPIPE, SIG_IGN)
guard isOpen(Descriptor.channel), let configBytes = readParcel(Descriptor.configuration, limit: 64 * 1024),
      let settings = try? JSONDecoder().decode(WebSettings.self, from: Data(configBytes)) else {
    fail("no configuration from the monitor: this program is started by gatehoused (webListen), not by hand")
}
let tlsPEM = settings.tls ? readParcel(Descriptor.tls, limit: 1024 * 1024) : nil
if settings.tls && tlsPEM == nil { fail("HTTPS is configured but no certificate came from the monitor") }
let playerScript = readParcel(Descriptor.playerScript, limit: 4 * 1024 * 1024)
let playerStyle = readParcel(Descriptor.playerStyle, limit: 1024 * 1024)

// Still one thread: the drop refuses otherwise (capabilities are per thread),
// and every thread NIO starts inherits the filter.
do {
    try PrivilegeDrop.drop(to: SandboxAccount(named: settings.account))
    try Sandbox.enter(filter: WebConsoleSyscalls.filter())
} catch {
    fail("cannot drop privileges to \(settings.account): \(error)")
}

var logger = Logger(label: "gatehouse-web")
logger.logLevel = .notice

var tlsConfiguration: TLSConfiguration?
if let tlsPEM {
    do {
        tlsConfiguration = try WebTLS.configuration(pem: tlsPEM)
    } catch {
        fail("the certificate or key does not load: \(error)")
    }
}

let link = MonitorLink(descriptor: Descriptor.channel)
link.start()
let console = Console(link: link, assets: StaticAssets(playerScript: playerScript, playerStyle: playerStyle))
let router = Router(context: WebContext.self)
router.middlewares.add(SecurityHeaders())
console.register(router)

// A connection that sends nothing for loginGraceTime is closed: without
// this, SwiftNIO keeps a silent or slow client's connection (and its
// descriptor) for ever.
let http1 = HTTPServerBuilder.http1(configuration: .init(idleTimeout: .seconds(Int64(settings.idleTimeoutSeconds))))
let server: HTTPServerBuilder
if let tlsConfiguration {
    do {
        server = try .tls(http1, tlsConfiguration: tlsConfiguration)
    } catch {
        fail("TLS set-up failed: \(error)")
    }
} else {
    server = http1
}
let app = Application(router: router, server: server,
                      configuration: .init(address: .hostname(settings.listenHost, port: settings.listenPort),
                                           serverName: nil),
                      onServerRunning: { channel in
                          let port = channel.localAddress?.port ?? settings.listenPort
                          _ = await link.call(.ready(port: port))
                      },
                      logger: logger)
do {
    try await app.runService()
} catch {
    fail("\(error)")
}
