import GatehouseCore
import XCTest
@testable import gatehoused

final class TOTPSecretTests: XCTestCase {
    func testBase32MatchesRFC4648Vectors() {
        // RFC 4648 section 10, without padding.
        XCTAssertEqual(TOTPSecret(bytes: Array("f".utf8)).base32, "MY")
        XCTAssertEqual(TOTPSecret(bytes: Array("foob".utf8)).base32, "MZXW6YQ")
        XCTAssertEqual(TOTPSecret(bytes: Array("foobar".utf8)).base32, "MZXW6YTBOI")
        // The decoder beside the encoder reads them back, in either case.
        XCTAssertEqual(Base32.decode(Array("MZXW6YTBOI".utf8)), Array("foobar".utf8))
        XCTAssertEqual(Base32.decode(Array("mzxw6yq".utf8)), Array("foob".utf8))
        XCTAssertEqual(Base32.decode(Array("MY".utf8)), Array("f".utf8))
        XCTAssertNil(Base32.decode(Array("MZ1W".utf8)), "1 is not in the alphabet")
        XCTAssertNil(Base32.decode(Array("MZ-W".utf8)), "separators are the caller's to strip")
        let random = TOTPSecret.random().bytes
        XCTAssertEqual(Base32.decode(Array(Base32.encode(random).utf8)), random)
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
