import XCTest
@testable import Gateway

final class ConfigurationTests: XCTestCase {
    func testDefaultsAreSafe() {
        let c = GatewayConfiguration()
        XCTAssertTrue(c.fips, "FIPS-only algorithms are the default")
        XCTAssertEqual(c.listenHost, "127.0.0.1")
        XCTAssertEqual(c.hostKeyType, "ecdsa-p256")
    }

    func testEverySettingHasDocumentationAndAUniqueKey() {
        let keys = GatewayConfiguration.settings.map(\.key)
        XCTAssertEqual(Set(keys).count, keys.count)
        for setting in GatewayConfiguration.settings {
            XCTAssertFalse(setting.doc.isEmpty, setting.key)
        }
    }

    func testSetRecordsTheSourceAndRejectsBadValues() {
        var c = GatewayConfiguration()
        XCTAssertNil(c.set("listen", to: "[::1]:2200", source: "command line"))
        XCTAssertEqual(c.listenHost, "::1")
        XCTAssertEqual(c.listenPort, 2200)
        XCTAssertNotNil(c.set("listen", to: "127.0.0.1:99999", source: "x"))
        XCTAssertNotNil(c.set("fips", to: "maybe", source: "x"))
        XCTAssertNotNil(c.set("maxAuthTries", to: "٣", source: "x"), "only ASCII digits count")
        XCTAssertNotNil(c.set("nosuch", to: "1", source: "x"))
        XCTAssertTrue(c.dump().contains("listen ::1:2200    # command line"))
        XCTAssertTrue(c.dump().contains("fips true    # default"))
    }

    func testConfigurationFileErrorsNameFileAndLine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("gatehouse.yaml").path
        try "listen: 127.0.0.1:2200\nfipps: false\nmaxAuthTries: lots\n".write(toFile: file, atomically: true, encoding: .utf8)
        var c = GatewayConfiguration()
        XCTAssertThrowsError(try ConfigurationFile.apply(file: file, to: &c)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("gatehouse.yaml:2:"), text)
            XCTAssertTrue(text.contains("fipps"), text)
            XCTAssertTrue(text.contains("gatehouse.yaml:3:"), text)
        }
        XCTAssertTrue(c.fips, "a typo must not switch FIPS off")
    }

    func testConfigurationFileValuesApplyWithTheirSource() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("gatehouse.yaml").path
        try "fips: false\nmaxAuthTries: 3\n".write(toFile: file, atomically: true, encoding: .utf8)
        var c = GatewayConfiguration()
        try ConfigurationFile.apply(file: file, to: &c)
        XCTAssertFalse(c.fips)
        XCTAssertEqual(c.maxAuthTries, 3)
        XCTAssertTrue(c.dump().contains("maxAuthTries 3    # \(file):2"), c.dump())
    }

    func testTheWebConsoleNeedsHTTPSOffLoopbackAndIsOffByDefault() {
        var c = GatewayConfiguration()
        XCTAssertNil(c.webHost, "the console is off unless configured")
        XCTAssertNil(c.set("webListen", to: "127.0.0.1:8080", source: "test"))
        XCTAssertNil(c.webProblem)
        XCTAssertNil(c.set("webListen", to: "[::1]:8080", source: "test"))
        XCTAssertNil(c.webProblem)
        XCTAssertNil(c.set("webListen", to: "0.0.0.0:8443", source: "test"))
        XCTAssertTrue(c.webProblem?.contains("not a loopback address") ?? false, c.webProblem ?? "")
        XCTAssertNil(c.set("webCertificate", to: "/etc/gatehouse/web.crt", source: "test"))
        XCTAssertTrue(c.webProblem?.contains("go together") ?? false, c.webProblem ?? "")
        XCTAssertNil(c.set("webPrivateKey", to: "/etc/gatehouse/web.key", source: "test"))
        XCTAssertNil(c.webProblem)
        XCTAssertNotNil(c.set("webListen", to: "localhost", source: "test"), "a listen address without a port")
        XCTAssertNotNil(c.set("webPamService", to: "bad service", source: "test"))
        XCTAssertNil(c.set("webListen", to: "off", source: "test"))
        XCTAssertNil(c.webHost)
    }
}
