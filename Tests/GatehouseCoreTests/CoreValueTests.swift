import Foundation
import GatehouseCore
import XCTest

final class CoreValueTests: XCTestCase {
    /// RFC 4648 section 10 vectors, without the padding this encoding drops.
    func testBase32MatchesRFC4648AndRoundTrips() {
        let vectors = ["": "", "f": "MY", "fo": "MZXQ", "foo": "MZXW6", "foob": "MZXW6YQ",
                       "fooba": "MZXW6YTB", "foobar": "MZXW6YTBOI"]
        for (plain, encoded) in vectors {
            XCTAssertEqual(Base32.encode(Array(plain.utf8)), encoded, plain)
            XCTAssertEqual(Base32.decode(Array(encoded.utf8)), Array(plain.utf8), encoded)
            XCTAssertEqual(Base32.decode(Array(encoded.lowercased().utf8)), Array(plain.utf8), encoded)
        }
        let random = (0..<37).map { UInt8(truncatingIfNeeded: $0 &* 97 &+ 13) }
        XCTAssertEqual(Base32.decode(Array(Base32.encode(random).utf8)), random)
    }

    /// The streaming encoder (`gatehouse mfa` encodes a TOTP secret into
    /// wiped storage with it) emits what the String encoder returns.
    func testBase32StreamingEncoderMatchesTheStringOne() {
        for length in 0...41 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 151 &+ 7) }
            var streamed: [UInt8] = []
            bytes.withUnsafeBytes { Base32.encode($0, into: { streamed.append($0) }) }
            XCTAssertEqual(String(decoding: streamed, as: UTF8.self), Base32.encode(bytes), "\(length) bytes")
        }
    }

    func testBase32RejectsCharactersOutsideTheAlphabet() {
        for text in ["MZXW6=", "MZ XW", "MZ1W", "MZ0W", "MZXW6-"] {
            XCTAssertNil(Base32.decode(Array(text.utf8)), text)
        }
    }

    func testTerminalTextEscapesControlsAndBidiButKeepsLineBreaks() {
        XCTAssertEqual(TerminalText.sanitize("a\u{1b}[2Jb"), "a\\x1b[2Jb")
        XCTAssertEqual(TerminalText.sanitize("x\u{7f}\u{9b}y"), "x\\x7f\\x9by")
        XCTAssertEqual(TerminalText.sanitize("l1\nl2\tz"), "l1\nl2\tz")
        XCTAssertEqual(TerminalText.sanitize("l1\nl2", keepLineBreaks: false), "l1\\x0al2")
        XCTAssertEqual(TerminalText.sanitize("a\u{202e}b\u{2028}"), "a\\u{202e}b\\u{2028}")
        XCTAssertEqual(TerminalText.sanitize([0x61, 0xff, 0x62]), "a\u{fffd}b")
    }

    func testTerminalColumns() {
        XCTAssertEqual(TerminalText.columns("abc"), 3)
        XCTAssertEqual(TerminalText.columns("日本"), 4)
        XCTAssertEqual(TerminalText.columns("e\u{301}"), 1)
        XCTAssertEqual(TerminalText.columns("\u{200b}"), 0)
    }

    func testUserNameAcceptsOnlyThePortableLowerCaseShape() {
        for valid in ["alice", "_svc", "a", "bob.smith-2", String(repeating: "a", count: 32)] {
            XCTAssertNotNil(UserName(valid), valid)
        }
        for invalid in ["", "Alice", "1abc", "-x", ".x", "a b", "a\u{1b}", "ålice", String(repeating: "a", count: 33)] {
            XCTAssertNil(UserName(invalid), invalid)
        }
        XCTAssertThrowsError(try JSONDecoder().decode([UserName].self, from: Data(#"["Root"]"#.utf8)))
        XCTAssertEqual(try JSONDecoder().decode([UserName].self, from: Data(#"["root"]"#.utf8)), [UserName("root")!])
    }

    func testSessionIDsAreRandomHex() {
        let a = SessionID.random(), b = SessionID.random()
        XCTAssertNotEqual(a, b)
        XCTAssertEqual(a.rawValue.count, 24)
        XCTAssertTrue(a.rawValue.allSatisfy(\.isHexDigit))
    }

    func testAccessClaimKeepsOnlyGrantsActiveWhenIssued() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let claim = AccessClaim(user: UserName("alice")!, session: SessionID(rawValue: "s"), issuedAt: now, grants: [
            RoleGrant(role: "Reader"),
            RoleGrant(role: "Admin", scope: "contoso", expires: now + 1, source: .elevation(requestID: 7)),
            RoleGrant(role: "Old", scope: "contoso", expires: now, source: .elevation(requestID: 6)),
        ])
        XCTAssertEqual(claim.grants.map(\.role), ["Reader", "Admin"])
    }

    func testOnlyAllowIsAllowed() {
        XCTAssertTrue(Decision.allow(role: "R").isAllowed)
        XCTAssertFalse(Decision.deny(reason: "no").isAllowed)
    }
}
