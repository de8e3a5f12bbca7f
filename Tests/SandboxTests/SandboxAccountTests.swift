#if os(Linux)
import Glibc
import Sandbox
import XCTest

final class SandboxAccountTests: XCTestCase {
    func testAnAccountIsResolvedToItsUidAndPrimaryGid() throws {
        let root = try SandboxAccount(named: "root")
        XCTAssertEqual(root, SandboxAccount(name: "root", uid: 0, gid: 0))
    }

    func testAMissingAccountIsAClearError() {
        XCTAssertThrowsError(try SandboxAccount(named: "gatehouse-no-such-account")) { error in
            XCTAssertEqual("\(error)", "no account named gatehouse-no-such-account")
        }
    }

    /// Dropping to root would drop nothing: refused before any change.
    func testTheDropRefusesARootAccount() {
        XCTAssertThrowsError(try PrivilegeDrop.drop(to: SandboxAccount(name: "root", uid: 0, gid: 0))) { error in
            XCTAssertEqual(error as? SandboxError, .privilegedAccount("root"))
        }
    }
}
#endif
