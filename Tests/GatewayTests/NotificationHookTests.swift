import Foundation
import GatehouseCore
import Lockbox
import Logging
import Synchronization
import XCTest
@testable import Gateway

/// The notification hook: JSON on stdin, a timeout that kills, failures logged.
final class NotificationHookTests: XCTestCase {
    final class Captured: Sendable {
        let messages = Mutex<[String]>([])
        func add(_ m: String) { messages.withLock { $0.append(m) } }
        var all: [String] { messages.withLock { $0 } }
    }

    struct Handler: LogHandler {
        let sink: Captured
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            sink.add("\(event.level): \(event.message)")
        }
    }

    var dir = ""
    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "gatehouse-hook-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func script(_ body: String) throws -> String {
        let path = dir + "/hook.sh"
        try ("#!/bin/sh\n" + body + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    func testEventArrivesAsJSONOnStdin() throws {
        let out = dir + "/got.json"
        let hook = NotificationHook(argv: [try script("cat > \(out)")], timeoutSeconds: 5)
        let captured = Captured()
        let event = AuditEvent(time: Date(timeIntervalSince1970: 0), kind: .lockboxApproved, user: "bob",
                               session: SessionID(rawValue: "s1"), fields: ["requestID": "7", "actor": "bob"])
        var line = try JSONSerialization.data(withJSONObject: ["kind": event.kind.rawValue, "fields": event.fields])
        line.append(0x0a)
        NotificationHookRunner.run(hook, input: line, logger: Logger(label: "t") { _ in Handler(sink: captured) })
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out))) as? [String: Any]
        XCTAssertEqual(object?["kind"] as? String, "lockbox.approved")
        XCTAssertEqual((object?["fields"] as? [String: String])?["requestID"], "7")
        XCTAssertTrue(captured.all.isEmpty, "\(captured.all)")
    }

    func testAHangingHookIsKilledAtItsTimeoutAndLogged() throws {
        let hook = NotificationHook(argv: [try script("exec sleep 30")], timeoutSeconds: 1)
        let captured = Captured()
        let started = Date()
        NotificationHookRunner.run(hook, input: Data("{}\n".utf8), logger: Logger(label: "t") { _ in Handler(sink: captured) })
        XCTAssertLessThan(Date().timeIntervalSince(started), 10)
        XCTAssertTrue(captured.all.contains { $0.contains("timed out after 1s") }, "\(captured.all)")
    }

    func testAMissingHookIsLoggedNotFatal() {
        let captured = Captured()
        NotificationHookRunner.run(NotificationHook(argv: [dir + "/missing"], timeoutSeconds: 1), input: Data(),
                                   logger: Logger(label: "t") { _ in Handler(sink: captured) })
        XCTAssertTrue(captured.all.contains { $0.contains("could not start") }, "\(captured.all)")
    }
}
