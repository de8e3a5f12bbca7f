import CmdletPolicy
import CmdletShell
import GatehouseCore
import XCTest

/// Tab completion offers only what `Get-Command` would show.
final class CompletionTests: XCTestCase {
    func complete(_ typed: String, roles: [String] = ["Reader"]) throws -> String {
        let claim = try makeClaim(roles.map { RoleGrant(role: $0) })
        return String(decoding: Completion.complete(line: Array(typed.utf8), claim: claim, snapshot: try shellSnapshot()),
                      as: UTF8.self)
    }

    func testCommandNamesAreVisibleOnesOnly() throws {
        XCTAssertEqual(try complete("get-l"), "ocation ")
        XCTAssertEqual(try complete("Get-Ma"), "ilbox ")
        // Set-Mailbox needs QuotaAdmin: hidden from Reader, offered to QuotaAdmin.
        XCTAssertEqual(try complete("Set-"), "")
        XCTAssertEqual(try complete("Set-", roles: ["QuotaAdmin"]), "Mailbox ")
        XCTAssertEqual(try complete("New-Ma"), "")
        XCTAssertEqual(try complete("Get-A"), "ccessClaim ")
        XCTAssertEqual(try complete("Get-"), "", "several candidates, no common continuation")
    }

    func testParametersOfVisibleCmdletsOnly() throws {
        XCTAssertEqual(try complete("Get-Mailbox -Re"), "sultSize ")
        XCTAssertEqual(try complete("Set-Mailbox alice -Prohibit", roles: ["QuotaAdmin"]), "Send")
        XCTAssertEqual(try complete("Set-Mailbox alice -Prohibit"), "", "hidden cmdlet: no parameters either")
        XCTAssertEqual(try complete("Get-Help Set-M"), "")
        XCTAssertEqual(try complete("Get-Help Get-Mail"), "box ")
        XCTAssertEqual(try complete("Get-Help Get-Mailbox -F"), "ull ")
        // A declared alias completes the parameters of its cmdlet, for those who may see it.
        XCTAssertEqual(try complete("smbx alice -ProhibitSendR", roles: ["QuotaAdmin"]), "eceiveQuota ")
        XCTAssertEqual(try complete("smbx alice -ProhibitSendR"), "")
    }

    func testCandidatesForASecondTab() throws {
        let claim = try makeClaim([RoleGrant(role: "Reader")])
        let result = Completion.candidates(line: Array("Get-".utf8), claim: claim, snapshot: try shellSnapshot())
        XCTAssertEqual(result.addition, [])
        XCTAssertTrue(result.candidates.contains("Get-Mailbox") && result.candidates.contains("Get-AccessClaim"), "\(result)")
        XCTAssertFalse(result.candidates.contains("Set-Mailbox"), "hidden cmdlets are not listed either")
        XCTAssertEqual(Set(result.candidates).count, result.candidates.count, "each name once")
    }

    func testFormattersAfterAPipe() throws {
        XCTAssertEqual(try complete("Get-Mailbox | Where"), "-Object ")
        XCTAssertEqual(try complete("Get-Mailbox | Format-"), "")
        XCTAssertEqual(try complete("Get-Mailbox | Format-T"), "able ")
        XCTAssertEqual(try complete("Get-Mailbox | Select-Object -F"), "irst ")
    }

    func testExtraCommandsFromTheEmbeddingApplication() throws {
        let claim = try makeClaim([RoleGrant(role: "Reader")])
        let provided = [CmdletDefinition(name: "New-LockboxRequest", synopsis: "s", description: nil, parameters: [
            ParameterDefinition(name: "Reason", type: .string, mandatory: true, position: nil, description: nil,
                                pattern: nil, allowedValues: nil, minimum: nil, maximum: nil, maxLength: 10),
        ], file: "test")]
        func complete(_ typed: String) throws -> String {
            String(decoding: Completion.complete(line: Array(typed.utf8), claim: claim, snapshot: try shellSnapshot(),
                                                 provided: provided), as: UTF8.self)
        }
        XCTAssertEqual(try complete("New-Lock"), "boxRequest ")
        XCTAssertEqual(try complete("new-lockboxrequest -Rea"), "son ", "its declared parameters too")
        XCTAssertEqual(try complete("Get-Help New-Lockbox"), "Request ")
        XCTAssertEqual(try complete("Enter-Elevation -"), "Id ", "the built-in's declaration")
    }

    func testNothingInsideQuotesOrOnBadInput() throws {
        XCTAssertEqual(try complete("Get-Mailbox 'Get-Ma"), "")
        XCTAssertEqual(String(decoding: Completion.complete(line: [0x47, 0xff], claim: try makeClaim([]),
                                                             snapshot: try shellSnapshot()), as: UTF8.self), "")
    }
}
