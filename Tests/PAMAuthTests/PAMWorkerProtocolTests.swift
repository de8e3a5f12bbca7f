import PAMWorkers
import XCTest

/// The worker protocol's codec against hostile input: every message kind
/// round-trips, and anything truncated, oversized, sent the wrong way,
/// padded or not UTF-8 is a protocol error, never a crash or a guess.
final class PAMWorkerProtocolTests: XCTestCase {
    let requests: [PAMWorkerRequest] = [
        .begin(service: "gatehouse", user: "alice", remoteHost: "192.0.2.7"),
        .answers(["secret", nil, "123456"]),
        .answers([""]),
        .cancel,
    ]
    let replies: [PAMWorkerReply] = [
        .conversation([PAMMessage(style: .textInfo, text: "Welcome"),
                       PAMMessage(style: .errorMessage, text: "héllo"),
                       PAMMessage(style: .promptEchoOff, text: "Password: "),
                       PAMMessage(style: .promptEchoOn, text: "Code: ")]),
        .result(.success),
        .result(.failure(PAMError(code: 7, message: "Authentication failure", operation: "pam_authenticate"))),
        .result(.failure(PAMError(code: -1, message: "", operation: ""))),
    ]

    func expectRequestError(_ bytes: [UInt8], _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        do {
            let request = try PAMWorkerProtocol.decodeRequest(bytes)
            XCTFail("decoded \(request)", file: file, line: line)
        } catch {
            XCTAssertTrue(error.description.contains(fragment), "\(error)", file: file, line: line)
        }
    }

    func expectReplyError(_ bytes: [UInt8], _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        do {
            let reply = try PAMWorkerProtocol.decodeReply(bytes)
            XCTFail("decoded \(reply)", file: file, line: line)
        } catch {
            XCTAssertTrue(error.description.contains(fragment), "\(error)", file: file, line: line)
        }
    }

    func testEveryMessageRoundTrips() throws {
        for request in requests {
            XCTAssertEqual(try PAMWorkerProtocol.decodeRequest(try PAMWorkerProtocol.encode(request)), request)
        }
        for reply in replies {
            XCTAssertEqual(try PAMWorkerProtocol.decodeReply(try PAMWorkerProtocol.encode(reply)), reply)
        }
    }

    /// Every proper prefix of every message is refused.
    func testEveryTruncationIsRefused() throws {
        for request in requests {
            let bytes = try PAMWorkerProtocol.encode(request)
            for length in 0..<bytes.count {
                XCTAssertThrowsError(try PAMWorkerProtocol.decodeRequest(Array(bytes[..<length])), "\(request) cut at \(length)")
            }
        }
        for reply in replies {
            let bytes = try PAMWorkerProtocol.encode(reply)
            for length in 0..<bytes.count {
                XCTAssertThrowsError(try PAMWorkerProtocol.decodeReply(Array(bytes[..<length])), "\(reply) cut at \(length)")
            }
        }
    }

    func testBytesAfterAMessageAreRefused() throws {
        expectRequestError(try PAMWorkerProtocol.encode(.cancel) + [0], "1 bytes after the message")
        expectReplyError(try PAMWorkerProtocol.encode(.result(.success)) + [1, 2], "2 bytes after the message")
    }

    /// A message of the other side is out of order wherever it arrives.
    func testMessagesSentTheWrongWayAreRefused() throws {
        for request in requests {
            expectReplyError(try PAMWorkerProtocol.encode(request), "sent by a worker")
        }
        for reply in replies {
            expectRequestError(try PAMWorkerProtocol.encode(reply), "sent to a worker")
        }
    }

    func testUnknownVersionKindStyleAndFlagsAreRefused() throws {
        expectRequestError([2, 3], "protocol version 2")
        expectRequestError([1, 9], "unknown message kind 9")
        expectReplyError([1, 0], "unknown message kind 0")
        expectReplyError([1, 4, 1, 9, 0, 0], "unknown message style 9")
        expectReplyError([1, 5, 2], "result flag")
        expectRequestError([1, 2, 1, 2], "answer flag")
    }

    /// Each limit holds on both sides: the encoder will not write an
    /// oversized field, and a hand-made packet with one is refused.
    func testOversizedFieldsAreRefusedBothWays() throws {
        let longUser = String(repeating: "a", count: PAMWorkerProtocol.maxUserBytes + 1)
        XCTAssertThrowsError(try PAMWorkerProtocol.encode(.begin(service: "s", user: longUser, remoteHost: "h")))
        expectRequestError([1, 1, 0, 1, 0x73, 0, 65] + Array(longUser.utf8) + [0, 1, 0x68], "user longer than 64 bytes")

        let longAnswer = String(repeating: "x", count: PAMWorkerProtocol.maxAnswerBytes + 1)
        XCTAssertThrowsError(try PAMWorkerProtocol.encode(.answers([longAnswer])))
        expectRequestError([1, 2, 1, 1, 0x04, 0x01] + Array(longAnswer.utf8), "answer longer than 1024 bytes")

        let longPrompt = String(repeating: "p", count: PAMWorkerProtocol.maxMessageBytes + 1)
        XCTAssertThrowsError(try PAMWorkerProtocol.encode(.conversation([PAMMessage(style: .promptEchoOff, text: longPrompt)])))
        expectReplyError([1, 4, 1, 1, 0x04, 0x01] + Array(longPrompt.utf8), "message longer than 1024 bytes")

        let many = [PAMMessage](repeating: PAMMessage(style: .textInfo, text: "hi"), count: PAMWorkerProtocol.maxMessages + 1)
        XCTAssertThrowsError(try PAMWorkerProtocol.encode(.conversation(many)))
        expectReplyError([1, 4, 17], "17 messages")
        expectReplyError([1, 4, 0], "0 messages")
        XCTAssertThrowsError(try PAMWorkerProtocol.encode(.answers([String?](repeating: nil, count: 17))))
        expectRequestError([1, 2, 0], "0 answers")

        // A full conversation fits the packet limit the channel enforces.
        let full = [PAMMessage](repeating: PAMMessage(style: .promptEchoOff, text: String(repeating: "p", count: 1024)),
                                count: PAMWorkerProtocol.maxMessages)
        XCTAssertEqual(try PAMWorkerProtocol.encode(.conversation(full)).count, PAMWorkerProtocol.maxPacketBytes)
    }

    /// PAM takes C strings: a NUL would cut an answer short, so none is carried.
    func testNULAndInvalidUTF8AreRefused() throws {
        XCTAssertThrowsError(try PAMWorkerProtocol.encode(.answers(["sec\u{0}ret"])))
        expectRequestError([1, 2, 1, 1, 0, 3, 0x61, 0, 0x62], "answer holds a NUL byte")
        expectRequestError([1, 2, 1, 1, 0, 2, 0xc3, 0x28], "answer is not UTF-8")
        expectReplyError([1, 4, 1, 3, 0, 1, 0xff], "message is not UTF-8")
    }

    /// An error names the field, never what it held: answers are secrets.
    func testErrorsDoNotRepeatTheContent() throws {
        let packet = try PAMWorkerProtocol.encode(.answers(["hunter2hunter2"])) + [0]
        do {
            _ = try PAMWorkerProtocol.decodeRequest(packet)
            XCTFail("decoded a padded packet")
        } catch {
            XCTAssertFalse(error.description.contains("hunter2"), "\(error)")
        }
    }
}
