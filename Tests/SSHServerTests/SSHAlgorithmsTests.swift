import Foundation
@testable import SSHServer
import XCTest

final class SSHAlgorithmsTests: XCTestCase {
    /// `list` trims exactly what `trimmingCharacters(in: .whitespaces)` trims
    /// (Unicode Zs and tab; not line breaks) and drops empty entries.
    func testListTrimsLikeFoundationsWhitespaceSet() {
        let inputs = [
            "", ",", " , ,", "ssh-ed25519", " ssh-ed25519 ,\trsa-sha2-256\t", "a,,b", "\u{00A0}a\u{3000},\u{2009}b ",
            "\na\n, b\r", " \t ", "é, ü ,x y", SSHAlgorithms.modern.publicKeyAcceptedTypes,
        ]
        for input in inputs {
            let expected = input.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty }
            XCTAssertEqual(SSHAlgorithms.list(input), expected, input.debugDescription)
        }
    }

    func testAcceptsTheModernKeyTypesAndRSAThroughItsSHA2Names() {
        let modern = SSHAlgorithms.modern
        XCTAssertTrue(modern.accepts(clientKeyType: "ssh-ed25519"))
        XCTAssertTrue(modern.accepts(clientKeyType: "ssh-rsa"))
        XCTAssertFalse(modern.accepts(clientKeyType: "ssh-dss"))
        XCTAssertFalse(SSHAlgorithms.fips.accepts(clientKeyType: "ssh-ed25519"))
    }
}
