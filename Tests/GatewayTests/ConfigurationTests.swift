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

    func testProxyProtocolFromTakesAddressesAndRangesAndNamesATypo() throws {
        var c = GatewayConfiguration()
        XCTAssertTrue(c.proxyProtocolFrom.isEmpty, "no balancer unless configured: no header is read")
        XCTAssertNil(c.set("proxyProtocolFrom", to: "127.0.0.1, 10.0.0.0/24,fd00::/8", source: "x"))
        XCTAssertEqual(c.proxyProtocolRanges.map(\.description), ["127.0.0.1", "10.0.0.0/24", "fd00::/8"])
        XCTAssertTrue(c.dump().contains("proxyProtocolFrom 127.0.0.1,10.0.0.0/24,fd00::/8    # x"), c.dump())
        let problem = c.set("proxyProtocolFrom", to: "127.0.0.1, 10.0.0.0/33", source: "y")
        XCTAssertEqual(problem?.contains("'10.0.0.0/33'"), true, problem ?? "")
        XCTAssertEqual(c.proxyProtocolFrom.count, 3, "a bad value changes nothing")

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("gatehouse.yaml").path
        try "fips: true\nproxyProtocolFrom: 127.0.0.1, lb.example.com\n".write(toFile: file, atomically: true, encoding: .utf8)
        var d = GatewayConfiguration()
        XCTAssertThrowsError(try ConfigurationFile.apply(file: file, to: &d)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("gatehouse.yaml:2:"), text)
            XCTAssertTrue(text.contains("lb.example.com"), text)
        }
    }

    /// The fleet's store: SQLite by default; a postgres:// URL is checked when
    /// read, and its password is never dumped, nor sent to the network side.
    func testStoreSettingKeepsThePasswordSecret() throws {
        var c = GatewayConfiguration()
        XCTAssertNil(c.store, "SQLite in the state directory is the default")
        XCTAssertTrue(c.dump().contains("store sqlite    # default"), c.dump())
        XCTAssertNil(c.set("store", to: "postgres://gh:s3cr%40t@db.example.net:6432/fleet", source: "x"))
        XCTAssertEqual(c.store?.host, "db.example.net")
        XCTAssertEqual(c.store?.port, 6432)
        XCTAssertEqual(c.store?.database, "fleet")
        XCTAssertEqual(c.store?.password, "s3cr@t")
        XCTAssertEqual(c.store?.tls, .verifyFull, "TLS with a checked certificate unless the URL says otherwise")
        XCTAssertFalse(c.dump().contains("s3cr"), c.dump())
        XCTAssertTrue(c.dump().contains("store postgres://gh:***@db.example.net:6432/fleet?sslmode=verify-full"), c.dump())
        let json = String(decoding: try JSONEncoder().encode(c), as: UTF8.self)
        XCTAssertFalse(json.contains("s3cr"), json)
        XCTAssertNil(try JSONDecoder().decode(GatewayConfiguration.self, from: Data(json.utf8)).store?.password)
        XCTAssertNil(c.set("store", to: "postgres://gh@127.0.0.1/fleet?sslmode=disable", source: "x"))
        XCTAssertEqual(c.store?.tls, .disable)
        XCTAssertEqual(c.store?.port, 5432)
        for bad in ["mysql://gh@h/db", "postgres://h/db", "postgres://gh@h", "postgres://gh@h/db?sslmode=maybe",
                    "postgres://gh@h/db?sslrootcert=x", "postgres://gh:pw@h:0/db"] {
            let problem = c.set("store", to: bad, source: "x")
            XCTAssertNotNil(problem, bad)
            XCTAssertFalse(problem?.contains("pw") ?? false, "the error does not repeat the URL")
        }
        XCTAssertNil(c.set("store", to: "sqlite", source: "x"))
        XCTAssertNil(c.store)
    }

    func testTheWebConsoleNeedsHTTPSOffLoopbackAndIsOffByDefault() {
        var c = GatewayConfiguration()
        XCTAssertNil(c.webHost, "the console is off unless configured")
        XCTAssertNil(c.set("webListen", to: "127.0.0.1:8080", source: "test"))
        XCTAssertNil(c.webProblem)
        XCTAssertNil(c.set("webListen", to: "[::1]:8080", source: "test"))
        XCTAssertNil(c.webProblem)
        for name in ["127.attacker.example:8080", "localhost:8080", "127.0.0.1.nip.io:8080"] {
            XCTAssertNil(c.set("webListen", to: name, source: "test"))
            XCTAssertTrue(c.webProblem?.contains("not a loopback address") ?? false, "\(name): a name is not loopback")
        }
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
