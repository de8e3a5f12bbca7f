import Foundation
import GatehouseCore
import XCTest

/// The store's password file: owner-only, first line, and an error that
/// names the problem without the password.
final class PostgresLocationTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "gatehouse-pgpass-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    func file(_ text: String, mode: mode_t) throws -> String {
        let path = directory + "/password"
        try? FileManager.default.removeItem(atPath: path)
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        XCTAssertEqual(chmod(path, mode), 0)
        return path
    }

    func location() -> PostgresLocation { PostgresLocation(host: "db", user: "gatehouse", database: "gatehouse") }

    func testTheFirstLineOfAnOwnerOnlyFileIsThePassword() throws {
        var l = location()
        try l.readPassword(fromFile: try file("s3cret pass\nsecond line\n", mode: 0o600))
        XCTAssertEqual(l.password, "s3cret pass")
        XCTAssertFalse(l.description.contains("s3cret"), "the password is never printed")
    }

    func testAFileOthersCanReadIsRefusedWithoutItsContent() throws {
        for mode: mode_t in [0o640, 0o604, 0o644] {
            var l = location()
            XCTAssertThrowsError(try l.readPassword(fromFile: try file("s3cret\n", mode: mode))) { error in
                XCTAssertTrue("\(error)".contains("chmod 600"), "\(error)")
                XCTAssertFalse("\(error)".contains("s3cret"))
            }
            XCTAssertNil(l.password)
        }
    }

    func testAMissingFileOrAnEmptyFirstLineIsAnError() throws {
        var l = location()
        XCTAssertThrowsError(try l.readPassword(fromFile: directory + "/absent"))
        XCTAssertThrowsError(try l.readPassword(fromFile: try file("\nsecond\n", mode: 0o600)))
        XCTAssertNil(l.password)
    }
}
