import Foundation
import GatehouseCore
@testable import Transcript
import XCTest

final class AsciicastTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "gatehouse-cast-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func header() -> AsciicastWriter.Header {
        AsciicastWriter.Header(width: 100, height: 30, start: Date(timeIntervalSince1970: 1_800_000_000), term: "xterm",
                               title: "t", gatehouse: ["user": .string("alice"), "session": .string("s1"),
                                                       "claim": .array([.object(["role": .string("MailboxReader")])])])
    }

    func testHeaderEventsAndEndMarkerRoundTrip() throws {
        let path = dir + "/s1.cast"
        let writer = try AsciicastWriter(path: path, header: header())
        writer.recordOutput(Array("hello\r\n".utf8))
        writer.recordInput(Array("Get-Mailbox\r".utf8), redacted: false)
        writer.recordResize(columns: 120, rows: 40)
        writer.close(reason: "exit")
        let cast = try AsciicastReader(path: path)
        XCTAssertEqual(cast.header["version"], .int(2))
        XCTAssertEqual(cast.header["width"], .int(100))
        XCTAssertEqual(cast.header["timestamp"], .int(1_800_000_000))
        XCTAssertEqual(cast.gatehouse["user"], .string("alice"))
        XCTAssertEqual(cast.events.map(\.type), ["o", "i", "r", "m"])
        XCTAssertEqual(cast.events[0].data, "hello\r\n")
        XCTAssertEqual(cast.events[2].data, "120x40")
        XCTAssertEqual(cast.endReason, "exit")
        XCTAssertFalse(cast.cutOff)
        XCTAssertTrue(cast.events.map(\.time) == cast.events.map(\.time).sorted())
    }

    func testRedactedInputNeverReachesTheFile() throws {
        let path = dir + "/s2.cast"
        let writer = try AsciicastWriter(path: path, header: header())
        // Byte by byte, as a no-echo prompt reads it: one marker in all.
        for byte in "K7-secret-91\r".utf8 { writer.recordInput([byte], redacted: true) }
        writer.close(reason: "exit")
        let text = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertFalse(text.contains("K7-secret-91"))
        let cast = try AsciicastReader(path: path)
        XCTAssertEqual(cast.events.map(\.data), [AsciicastWriter.redactionMarker, "gatehouse: session ended (exit)"])
    }

    func testTimerFlushesWithoutCloseAndAKilledWriterReadsAsCutOff() throws {
        let path = dir + "/s3.cast"
        let writer = try AsciicastWriter(path: path, header: header(), flushInterval: 0.05)
        writer.recordOutput(Array("before the crash".utf8))
        // No flush() and no close(): only the timer can have written it.
        let deadline = Date() + 2
        while Date() < deadline, !(try String(contentsOfFile: path, encoding: .utf8)).contains("before the crash") {
            usleep(10_000)
        }
        // Simulate the kill: append half an event, as a write cut short would.
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data("[0.5, \"o\", \"half".utf8))
        try handle.close()
        let cast = try AsciicastReader(path: path)
        XCTAssertEqual(cast.events.map(\.data), ["before the crash"])
        XCTAssertTrue(cast.cutOff)
        XCTAssertEqual(cast.unreadableLines, 1)
        withExtendedLifetime(writer) {}
    }

    func testEscapesAndSplitUTF8AreValidJSON() throws {
        let path = dir + "/s4.cast"
        let writer = try AsciicastWriter(path: path, header: header())
        let euro = Array("€".utf8)
        writer.recordOutput([0x1b, 0x5b, 0x32, 0x4a, 0x22, 0x5c] + [euro[0]])
        writer.recordOutput(Array(euro[1...]) + [0x0a])
        writer.recordInput([0xff, 0x41], redacted: false)
        writer.close(reason: "exit")
        let cast = try AsciicastReader(path: path)
        XCTAssertEqual(cast.events[0].data, "\u{1b}[2J\"\\")
        XCTAssertEqual(cast.events[1].data, "€\n")
        XCTAssertEqual(cast.events[2].data, "\u{fffd}A")
        XCTAssertEqual(cast.unreadableLines, 0)
    }

    func testReviewTextEscapesEverythingThatCouldActOnATerminal() {
        let hostile = "a\u{1b}]0;pwned\u{07}b\u{9b}c\r\n\u{7f}"
        let out = ReviewText.terminalOutput(hostile)
        XCTAssertFalse(out.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" || $0.value == 0x7f || (0x80...0x9f).contains($0.value) })
        XCTAssertTrue(out.contains("\\x1b]0;pwned\\x07"))
        let json = ReviewText.jsonLine(Array("{\"a\":\"x\u{9b}y\u{7f}\"}".utf8))
        XCTAssertEqual(json, "{\"a\":\"x\\u009by\\u007f\"}")
        XCTAssertEqual(ReviewText.csvCell("=cmd|' /C calc'!A0"), "\"'=cmd|' /C calc'!A0\"")
    }

    func testTimeFilters() throws {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        XCTAssertEqual(ReviewText.parseTime("7d", now: now), now.addingTimeInterval(-7 * 86400))
        XCTAssertEqual(ReviewText.parseTime("2027-01-15"), Date(timeIntervalSince1970: 1_800_000_000 - 8 * 3600))
        XCTAssertNotNil(ReviewText.parseTime("2026-11-29T04:00:00Z"))
        XCTAssertNil(ReviewText.parseTime("last week"))
        // The fast path agrees with Foundation's parser across the calendar.
        for t in stride(from: -86400.0 * 400, to: 86400 * 365 * 40, by: 86400 * 7.37 + 0.123) {
            let date = Date(timeIntervalSince1970: 1_700_000_000 + t)
            let text = AuditTime.format(date)
            let fast = try XCTUnwrap(AuditTime.parseFast(text), text)
            let slow = try Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text)
            XCTAssertEqual(fast.timeIntervalSince1970, slow.timeIntervalSince1970, accuracy: 1e-6, text)
        }
    }
}

