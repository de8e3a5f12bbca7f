#if os(Linux)
import Glibc
import Sandbox
import TestSupport
import XCTest

/// The `LISTEN_*` protocol on fake environments (no descriptor is touched
/// in the runner), and once on real sockets in `sandbox-helper`.
final class SocketActivationTests: XCTestCase {
    private let me = getpid()

    func testNotActivatedMeansNoListeners() throws {
        XCTAssertEqual(try SocketActivation.listeners(environment: [:], processID: me), [])
    }

    /// The variables were inherited from a parent that was activated, not this process.
    func testVariablesForAnotherProcessAreNotOurs() throws {
        let environment = ["LISTEN_PID": String(me + 1), "LISTEN_FDS": "1"]
        XCTAssertEqual(try SocketActivation.listeners(environment: environment, processID: me), [])
    }

    func testMalformedVariablesAreClearErrors() {
        let cases: [([String: String], String)] = [
            (["LISTEN_PID": "12x"], "LISTEN_PID is not a process id: 12x"),
            (["LISTEN_PID": "-4"], "LISTEN_PID is not a process id: -4"),
            (["LISTEN_PID": String(me)], "LISTEN_PID is set without LISTEN_FDS"),
            (["LISTEN_PID": String(me), "LISTEN_FDS": "-1"], "LISTEN_FDS is not a descriptor count: -1"),
            (["LISTEN_PID": String(me), "LISTEN_FDS": "two"], "LISTEN_FDS is not a descriptor count: two"),
            (["LISTEN_PID": String(me), "LISTEN_FDS": "2147483647"], "LISTEN_FDS is not a descriptor count: 2147483647"),
            (["LISTEN_PID": String(me), "LISTEN_FDS": "2", "LISTEN_FDNAMES": "ssh"],
             "LISTEN_FDNAMES names 1 descriptors, LISTEN_FDS says 2"),
        ]
        for (environment, message) in cases {
            XCTAssertThrowsError(try SocketActivation.listeners(environment: environment, processID: me)) { error in
                XCTAssertEqual("\(error)", "socket activation: \(message)", "\(environment)")
            }
        }
    }

    func testZeroDescriptorsIsNoListeners() throws {
        let environment = ["LISTEN_PID": String(me), "LISTEN_FDS": "0"]
        XCTAssertEqual(try SocketActivation.listeners(environment: environment, processID: me), [])
    }

    /// Real sockets at 3 and 4: named, close-on-exec, the variables gone from
    /// the environment, and the TCP one accepts a connection.
    func testPassedSocketsAreTakenNamedAndMarkedCloseOnExec() throws {
        let run = try HelperProcess("sandbox-helper").run(["activation"])
        XCTAssertEqual(run.lines, [
            "listener ssh 3 cloexec true",
            "listener control 4 cloexec true",
            "environment left: none",
            "accepted on ssh: true",
        ], "\(run)")
    }
}
#endif
