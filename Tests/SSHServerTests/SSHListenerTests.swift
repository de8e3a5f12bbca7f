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
