import Foundation
import GatehouseCore
import Logging

/// `GET /metrics` over HTTP/1.0 on one TCP address (loopback by default), for
/// a Prometheus scraper: one thread, one request per connection, then close.
/// A client gets 2 s to send at most 8 KiB of request head; anything but a
/// GET of /metrics is answered 404 or 405. It shares nothing with the SSH
/// listener, so a scraper can neither slow a login nor be slowed by one.
public final class MetricsEndpoint: Sendable {
    private let listener: OwnedFileDescriptor
    private let body: @Sendable () -> [UInt8]
    /// The address actually bound (`port` 0 picks one).
    public let address: String

    public init(host: String, port: Int, body: @escaping @Sendable () -> [UInt8]) throws {
        var hints = addrinfo()
        hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &found) == 0, let info = found else {
            throw MetricsEndpointError("metricsListen: '\(host)' is not a numeric IP address")
        }
        defer { freeaddrinfo(found) }
        do throws(Errno) {
            let socket = try OwnedFileDescriptor(socketDomain: info.pointee.ai_family,
                                                 type: Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
            var one: Int32 = 1
            _ = setsockopt(socket.rawValue, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            guard Glibc.bind(socket.rawValue, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
                throw Errno(rawValue: errno)
            }
            try socket.listen(backlog: 16)
            var bound = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let boundPort = withUnsafeMutablePointer(to: &bound) { pointer -> Int in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(socket.rawValue, $0, &length) }
                return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
            }
            address = (host.contains(":") ? "[\(host)]" : host) + ":\(boundPort)"
            listener = socket
        } catch {
            throw MetricsEndpointError("metricsListen \(host):\(port): \(error)")
        }
        self.body = body
    }

    /// Serves on a dedicated thread until `stop()`.
    public func start(logger: Logger) {
        let thread = Thread { [self] in serve(logger: logger) }
        thread.name = "gatehouse-metrics"
        thread.start()
    }

    /// Wakes the thread blocked in `accept`, which then returns.
    public func stop() { try? listener.shutdown(Int32(SHUT_RDWR)) }

    private func serve(logger: Logger) {
        while true {
            let client: OwnedFileDescriptor
            do throws(Errno) {
                client = try listener.accept()
            } catch {
                if error.rawValue == ECONNABORTED || error.rawValue == EPROTO || error.rawValue == EINTR { continue }
                if error.rawValue == EMFILE || error.rawValue == ENFILE {
                    // Out of descriptors: the sessions need them more than a
                    // scraper; the next scrape tries again.
                    logger.warning("metrics endpoint: out of descriptors")
                    usleep(100_000)
                    continue
                }
                return   // shut down (stop()), or the socket failed
            }
            answer(client)
        }
    }

    private func answer(_ client: borrowing OwnedFileDescriptor) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        _ = setsockopt(client.rawValue, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(client.rawValue, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var head: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1024)
        while head.count < 8192, !Self.endsHead(head) {
            let n = (try? chunk.withUnsafeMutableBytes { try client.read(into: $0) }) ?? 0
            if n <= 0 { return }
            head += chunk[0..<n]
        }
        let requestLine = head.split(separator: 0x0a, maxSplits: 1).first.map { String(decoding: $0, as: UTF8.self) } ?? ""
        let parts = requestLine.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ")
        let status: String, payload: [UInt8], type: String
        if parts.count >= 2, parts[0] != "GET" {
            (status, payload, type) = ("405 Method Not Allowed", Array("only GET\n".utf8), "text/plain")
        } else if parts.count >= 2, parts[1] == "/metrics" || parts[1].hasPrefix("/metrics?") {
            (status, payload, type) = ("200 OK", body(), "text/plain; version=0.0.4; charset=utf-8")
        } else {
            (status, payload, type) = ("404 Not Found", Array("GET /metrics\n".utf8), "text/plain")
        }
        let header = "HTTP/1.0 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(payload.count)\r\nConnection: close\r\n\r\n"
        try? client.writeAll(Array(header.utf8) + payload)
    }

    /// The request head is complete (a blank line), wherever it falls in what was read.
    private static func endsHead(_ bytes: [UInt8]) -> Bool {
        for i in bytes.indices where bytes[i] == 0x0a {
            if i >= 1 && bytes[i - 1] == 0x0a { return true }
            if i >= 2 && bytes[i - 1] == 0x0d && bytes[i - 2] == 0x0a { return true }
        }
        return false
    }
}

public struct MetricsEndpointError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
