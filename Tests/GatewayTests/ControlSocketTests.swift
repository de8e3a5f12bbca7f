import Foundation
import GatehouseCore
import Synchronization
import XCTest
@testable import Gateway

/// The control protocol's coding, and the real socket server fed hostile
/// bytes. The server runs with a recording handler, so these tests see
/// exactly which requests reach it; the e2e tests (test_session_limits.py,
/// test_hardening.py) drive the daemon's own handler through the CLI.
final class ControlSocketTests: XCTestCase {
    private var directory = ""
    private var server: ControlSocket!
    private let recorder = Recorder()
    private let listing = LiveSessionListing(
        node: "gw1",
        sessions: [LiveSession(id: "0123456789abcdef01234567", user: "alice", source: "127.0.0.1",
                               started: Date(timeIntervalSince1970: 1_800_000_000), idleSeconds: 5,
                               commandRunning: true)],
        lockedUsers: ["bob"], unauthenticated: 2)

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.path + "/gh-ctl-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false,
                                                attributes: [.posixPermissions: 0o700])
        let listing = listing
        server = try ControlSocket(path: ControlSocket.path(stateDirectory: directory)) { [recorder] request, _ in
            recorder.requests.withLock { $0.append(request) }
            switch request {
            case .list: return .sessions(listing)
            case .kill(let session, _): return .killed(session: session)
            case .unlock(let user): return .unlocked(user: user, wasLocked: false)
            case .mfaChanged(_, let reset): return .audited(kind: reset ? "mfa.reset" : "mfa.enrolled")
            case .apiTokenChanged(_, _, let revoked): return .audited(kind: revoked ? "api.token-revoked" : "api.token-created")
            }
        }
        server.start()
    }

    override func tearDown() {
        server.remove()
        try? FileManager.default.removeItem(atPath: directory)
    }

    private var path: String { ControlSocket.path(stateDirectory: directory) }

    private func send(_ bytes: [UInt8]) throws -> ControlResponse {
        let answer = try ControlSocket.exchange(path: path, bytes)
        XCTAssertEqual(answer.last, 0x0a, "one JSON line")
        XCTAssertEqual(answer.filter { $0 == 0x0a }.count, 1, "one JSON line")
        return try ControlWire.response(from: answer)
    }

    private func assertRefused(_ bytes: [UInt8], _ reason: ControlRefusal, file: StaticString = #filePath, line: UInt = #line) throws {
        let answer = try send(bytes)
        guard case .refused(let got, let message) = answer else {
            return XCTFail("expected a refusal, got \(answer)", file: file, line: line)
        }
        XCTAssertEqual(got, reason, message, file: file, line: line)
        XCTAssertFalse(message.isEmpty, file: file, line: line)
    }

    // MARK: coding

    func testRequestsHaveOneStableJSONShape() throws {
        XCTAssertEqual(String(decoding: try ControlWire.line(ControlRequest.list), as: UTF8.self), "{\"list\":{}}\n")
        XCTAssertEqual(String(decoding: try ControlWire.line(ControlRequest.kill(session: "abc", reason: "maintenance")), as: UTF8.self),
                       "{\"kill\":{\"reason\":\"maintenance\",\"session\":\"abc\"}}\n")
        XCTAssertEqual(String(decoding: try ControlWire.line(ControlRequest.unlock(user: "bob")), as: UTF8.self),
                       "{\"unlock\":{\"user\":\"bob\"}}\n")
        XCTAssertEqual(String(decoding: try ControlWire.line(ControlRequest.mfaChanged(user: "bob", reset: true)), as: UTF8.self),
                       "{\"mfaChanged\":{\"reset\":true,\"user\":\"bob\"}}\n")
    }

    func testRequestsAndResponsesRoundTrip() throws {
        for request in [ControlRequest.list, .kill(session: "abc", reason: "why \"quoted\" ü"), .unlock(user: "bob"),
                        .mfaChanged(user: "bob", reset: false)] {
            XCTAssertEqual(try ControlWire.request(from: Array(ControlWire.line(request).dropLast())).get(), request)
        }
        let responses: [ControlResponse] = [
            .sessions(listing), .killed(session: "abc"), .unlocked(user: "bob", wasLocked: true),
            .audited(kind: "mfa.enrolled"),
            .refused(reason: .notFound, message: "no live session abc on this node"),
        ]
        for response in responses {
            XCTAssertEqual(try ControlWire.response(from: ControlWire.line(response)), response)
        }
    }

    func testRequestArgumentsAreChecked() {
        XCTAssertNil(ControlRequest.kill(session: "0123456789abcdef01234567", reason: "x").problem)
        XCTAssertNotNil(ControlRequest.kill(session: "../etc", reason: "x").problem)
        XCTAssertNotNil(ControlRequest.kill(session: "", reason: "x").problem)
        XCTAssertNotNil(ControlRequest.kill(session: String(repeating: "a", count: 65), reason: "x").problem)
        XCTAssertNotNil(ControlRequest.kill(session: "abc", reason: " \t ").problem)
        XCTAssertNil(ControlRequest.unlock(user: "alice").problem)
        XCTAssertNotNil(ControlRequest.unlock(user: "Alice; rm").problem)
        XCTAssertNil(ControlRequest.mfaChanged(user: "alice", reset: true).problem)
        XCTAssertNotNil(ControlRequest.mfaChanged(user: "bob smith", reset: false).problem)
    }

    // MARK: the socket server

    func testValidRequestsReachTheHandler() throws {
        XCTAssertEqual(try ControlSocket.request(stateDirectory: directory, .list), .sessions(listing))
        XCTAssertEqual(try ControlSocket.request(stateDirectory: directory, .kill(session: "abc", reason: "x")),
                       .killed(session: "abc"))
        XCTAssertEqual(try ControlSocket.request(stateDirectory: directory, .unlock(user: "bob")),
                       .unlocked(user: "bob", wasLocked: false))
        XCTAssertEqual(recorder.requests.withLock { $0 }, [.list, .kill(session: "abc", reason: "x"), .unlock(user: "bob")])
    }

    func testGarbageIsRefusedAsMalformed() throws {
        try assertRefused(Array("hello\n".utf8), .malformed)
        try assertRefused(Array("list\n".utf8), .malformed)                 // the old line protocol
        try assertRefused(Array("kill abc reason\n".utf8), .malformed)
        try assertRefused(Array("\n".utf8), .malformed)
        try assertRefused([0xff, 0xfe, 0x00, 0x7b, 0x0a], .malformed)       // not UTF-8, a NUL
        try assertRefused(Array("[\"list\"]\n".utf8), .malformed)
        try assertRefused(Array("{}\n".utf8), .malformed)
        try assertRefused(Array("{\"list\":{},\"unlock\":{\"user\":\"bob\"}}\n".utf8), .malformed)
        try assertRefused(Array("{\"list\":{".utf8), .malformed)             // end of stream, no newline
        XCTAssertEqual(recorder.requests.withLock { $0 }, [])
    }

    func testWrongTypesAreRefusedAsMalformed() throws {
        try assertRefused(Array("{\"kill\":{\"session\":5,\"reason\":true}}\n".utf8), .malformed)
        try assertRefused(Array("{\"kill\":{\"session\":\"abc\"}}\n".utf8), .malformed)
        try assertRefused(Array("{\"unlock\":\"bob\"}\n".utf8), .malformed)
        try assertRefused(Array("{\"list\":[]}\n".utf8), .malformed)
        try assertRefused(Array("{\"unlock\":{\"user\":null}}\n".utf8), .malformed)
        XCTAssertEqual(recorder.requests.withLock { $0 }, [])
    }

    func testUnknownRequestsAndBadArgumentsAreRefused() throws {
        try assertRefused(Array("{\"reboot\":{}}\n".utf8), .unknownRequest)
        try assertRefused(Array("{\"unlock\":{\"user\":\"Bob Smith\"}}\n".utf8), .invalidArgument)
        try assertRefused(Array("{\"kill\":{\"session\":\"../x\",\"reason\":\"r\"}}\n".utf8), .invalidArgument)
        XCTAssertEqual(recorder.requests.withLock { $0 }, [])
    }

    func testOversizedRequestsAreRefusedWithoutReadingThemWhole() throws {
        try assertRefused([UInt8](repeating: 0x61, count: ControlWire.maximumRequestBytes + 1), .tooLong)
        // Valid JSON, padded past the limit before its newline.
        let padded = Array("{\"list\":{}}".utf8) + [UInt8](repeating: 0x20, count: ControlWire.maximumRequestBytes) + [0x0a]
        try assertRefused(padded, .tooLong)
        try assertRefused([UInt8](repeating: 0x7b, count: 1 << 20), .tooLong)
        // At the limit it is still read.
        let atLimit = Array("{\"list\":{}}".utf8) + [UInt8](repeating: 0x20, count: ControlWire.maximumRequestBytes - 11) + [0x0a]
        XCTAssertEqual(try send(atLimit), .sessions(listing))
    }

    func testTheServerStillAnswersAfterHostileInput() throws {
        for bytes in [Array("\u{1b}[2J\n".utf8), [UInt8](repeating: 0, count: 9000), Array("{\"kill\":{}}".utf8)] {
            _ = try? ControlSocket.exchange(path: path, bytes)
        }
        XCTAssertEqual(try ControlSocket.request(stateDirectory: directory, .list), .sessions(listing))
    }

    // MARK: descriptors

    /// The listening socket belonged to the serving thread, which closed it
    /// on its way out: a second `remove()` (or one after the thread had
    /// stopped) shut down whatever socket had been given that number since.
    func testRemovingTwiceLeavesOtherSocketsAlone() throws {
        server.remove()
        usleep(300_000)     // the serving thread wakes from accept and returns
        var pairs: [[Int32]] = []
        defer { for pair in pairs { pair.forEach { _ = Glibc.close($0) } } }
        for _ in 0..<32 {
            var ends: [Int32] = [0, 0]
            XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &ends), 0)
            pairs.append(ends)
        }
        server.remove()
        for pair in pairs {
            var byte: UInt8 = 7
            XCTAssertEqual(Glibc.send(pair[0], &byte, 1, Int32(MSG_NOSIGNAL)), 1, "socket \(pair[0]) was shut down")
            XCTAssertEqual(recv(pair[1], &byte, 1, Int32(MSG_DONTWAIT)), 1, "socket \(pair[1]) was shut down")
        }
    }

    /// With the process out of descriptors, `accept` fails at once (Linux
    /// takes the new descriptor's number before it waits for a client). The
    /// loop used to sleep 100 ms and try again, for as long as the table
    /// stayed full, and the operator was never answered. Now the reserve
    /// descriptor, given up, serves each operator in turn.
    ///
    /// The table is full only while this server runs; its clients' sockets
    /// are made before, as `connect` needs no new descriptor. The wait for
    /// an answer is a bound against the old behaviour's hang, not a measure.
    func testTheOperatorIsAnsweredWhileTheProcessIsOutOfDescriptors() throws {
        let listing = listing
        let full = try ControlSocket(path: directory + "/full.sock") { _, _ in .sessions(listing) }
        defer { full.remove() }
        let first = try OwnedFileDescriptor(socketDomain: AF_UNIX, type: Int32(SOCK_STREAM.rawValue))
        let second = try OwnedFileDescriptor(socketDomain: AF_UNIX, type: Int32(SOCK_STREAM.rawValue))
        // Another server answers the same request once before the table is
        // full, so that nothing the process sets up lazily the first time
        // (the encoder's files and the like) takes a descriptor number while
        // the test holds them all; `full` itself starts only once the table
        // is full, so its first accept fails with EMFILE and needs the reserve.
        do {
            let warm = try ControlSocket(path: directory + "/warm.sock") { _, _ in .sessions(listing) }
            defer { warm.remove() }
            warm.start()
            let client = try OwnedFileDescriptor(socketDomain: AF_UNIX, type: Int32(SOCK_STREAM.rawValue))
            XCTAssertEqual(try? ControlWire.response(from: listRequest(over: client, to: directory + "/warm.sock")),
                           .sessions(listing))
        }
        let highest = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").compactMap { Int32($0) }.max() ?? 64
        var saved = rlimit()
        XCTAssertEqual(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &saved), 0)
        var lowered = saved
        lowered.rlim_cur = rlim_t(highest + 1)
        XCTAssertEqual(setrlimit(Int32(RLIMIT_NOFILE.rawValue), &lowered), 0)
        var filler: [Int32] = []
        filler.reserveCapacity(Int(highest) + 1)
        defer {
            for fd in filler { _ = Glibc.close(fd) }
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &saved)
        }
        while true {
            let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
            if fd < 0 { break }
            filler.append(fd)
        }
        XCTAssertEqual(errno, EMFILE)
        full.start()
        let answers = [try listRequest(over: first, to: directory + "/full.sock"),
                       try listRequest(over: second, to: directory + "/full.sock")]
        for answer in answers {
            XCTAssertEqual(try? ControlWire.response(from: answer), .sessions(listing),
                           "answer: \(String(decoding: answer, as: UTF8.self))")
        }
    }

    /// Sends `list` over `client` (its socket already made) and returns the
    /// answer: what arrives before the server closes, or 10 s pass.
    private func listRequest(over client: borrowing OwnedFileDescriptor, to path: String) throws -> [UInt8] {
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        XCTAssertEqual(setsockopt(client.rawValue, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)), 0)
        try client.connect(unixPath: path)
        try Array("{\"list\":{}}\n".utf8).withUnsafeBytes { try client.sendAll($0) }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = (try? buffer.withUnsafeMutableBytes { try client.read(into: $0) }) ?? 0
            if n == 0 { break }
            answer += buffer[0..<n]
        }
        return answer
    }

    /// Running out of descriptors (a flood of connections) made `accept`
    /// fail with EMFILE, and the serving thread returned for good: the
    /// operator's channel was gone exactly when it was needed. Now only a
    /// shut-down socket ends the loop. (The test above provokes EMFILE for
    /// real, with the descriptor limit lowered only for its two requests;
    /// an earlier version that kept it lowered for long was flaky.)
    func testOnlyAShutDownSocketEndsTheAcceptLoop() {
        for code in [EMFILE, ENFILE] {
            XCTAssertEqual(ControlSocket.afterAcceptFailure(Errno(rawValue: code)), .useReserve, "errno \(code)")
        }
        for code in [ENOBUFS, ENOMEM] {
            XCTAssertEqual(ControlSocket.afterAcceptFailure(Errno(rawValue: code)), .waitForMemory, "errno \(code)")
        }
        XCTAssertEqual(ControlSocket.afterAcceptFailure(Errno(rawValue: ECONNABORTED)), .next)
        XCTAssertEqual(ControlSocket.afterAcceptFailure(Errno(rawValue: EINVAL)), .stop)
    }
}

/// The requests that reached the handler, in order.
private final class Recorder: Sendable {
    let requests = Mutex<[ControlRequest]>([])
}
