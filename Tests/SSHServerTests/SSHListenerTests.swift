import Foundation
import Logging
import Synchronization
@testable import SSHServer
import XCTest

/// The listener's start-up: the host key it creates or refuses, and the
/// paths where `init` throws after taking a key or a bind. Each of those runs
/// many times: a second `ssh_key_free` or `ssh_bind_free` aborts the process
/// (glibc detects the double free), which fails the run.
final class SSHListenerTests: TemporaryDirectoryTestCase {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    func config(_ key: String, _ type: SSHKeyType = .ecdsaP256, algorithms: SSHAlgorithms = .modern,
                port: Int = 0) -> SSHServerConfig {
        SSHServerConfig(host: "127.0.0.1", port: port, hostKeyPath: dir + "/" + key, hostKeyType: type,
                        algorithms: algorithms)
    }

    func assertThrows(_ kind: SSHError.Kind, _ config: SSHServerConfig, line: UInt = #line) {
        XCTAssertThrowsError(try SSHListener(config: config, logger: logger), line: line) { error in
            XCTAssertEqual((error as? SSHError)?.kind, kind, "\(error)", line: line)
        }
    }

    func testFirstStartCreatesTheHostKeyAndServesItsPublicHalf() throws {
        let listener = try SSHListener(config: config("host"), logger: logger)
        defer { listener.close() }
        XCTAssertGreaterThan(listener.boundPort, 0)
        XCTAssertEqual(try SSHKey.importPrivateKeyFile(dir + "/host").publicKey, listener.hostPublicKey)
        // A restart serves the same key.
        let again = try SSHListener(config: config("host"), logger: logger)
        defer { again.close() }
        XCTAssertEqual(again.hostPublicKey, listener.hostPublicKey)
    }

    func testHostKeyTheAlgorithmsCannotUseIsRefusedAfterLoading() throws {
        _ = try SSHKeyGenerator.generate(type: .ed25519, privateKeyPath: dir + "/ed")
        for _ in 0..<20 { assertThrows(.configuration, config("ed", algorithms: .fips)) }
    }

    func testUnusableAlgorithmListIsRefusedBeforeTheKeyIsImported() throws {
        var algorithms = SSHAlgorithms.modern
        algorithms.ciphers = "no-such-cipher"
        for _ in 0..<20 { assertThrows(.configuration, config("host", algorithms: algorithms)) }
    }

    func testBusyPortIsRefusedAfterTheBindTookTheKey() throws {
        let first = try SSHListener(config: config("host"), logger: logger)
        defer { first.close() }
        for _ in 0..<20 { assertThrows(.library, config("host", port: first.boundPort)) }
    }

    func testGroupReadableHostKeyIsRefused() throws {
        _ = try SSHKeyGenerator.generate(type: .ecdsaP256, privateKeyPath: dir + "/open")
        XCTAssertEqual(chmod(dir + "/open", 0o640), 0)
        assertThrows(.hostKey, config("open"))
    }

    /// A client of a listener that finds too few free descriptors for a
    /// session is closed before it hears a word; the next one with room is
    /// handed over to libssh.
    func testAConnectionWithoutHeadroomIsClosedBeforeTheBanner() throws {
        let listener = try SSHListener(config: config("host"), logger: logger)
        defer { listener.close() }
        var limit = rlimit()
        XCTAssertEqual(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit), 0)
        let refused = try Self.connect(port: listener.boundPort)
        defer { Glibc.close(refused) }
        guard case .outOfDescriptors(let peer) = try listener.accept(headroom: Int(limit.rlim_cur)) else {
            return XCTFail("a connection was let in without the descriptors its session needs")
        }
        XCTAssertTrue(peer.hasPrefix("127.0.0.1"), peer)
        XCTAssertEqual(Self.firstBytes(refused), 0, "the refused client heard something, or was not closed")
        let admitted = try Self.connect(port: listener.boundPort)
        defer { Glibc.close(admitted) }
        guard case .connection(let connection) = try listener.accept(headroom: 16) else {
            return XCTFail("a connection with room was refused")
        }
        connection.close()
    }

    /// With the table full, Linux's accept fails at once, client or not: the
    /// listener gives up its reserve descriptor, so the next accept takes the
    /// waiting client and refuses it, instead of failing (and the caller
    /// retrying) until descriptors come back.
    func testAFullDescriptorTableRefusesTheClientInsteadOfFailing() throws {
        let listener = try SSHListener(config: config("host"), logger: logger)
        defer { listener.close() }
        let client = try Self.connect(port: listener.boundPort)
        defer { Glibc.close(client) }
        var saved = rlimit()
        XCTAssertEqual(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &saved), 0)
        // Fill every free number below a lowered soft limit.
        var fillers: [Int32] = []
        var low = saved
        low.rlim_cur = rlim_t(Self.highestOpenDescriptor() + 8)
        XCTAssertEqual(setrlimit(Int32(RLIMIT_NOFILE.rawValue), &low), 0)
        defer {
            for fd in fillers { Glibc.close(fd) }
            var restore = saved
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &restore)
        }
        while true {
            let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
            if fd < 0 { break }
            fillers.append(fd)
        }
        XCTAssertEqual(errno, EMFILE)
        let result = Result { try listener.accept(headroom: 1) }
        for fd in fillers { Glibc.close(fd) }
        fillers = []
        guard case .success(.outOfDescriptors) = result else {
            return XCTFail("at a full table accept gave \(result)")
        }
        XCTAssertEqual(Self.firstBytes(client), 0, "the refused client was not closed")
        // The reserve is back: the next client is admitted as usual.
        let next = try Self.connect(port: listener.boundPort)
        defer { Glibc.close(next) }
        guard case .connection(let connection) = try listener.accept(headroom: 1) else {
            return XCTFail("a connection with room was refused")
        }
        connection.close()
    }

    static func connect(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard fd >= 0, rc == 0 else { throw SSHError(.io, operation: "connect", detail: "\(errno)") }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    /// What a client reads first: 0 at EOF, -1 on an error (a reset counts as closed too).
    static func firstBytes(_ fd: Int32) -> Int {
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, 0)
        return n < 0 && errno == ECONNRESET ? 0 : n
    }

    static func highestOpenDescriptor() -> Int32 {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return names.compactMap { Int32($0) }.max() ?? 2
    }

    func testCloseWakesABlockedAccept() throws {
        let listener = try SSHListener(config: config("host"), logger: logger)
        let done = expectation(description: "accept returned")
        let box = ResultBox()
        Thread.detachNewThread {
            do { _ = try listener.accept() } catch { box.set(error as? SSHError) }
            done.fulfill()
        }
        Thread.sleep(forTimeInterval: 0.2)
        listener.close()
        wait(for: [done], timeout: 5)
        XCTAssertEqual(box.get()?.kind, .closed)
        XCTAssertThrowsError(try listener.accept())
    }
}

/// The accept thread's error, handed to the test thread.
private final class ResultBox: Sendable {
    private let error = Mutex<SSHError?>(nil)
    func set(_ e: SSHError?) { error.withLock { $0 = e } }
    func get() -> SSHError? { error.withLock { $0 } }
}
