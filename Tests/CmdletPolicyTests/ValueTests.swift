import CmdletPolicy
import Directory
import PolicyFormat
import XCTest

final class ValueTests: XCTestCase {
    func testByteSizes() {
        XCTAssertEqual(ByteSize.parse("512"), 512)
        XCTAssertEqual(ByteSize.parse("1B"), 1)
        XCTAssertEqual(ByteSize.parse("1KB"), 1024)
        XCTAssertEqual(ByteSize.parse("1mb"), 1 << 20)
        XCTAssertEqual(ByteSize.parse("100GB"), 100 << 30)
        XCTAssertEqual(ByteSize.parse("2TB"), 2 << 40)
        for bad in ["", "MB", "1.5GB", "-1MB", "+1MB", " 1MB", "1 MB", "1XB", "\u{FF11}MB", "\u{0661}MB",
                    "99999999999999999999", "9999999999TB"] {
            XCTAssertNil(ByteSize.parse(bad), bad)
        }
        XCTAssertEqual(ByteSize.format(1 << 30), "1GB")
        XCTAssertEqual(ByteSize.format(1500), "1500B")
    }

    func testDurations() {
        XCTAssertEqual(PolicyDuration.parseSeconds("30s"), 30)
        XCTAssertEqual(PolicyDuration.parseSeconds("5m"), 300)
        XCTAssertEqual(PolicyDuration.parseSeconds("1h"), 3600)
        XCTAssertEqual(PolicyDuration.parseSeconds("7d"), 7 * 86400)
        for bad in ["", "s", "30", "1.5h", "-1s", "1w", "99999999999999999999d"] {
            XCTAssertNil(PolicyDuration.parseSeconds(bad), bad)
        }
    }

    func testPatternIsAlwaysAWholeValueMatch() throws {
        let anchored = try AnchoredPattern("^[a-z]+$")
        XCTAssertTrue(anchored.matches("abc"))
        XCTAssertFalse(anchored.matches("abc\n"), "ICU '$' matches before a final newline; we must not")
        for terminator in ["\r", "\u{85}", "\u{2028}", "\u{2029}", "\r\n", "\u{0B}"] {
            XCTAssertFalse(anchored.matches("abc" + terminator))
            XCTAssertFalse(anchored.matches(terminator + "abc"))
        }
        let unanchored = try AnchoredPattern("[a-z]+")
        XCTAssertTrue(unanchored.matches("abc"))
        XCTAssertFalse(unanchored.matches("abc1"))
        XCTAssertFalse(unanchored.matches("1abc"))
        // Alternation: a prefix match must not stand in for a whole match.
        let alternation = try AnchoredPattern("a|ab")
        XCTAssertTrue(alternation.matches("ab"))
        XCTAssertFalse(alternation.matches("abc"))
        XCTAssertThrowsError(try AnchoredPattern("a)|(b"))
    }

    func testIntValidation() throws {
        let snapshot = try loadPolicy()
        let limit = try XCTUnwrap(snapshot.cmdlet(named: "Get-Thing")?.parameter(named: "Limit"))
        XCTAssertEqual(try limit.validate("7").get(), .int(7))
        XCTAssertEqual(try limit.validate("007").get(), .int(7))
        for bad in ["0", "11", "-1", "+1", "1e1", "\u{0661}", "99999999999999999999999", "", " 1"] {
            XCTAssertThrowsError(try limit.validate(bad).get(), bad)
        }
    }

    func testSetMatchesCaseInsensitivelyAndPassesDeclaredSpelling() throws {
        let text = baseCmdlets.replacingOccurrences(of: "      Limit:\n        type: int\n        min: 1\n        max: 10",
                                                    with: "      Limit:\n        type: enum\n        set: [Low, High]")
        let p = try XCTUnwrap(loadPolicy(cmdlets: text).cmdlet(named: "Get-Thing")?.parameter(named: "Limit"))
        XCTAssertEqual(try p.validate("hIGH").get(), .enumeration("High"))
        XCTAssertEqual(try p.validate("High").get().argumentText, "High")
        XCTAssertThrowsError(try p.validate("Medium").get())
        XCTAssertThrowsError(try p.validate("H\u{130}gh").get())
    }

    func testStringMaxLength() throws {
        let text = baseCmdlets.replacingOccurrences(of: "'^[a-z]{1,16}$'", with: "'^[a-z]+$'\n        maxLength: 4")
        let p = try XCTUnwrap(loadPolicy(cmdlets: text).cmdlet(named: "Get-Thing")?.parameter(named: "Identity"))
        XCTAssertNoThrow(try p.validate("abcd").get())
        XCTAssertThrowsError(try p.validate("abcde").get())
    }

    func testDirectoryErrors() {
        let text = """
        users:
          alice:
            manager: zed
            roles: [Reader]
            keys: ["ssh-ed25519 AAAA not-really"]
          Bob:
            roles: []
        tenants:
          contoso:
            customerLockbox: yes
            approvers: [nobody]
        """
        do {
            _ = try DirectoryLoader.load(text: text, file: "directory.yaml")
            XCTFail("expected errors")
        } catch let error as PolicyLoadError {
            let lines = error.errors.map(\.line)
            XCTAssertEqual(Set(lines), [3, 5, 6, 10, 11], "\(error)")
        } catch { XCTFail("\(error)") }
    }

    func testDirectoryKeysAndRoleCrossCheck() throws {
        // A syntactically valid ed25519 key line (type string + 32 zero bytes).
        var blob = Data([0, 0, 0, 11]) + Data("ssh-ed25519".utf8)
        blob += Data([0, 0, 0, 32]) + Data(repeating: 0, count: 32)
        let text = """
        users:
          alice:
            roles: [Reader, Writer]
            keys: ["ssh-ed25519 \(blob.base64EncodedString()) alice@laptop"]
        """
        let directory = try DirectoryLoader.load(text: text, file: "d.yaml")
        XCTAssertEqual(directory.users.first?.keys.first?.comment, "alice@laptop")
        let problems = directory.validate(knownRoles: try loadPolicy().roles.map(\.name))
        XCTAssertEqual(problems.count, 1)
        XCTAssertEqual(problems.first?.line, 3)
        XCTAssertTrue(problems.first?.message.contains("'Writer'") ?? false)
        XCTAssertThrowsError(try AuthorizedKey.parse("ssh-rsa \(blob.base64EncodedString())").get(),
                             "type inside the blob must match")
        XCTAssertThrowsError(try AuthorizedKey.parse("from=\"1.2.3.4\" ssh-ed25519 \(blob.base64EncodedString())").get())
    }
}
