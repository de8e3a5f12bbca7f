import XCTest
@testable import Gateway

final class TOTPSecretTests: XCTestCase {
    func testBase32MatchesRFC4648Vectors() {
        // RFC 4648 section 10, without padding.
        XCTAssertEqual(TOTPSecret(bytes: Array("f".utf8)).base32, "MY")
        XCTAssertEqual(TOTPSecret(bytes: Array("foob".utf8)).base32, "MZXW6YQ")
        XCTAssertEqual(TOTPSecret(bytes: Array("foobar".utf8)).base32, "MZXW6YTBOI")
    }

    func testHexRoundTripsAndRandomSecretsDiffer() {
        let a = TOTPSecret.random()
        XCTAssertEqual(a.bytes.count, 20)
        XCTAssertEqual(TOTPSecret(hex: a.hex)?.bytes, a.bytes)
        XCTAssertNotEqual(a.bytes, TOTPSecret.random().bytes)
        XCTAssertNil(TOTPSecret(hex: "abc"))
        XCTAssertNil(TOTPSecret(hex: "zz"))
    }
}
