import XCTest
import GatehouseCore
import Lockbox
import TestSupport

final class LockboxClaimTests: XCTestCase {
    let alice = UserName("alice")!
    let session = SessionID(rawValue: "s1")

    func testClaimCarriesBaselineRolesWithoutScopeOrExpiry() {
        let clock = ManualClock()
        let lockbox = Lockbox(directory: StaticBaselineRoles([alice: ["MailboxReader"]]))
        let claim = lockbox.claim(user: alice, session: session, now: clock.now())
        XCTAssertEqual(claim.user, alice)
        XCTAssertEqual(claim.session, session)
        XCTAssertEqual(claim.grants, [RoleGrant(role: "MailboxReader")])
        XCTAssertNil(claim.grants.first?.scope)
    }

    func testUnknownUserGetsAnEmptyClaim() {
        let lockbox = Lockbox(directory: StaticBaselineRoles([:]))
        let claim = lockbox.claim(user: UserName("mallory")!, session: session, now: Date())
        XCTAssertTrue(claim.grants.isEmpty)
    }

    func testExpiredGrantsAreDroppedFromAClaim() {
        let clock = ManualClock()
        let expiring = RoleGrant(role: "MailboxAdmin", scope: "contoso", expires: clock.now() + 60,
                                 source: .elevation(requestID: 7))
        let before = AccessClaim(user: alice, session: session, issuedAt: clock.now(), grants: [expiring])
        XCTAssertEqual(before.grants.count, 1)
        clock.advance(by: 60)
        let atExpiry = AccessClaim(user: alice, session: session, issuedAt: clock.now(), grants: [expiring])
        XCTAssertTrue(atExpiry.grants.isEmpty, "a grant must not count at its expiry instant")
    }
}
