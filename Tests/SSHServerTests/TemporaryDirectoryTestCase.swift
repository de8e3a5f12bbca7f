import Foundation
import XCTest

/// A test case with a fresh directory for key files, removed afterwards.
class TemporaryDirectoryTestCase: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "gatehouse-ssh-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }
}