/// The transcript format is frozen once shipped: this golden text pins it
/// (times replaced by their order, since they come from a real clock).
/// Made by running the writer below once and reviewing the result by hand.
final class AsciicastGoldenTests: XCTestCase {
    func testFormatIsStable() throws {
        let path = NSTemporaryDirectory() + "gatehouse-golden-\(UUID().uuidString).cast"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let header = AsciicastWriter.Header(
            width: 80, height: 24, start: Date(timeIntervalSince1970: 1_800_000_000), term: "xterm", title: "gatehouse alice@gw1 session s1",
            gatehouse: ["user": .string("alice"), "session": .string("s1"), "node": .string("gw1"),
                        "client": .string("10.0.0.1:5000"), "start": .string("2027-01-15T08:00:00.000Z"),
                        "claim": .array([.object(["role": .string("MailboxReader"), "source": .string("baseline")])]),
                        "channel": .string("shell")])
        let writer = try AsciicastWriter(path: path, header: header)
        writer.recordOutput(Array("gatehouse alice> ".utf8))
        writer.recordInput(Array("Get-Mailbox\r".utf8), redacted: false)
        writer.recordOutput(Array("Get-Mailbox\r\n\u{1b}x\"q\"\r\n".utf8))
        writer.recordInput(Array("123456\r".utf8), redacted: true)
        writer.recordResize(columns: 100, rows: 30)
        writer.close(reason: "exit")
        var n = 0
        let normalized = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map { line -> String in
            guard line.hasPrefix("[") else { return String(line) }
            n += 1
            return "[T\(n)" + line[line.firstIndex(of: ",")!...]
        }.joined(separator: "\n")
        XCTAssertEqual(normalized, #"""
        {"env":{"SHELL":"gatehouse","TERM":"xterm"},"gatehouse":{"channel":"shell","claim":[{"role":"MailboxReader","source":"baseline"}],"client":"10.0.0.1:5000","node":"gw1","session":"s1","start":"2027-01-15T08:00:00.000Z","user":"alice"},"height":24,"timestamp":1800000000,"title":"gatehouse alice@gw1 session s1","version":2,"width":80}
        [T1, "o", "gatehouse alice> "]
        [T2, "i", "Get-Mailbox\r"]
        [T3, "o", "Get-Mailbox\r\n\u001bx\"q\"\r\n"]
        [T4, "m", "gatehouse: input redacted (no-echo prompt)"]
        [T5, "r", "100x30"]
        [T6, "m", "gatehouse: session ended (exit)"]
        """#)
    }
}
