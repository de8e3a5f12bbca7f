import Foundation
import GatehouseCore
import PAMWorkers
import TestSupport
import XCTest

/// The real `gatehouse-pam-worker` driven by hand over its channel: it
/// serves transactions one after another, exits 0 at the channel's end and
/// exits 3 (saying why, never what was answered) on a request out of order
/// or malformed.
final class PAMWorkerTests: XCTestCase {
    var stacks: PAMTestStacks!
    var worker = ""

    override func setUpWithError() throws {
        stacks = try PAMTestStacks()
        worker = try HelperProcess("gatehouse-pam-worker").path
    }

    override func tearDown() { stacks?.remove() }

    /// A running worker, the daemon's end of its channel, and its standard error.
    final class Running {
        let process = Process()
        let channel: PacketChannel
        let errors = Pipe()

        init(_ worker: String, environment: [String: String]) throws {
            let pair = try PacketChannel.pair()
            channel = pair.first
            let theirs = pair.second
            // The shell moves the socket from standard input to descriptor 3,
            // where the pool's posix_spawn puts it.
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "exec \"$0\" 3<&0 0</dev/null", worker]
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            process.standardInput = FileHandle(fileDescriptor: theirs.descriptor.rawValue, closeOnDealloc: false)
            process.standardError = errors
            try process.run()
            _ = consume theirs
        }

        func send(_ request: PAMWorkerRequest) throws {
            try channel.send(try PAMWorkerProtocol.encode(request))
        }

        func send(raw: [UInt8]) throws { try channel.send(raw) }

        /// The next reply; nil at the end.
        func reply() throws -> PAMWorkerReply? {
            let received = try channel.receive(maxBytes: PAMWorkerProtocol.maxPacketBytes)
            switch consume received {
            case .packet(let packet): return try PAMWorkerProtocol.decodeReply(packet.bytes)
            case .endOfStream: return nil
            }
        }

        /// Waits for the exit; its status and what it wrote on standard error.
        func exit() -> (status: Int32, errors: String) {
            process.waitUntilExit()
            let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            return (process.terminationStatus, text)
        }

        func close() throws { try channel.descriptor.shutdown(Int32(SHUT_RDWR)) }
    }

    func start() throws -> Running { try Running(worker, environment: stacks.environment) }

    let begin = PAMWorkerRequest.begin(service: "gh-password", user: "alice", remoteHost: "192.0.2.1")
    let prompt = PAMWorkerReply.conversation([PAMMessage(style: .promptEchoOff, text: "Password: ")])

    func testTransactionsFollowOneAnotherAndTheEndIsAnOrderlyExit() throws {
        let running = try start()
        try running.send(begin)
        XCTAssertEqual(try running.reply(), prompt)
        try running.send(.answers(["secret"]))
        XCTAssertEqual(try running.reply(), .result(.success))
        try running.send(begin)
        XCTAssertEqual(try running.reply(), prompt)
        try running.send(.cancel)
        guard case .result(.failure(let error))? = try running.reply() else { return XCTFail("no failure") }
        XCTAssertEqual(error.operation, "pam_authenticate")
        try running.close()
        let (status, errors) = running.exit()
        XCTAssertEqual(status, 0, errors)
        // pam_wrapper's own warnings may be there; the worker reported nothing.
        XCTAssertFalse(errors.contains("gatehouse-pam-worker["), errors)
    }

    /// After `violation` (sent once `inConversation` put the worker at its
    /// first prompt, or while idle), the worker closes its end and exits 3,
    /// saying `reason` and nothing of `secret`.
    func expectExit(after violation: [UInt8], inConversation: Bool, reason: String, secret: String = "secret",
                    file: StaticString = #filePath, line: UInt = #line) throws {
        let running = try start()
        if inConversation {
            try running.send(begin)
            XCTAssertEqual(try running.reply(), prompt, file: file, line: line)
        }
        try running.send(raw: violation)
        XCTAssertNil(try running.reply(), file: file, line: line)
        let (status, errors) = running.exit()
        XCTAssertEqual(status, 3, errors, file: file, line: line)
        XCTAssertTrue(errors.contains(reason), errors, file: file, line: line)
        XCTAssertFalse(errors.contains(secret), errors, file: file, line: line)
    }

    func testAnswersBeforeBeginEndTheWorker() throws {
        try expectExit(after: try PAMWorkerProtocol.encode(.answers(["hunter2"])), inConversation: false,
                       reason: "a request other than begin while idle", secret: "hunter2")
    }

    func testBeginInsideAConversationEndsTheWorker() throws {
        try expectExit(after: try PAMWorkerProtocol.encode(begin), inConversation: true,
                       reason: "begin inside a conversation")
    }

    func testAnswersThatDoNotMatchTheMessagesEndTheWorker() throws {
        try expectExit(after: try PAMWorkerProtocol.encode(.answers(["secret", "extra"])), inConversation: true,
                       reason: "answers do not match the messages")
    }

    func testAMalformedRequestEndsTheWorker() throws {
        try expectExit(after: [1, 1, 0xff, 0xff], inConversation: false, reason: "malformed request")
    }
}
