import CmdletPolicy
import Directory
import GatehouseCore
import Lockbox
import TestSupport
import XCTest

/// The elevation workflow on the in-memory store, with a manual clock.
final class WorkflowTests: XCTestCase {
    let s1 = SessionID(rawValue: "session-one")
    let s2 = SessionID(rawValue: "session-two")

    func testFullPathContosoNeedsManagerThenCustomerApprover() throws {
        let h = try Harness()
        let r = try h.submit()
        XCTAssertEqual(r.state, .pendingManager)
        XCTAssertTrue(r.needsCustomerApproval)
        XCTAssertEqual(try h.lockbox.approve(id: r.id, by: World.bob).state, .pendingCustomer)
        let approved = try h.lockbox.approve(id: r.id, by: World.carol, comment: "ok")
        XCTAssertEqual(approved.state, .approved)
        XCTAssertEqual(approved.customerApprover, World.carol)
        let secret = try h.lockbox.issueCredential(id: r.id, to: World.alice)
        XCTAssertEqual(secret.revealedText.count, 39) // 32 base32 characters in 8 groups
        h.clock.advance(by: 120) // the grant's clock starts at redemption, not approval
        let active = try h.lockbox.redeem(id: r.id, secret: Array(secret.revealedText.lowercased().utf8),
                                          by: World.alice, session: s1)
        XCTAssertEqual(active.state, .active)
        XCTAssertEqual(active.expiresAt, h.clock.now() + 3600)
        let claim = h.lockbox.claim(user: World.alice, session: s1, now: h.clock.now())
        XCTAssertEqual(claim.grants.last, RoleGrant(role: "MailboxAdmin", scope: "contoso", expires: h.clock.now() + 3600,
                                                    source: .elevation(requestID: r.id)))
        XCTAssertEqual(claim.grants.first?.role, "MailboxReader")
        // Only that session holds it.
        XCTAssertEqual(h.lockbox.claim(user: World.alice, session: s2, now: h.clock.now()).grants.map(\.role),
                       ["MailboxReader"])
        let kinds = h.audit.events.map(\.kind)
        XCTAssertEqual(kinds, [.lockboxRequested, .lockboxApproved, .lockboxApproved, .lockboxCredentialIssued,
                               .elevationStart])
        for event in h.audit.events {
            XCTAssertEqual(event.fields["requestID"], String(r.id))
            XCTAssertNotNil(event.fields["actor"])
            XCTAssertFalse(event.fields.values.contains { $0.contains(secret.revealedText) }, "secret leaked into audit")
        }
    }

    func testTenantWithoutCustomerLockboxNeedsOnlyTheManager() throws {
        let h = try Harness()
        let r = try h.submit("fabrikam")
        XCTAssertFalse(r.needsCustomerApproval)
        XCTAssertEqual(try h.lockbox.approve(id: r.id, by: World.bob).state, .approved)
    }

    func testSelfApprovalIsRefused() throws {
        let h = try Harness()
        let r = try h.lockbox.submit(requester: World.alice, role: "MailboxAdmin", scope: "contoso",
                                     durationSeconds: 60, reason: "x", ticket: nil)
        XCTAssertLockboxError(try h.lockbox.approve(id: r.id, by: World.alice)) {
            $0 == .notAuthorized("Nobody may approve their own request.")
        }
        XCTAssertEqual(try h.store.request(id: r.id)?.state, .pendingManager, "a refusal changes nothing")
        XCTAssertEqual(h.audit.events(of: .lockboxRefused).last?.fields["action"], "approve")
    }

    func testNobodyApprovesTwiceEvenIfTheyAreAlsoTheTenantApprover() throws {
        // Make bob contoso's approver too: he still cannot take both stages.
        let dirText = World.directoryYAML.replacingOccurrences(of: "approvers: [carol]", with: "approvers: [carol, bob]")
        let h = try Harness()
        let lockbox = Lockbox(directory: try DirectoryLoader.load(text: dirText, file: "d.yaml"),
                              policy: try World.policy(), store: h.store, audit: h.audit, clock: h.clock)
        let r = try lockbox.submit(requester: World.alice, role: "MailboxAdmin", scope: "contoso",
                                   durationSeconds: 60, reason: "x", ticket: nil)
        _ = try lockbox.approve(id: r.id, by: World.bob)
        XCTAssertLockboxError(try lockbox.approve(id: r.id, by: World.bob)) {
            if case .notAuthorized(let m) = $0 { return m.contains("nobody approves twice") } else { return false }
        }
        XCTAssertEqual(try lockbox.approve(id: r.id, by: World.carol).state, .approved)
        XCTAssertLockboxError(try lockbox.approve(id: r.id, by: World.carol)) {
            if case .illegalTransition(.approved, _) = $0 { return true } else { return false }
        }
    }

    func testOnlyTheRightApproverPerStage() throws {
        let h = try Harness()
        let r = try h.submit()
        XCTAssertLockboxError(try h.lockbox.approve(id: r.id, by: World.carol), { if case .notAuthorized = $0 { return true }; return false },
                              "the tenant approver may not take the manager's stage")
        XCTAssertLockboxError(try h.lockbox.approve(id: r.id, by: World.dave)) { if case .notAuthorized = $0 { return true }; return false }
        _ = try h.lockbox.approve(id: r.id, by: World.bob)
        XCTAssertLockboxError(try h.lockbox.approve(id: r.id, by: World.mallory)) { if case .notAuthorized = $0 { return true }; return false }
        XCTAssertEqual(try h.store.request(id: r.id)?.state, .pendingCustomer)
    }

    func testRequestRulesRefuseWithTheLimitInTheMessage() throws {
        let h = try Harness()
        XCTAssertLockboxError(try h.submit(duration: 4 * 3600 + 1)) {
            if case .invalidRequest(let m) = $0 { return m.contains("maximum for MailboxAdmin of 4h") } else { return false }
        }
        XCTAssertLockboxError(try h.submit("nowhere")) {
            if case .invalidRequest(let m) = $0 { return m.contains("Unknown scope 'nowhere'") } else { return false }
        }
        XCTAssertLockboxError(try h.submit(by: World.mallory)) {
            if case .notAuthorized(let m) = $0 { return m.contains("engineers") } else { return false }
        }
        XCTAssertLockboxError(try h.lockbox.submit(requester: World.alice, role: "MailboxAdmin", scope: "contoso",
                                                   durationSeconds: 60, reason: "  ", ticket: nil)) {
            if case .invalidRequest(let m) = $0 { return m.contains("reason is required") } else { return false }
        }
        XCTAssertLockboxError(try h.lockbox.submit(requester: World.alice, role: "MailboxAdmin", scope: "contoso",
                                                   durationSeconds: 60, reason: "r", ticket: "JIRA-1")) {
            if case .invalidRequest(let m) = $0 { return m.contains("^INC-[0-9]{1,8}$") } else { return false }
        }
        XCTAssertLockboxError(try h.lockbox.submit(requester: World.alice, role: "MailboxReader", scope: "contoso",
                                                   durationSeconds: 60, reason: "r", ticket: nil)) {
            if case .invalidRequest(let m) = $0 { return m.contains("cannot be requested") } else { return false }
        }
        XCTAssertLockboxError(try h.lockbox.submit(requester: World.bob, role: "MailboxAdmin", scope: "contoso",
                                                   durationSeconds: 60, reason: "r", ticket: nil)) {
            if case .invalidRequest(let m) = $0 { return m.contains("no manager") } else { return false }
        }
        XCTAssertTrue(try h.store.requests(RequestQuery()).isEmpty, "nothing refused was filed (or shortened)")
        XCTAssertEqual(h.audit.events(of: .lockboxRefused).count, 7)
        // Exactly at the maximum is fine.
        XCTAssertEqual(try h.submit(duration: 4 * 3600).durationSeconds, 4 * 3600)
    }

    func testReloadedRulesApplyToTheNextRequestOnly() throws {
        let h = try Harness()
        let filed = try h.submit(duration: 3 * 3600)
        // An admin lowers maxDuration to 1h and reloads.
        let snapshot = try PolicyLoader.load(sources: [
            .init(kind: .cmdlets, file: "cmdlets.yaml", text: World.cmdletsYAML),
            .init(kind: .roles, file: "roles.yaml",
                  text: World.policyYAML.replacingOccurrences(of: "maxDuration: 4h", with: "maxDuration: 1h")),
        ], libexecDirectory: "/usr/libexec", reservedNames: [], host: SystemHostInspector())
        h.rules.replace(policy: try LockboxPolicy.load(text: World.lockboxYAML, file: "lockbox.yaml",
                                                       roles: World.roles(of: snapshot)),
                        notifier: nil)
        XCTAssertLockboxError(try h.submit(duration: 2 * 3600)) {
            if case .invalidRequest(let m) = $0 { return m.contains("maximum for MailboxAdmin of 1h") } else { return false }
        }
        XCTAssertEqual(try h.store.request(id: filed.id)?.durationSeconds, 3 * 3600, "a filed request keeps its duration")
    }

    func testNoChangeWithoutItsAuditEvent() throws {
        let h = try Harness()
        let r = try h.submit()
        h.audit.setFailing(true)
        XCTAssertLockboxError(try h.lockbox.approve(id: r.id, by: World.bob)) { $0 == .auditUnavailable }
        XCTAssertEqual(try h.store.request(id: r.id)?.state, .pendingManager, "the approval was rolled back")
        XCTAssertLockboxError(try h.submit()) { $0 == .auditUnavailable }
        XCTAssertEqual(try h.store.requests(RequestQuery()).count, 1, "no request was filed unrecorded")
        h.audit.setFailing(false)
        let (id, secret) = try h.withSecret()
        h.audit.setFailing(true)
        XCTAssertLockboxError(try h.lockbox.redeem(id: id, secret: Array(secret.utf8), by: World.alice, session: s1)) {
            $0 == .auditUnavailable
        }
        XCTAssertEqual(try h.store.request(id: id)?.state, .approved, "no grant without elevation.start on record")
        XCTAssertTrue(h.lockbox.claim(user: World.alice, session: s1, now: h.clock.now()).grants.allSatisfy {
            if case .baseline = $0.source { return true } else { return false }
        })
        h.audit.setFailing(false)
        XCTAssertEqual(try h.lockbox.redeem(id: id, secret: Array(secret.utf8), by: World.alice, session: s1).state, .active,
                       "the secret still works once the audit log is back")
    }

    func testDenialEndsTheRequestAtEitherStage() throws {
        let h = try Harness()
        let a = try h.submit()
        XCTAssertLockboxError(try h.lockbox.deny(id: a.id, by: World.bob, reason: " ")) { if case .invalidRequest = $0 { return true }; return false }
        XCTAssertEqual(try h.lockbox.deny(id: a.id, by: World.bob, reason: "not now").state, .denied)
        let b = try h.submit()
        _ = try h.lockbox.approve(id: b.id, by: World.bob)
        let denied = try h.lockbox.deny(id: b.id, by: World.carol, reason: "customer says no")
        XCTAssertEqual(denied.state, .denied)
        XCTAssertEqual(denied.endedBy, World.carol)
        XCTAssertEqual(h.audit.events(of: .lockboxDenied).last?.fields["reason"], "customer says no")
        XCTAssertLockboxError(try h.lockbox.approve(id: b.id, by: World.carol)) { if case .illegalTransition(.denied, _) = $0 { return true }; return false }
    }

    func testCredentialIsShownOnceAndOnlyToTheRequester() throws {
        let h = try Harness()
        let r = try h.approved()
        XCTAssertLockboxError(try h.lockbox.issueCredential(id: r.id, to: World.bob)) { $0 == .notFound(id: r.id) }
        let secret = try h.lockbox.issueCredential(id: r.id, to: World.alice)
        XCTAssertLockboxError(try h.lockbox.issueCredential(id: r.id, to: World.alice)) {
            if case .secretRejected(let m) = $0 { return m.contains("only once") } else { return false }
        }
        let stored = try XCTUnwrap(h.store.request(id: r.id))
        XCTAssertEqual(stored.secretHash?.count, 32)
        XCTAssertEqual(stored.secretSalt?.count, 16)
        XCTAssertNotEqual(stored.secretHash, Array(secret.revealedText.utf8))
    }

    func testCredentialBeforeApprovalIsRefused() throws {
        let h = try Harness()
        let r = try h.submit()
        XCTAssertLockboxError(try h.lockbox.issueCredential(id: r.id, to: World.alice)) {
            if case .secretRejected(let m) = $0 { return m.contains("waiting for alice's manager") } else { return false }
        }
    }

    func testSecretIsSingleUseAndWrongSecretsFail() throws {
        let h = try Harness()
        let (id, secret) = try h.withSecret()
        XCTAssertLockboxError(try h.lockbox.redeem(id: id, secret: Array("AAAA".utf8), by: World.alice, session: s1)) {
            if case .secretRejected(let m) = $0 { return m.contains("does not match") } else { return false }
        }
        var wrong = Array(secret.utf8)
        wrong[0] = wrong[0] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        XCTAssertLockboxError(try h.lockbox.redeem(id: id, secret: wrong, by: World.alice, session: s1)) {
            if case .secretRejected = $0 { return true }; return false
        }
        XCTAssertLockboxError(try h.lockbox.redeem(id: id, secret: Array(secret.utf8), by: World.bob, session: s1)) { $0 == .notFound(id: id) }
        _ = try h.lockbox.redeem(id: id, secret: Array(secret.utf8), by: World.alice, session: s1)
        XCTAssertLockboxError(try h.lockbox.redeem(id: id, secret: Array(secret.utf8), by: World.alice, session: s2)) {
            if case .secretRejected(let m) = $0 { return m.contains("cannot be used again") } else { return false }
        }
        XCTAssertEqual(h.lockbox.claim(user: World.alice, session: s2, now: h.clock.now()).grants.count, 1)
        XCTAssertEqual(h.audit.events(of: .elevationFailed).count, 4)
    }

    func testPendingTTLExpiresAnUnapprovedRequest() throws {
        let h = try Harness()
        let r = try h.submit()
        h.clock.advance(by: 3599)
        XCTAssertEqual(try h.lockbox.pending(for: World.bob).map(\.id), [r.id])
        h.clock.advance(by: 1)
        XCTAssertTrue(try h.lockbox.pending(for: World.bob).isEmpty)
        XCTAssertLockboxError(try h.lockbox.approve(id: r.id, by: World.bob)) { if case .illegalTransition(.expired, _) = $0 { return true }; return false }
        XCTAssertEqual(try h.store.request(id: r.id)?.state, .expired)
        XCTAssertEqual(h.audit.events(of: .lockboxExpired).last?.fields["reason"], "not approved within the pending TTL")
    }

    func testRedeemWindowExpiresAnApprovedRequest() throws {
        let h = try Harness()
        let (id, secret) = try h.withSecret()
        h.clock.advance(by: 600)
        XCTAssertEqual(h.lockbox.sweep().map(\.id), [id])
        XCTAssertLockboxError(try h.lockbox.redeem(id: id, secret: Array(secret.utf8), by: World.alice, session: s1)) {
            if case .secretRejected(let m) = $0 { return m.contains("expired") } else { return false }
        }
    }

    func testGrantExpiresAtItsDurationAfterRedemption() throws {
        let h = try Harness()
        let (id, secret) = try h.withSecret(duration: 60)
        h.clock.advance(by: 300)  // within the redeem window
        _ = try h.lockbox.redeem(id: id, secret: Array(secret.utf8), by: World.alice, session: s1)
        h.clock.advance(by: 59)
        XCTAssertEqual(h.lockbox.claim(user: World.alice, session: s1, now: h.clock.now()).grants.count, 2)
        h.clock.advance(by: 1)
        XCTAssertEqual(h.lockbox.claim(user: World.alice, session: s1, now: h.clock.now()).grants.map(\.role),
                       ["MailboxReader"], "the grant ends exactly at its expiry, before any sweep")
        XCTAssertEqual(h.lockbox.sweep().first?.state, .expired)
        XCTAssertEqual(h.audit.events(of: .elevationEnd).last?.fields["reason"], "the grant's duration ended")
        XCTAssertTrue(h.lockbox.sweep().isEmpty, "an expiry is recorded once")
    }

    func testRevocationEndsAnActiveGrantAndOnlyApproversOrAdminsMayRevoke() throws {
        let h = try Harness()
        let (id, secret) = try h.withSecret()
        _ = try h.lockbox.redeem(id: id, secret: Array(secret.utf8), by: World.alice, session: s1)
        XCTAssertLockboxError(try h.lockbox.revoke(id: id, by: World.mallory)) { if case .notAuthorized = $0 { return true }; return false }
        XCTAssertLockboxError(try h.lockbox.revoke(id: id, by: World.alice)) { if case .notAuthorized = $0 { return true }; return false }
        let revoked = try h.lockbox.revoke(id: id, by: World.carol, reason: "customer withdrew consent")
        XCTAssertEqual(revoked.state, .revoked)
        XCTAssertEqual(h.lockbox.claim(user: World.alice, session: s1, now: h.clock.now()).grants.map(\.role), ["MailboxReader"])
        XCTAssertEqual(h.audit.events(of: .elevationEnd).last?.fields["reason"], "customer withdrew consent")
        // An admin may revoke a pending request.
        let other = try h.submit()
        XCTAssertEqual(try h.lockbox.revoke(id: other.id, by: World.erin).state, .revoked)
    }

    func testEndingTheSessionEndsItsGrantsOnly() throws {
        let h = try Harness()
        let (a, sa) = try h.withSecret()
        let (b, sb) = try h.withSecret("fabrikam")
        _ = try h.lockbox.redeem(id: a, secret: Array(sa.utf8), by: World.alice, session: s1)
        _ = try h.lockbox.redeem(id: b, secret: Array(sb.utf8), by: World.alice, session: s2)
        XCTAssertEqual(h.lockbox.endElevations(session: s1, user: World.alice, reason: "session ended").map(\.id), [a])
        XCTAssertEqual(try h.store.request(id: a)?.state, .cancelled)
        XCTAssertEqual(try h.store.request(id: b)?.state, .active)
        XCTAssertEqual(h.lockbox.claim(user: World.alice, session: s2, now: h.clock.now()).grants.count, 2)
    }

    func testGrantsOfSessionsThatDiedWithTheDaemonAreEndedAtStart() throws {
        let h = try Harness()
        let (a, sa) = try h.withSecret()
        let (b, sb) = try h.withSecret("fabrikam")
        _ = try h.lockbox.redeem(id: a, secret: Array(sa.utf8), by: World.alice, session: s1)
        _ = try h.lockbox.redeem(id: b, secret: Array(sb.utf8), by: World.alice, session: s2)
        let ended = h.lockbox.endElevations(ofSessionsOtherThan: [s2], reason: "its session ended with the previous daemon")
        XCTAssertEqual(ended.map(\.id), [a])
        XCTAssertEqual(try h.store.request(id: a)?.state, .cancelled)
        XCTAssertEqual(try h.store.request(id: b)?.state, .active, "a live session keeps its grant")
        let event = try XCTUnwrap(h.audit.events(of: .elevationEnd).last)
        XCTAssertEqual(event.session, s1)
        XCTAssertEqual(event.fields["actor"], "lockbox")
        XCTAssertEqual(event.fields["reason"], "its session ended with the previous daemon")
        // A grant whose time ran out meanwhile is recorded as expired.
        h.clock.advance(by: 3 * 3600)
        XCTAssertEqual(h.lockbox.endElevations(ofSessionsOtherThan: [], reason: "restart").map(\.state), [.expired])
    }

    func testRequesterMayCancelButNotOthers() throws {
        let h = try Harness()
        let r = try h.submit()
        XCTAssertLockboxError(try h.lockbox.cancel(id: r.id, by: World.dave)) { $0 == .notFound(id: r.id) }
        XCTAssertEqual(try h.lockbox.cancel(id: r.id, by: World.alice).state, .cancelled)
    }

    func testPendingListsOnlyWhatTheApproverMayActOn() throws {
        let h = try Harness()
        let contoso = try h.submit()
        let fabrikam = try h.submit("fabrikam")
        XCTAssertEqual(Set(try h.lockbox.pending(for: World.bob).map(\.id)), [contoso.id, fabrikam.id])
        XCTAssertTrue(try h.lockbox.pending(for: World.carol).isEmpty)
        _ = try h.lockbox.approve(id: contoso.id, by: World.bob)
        XCTAssertEqual(try h.lockbox.pending(for: World.carol).map(\.id), [contoso.id])
        XCTAssertEqual(try h.lockbox.pending(for: World.bob).map(\.id), [fabrikam.id])
        XCTAssertTrue(try h.lockbox.pending(for: World.alice).isEmpty)
    }

    func testSecretTextRoundTrips() {
        let s = OneTimeSecret.generate()
        let parsed = OneTimeSecret(typed: Array(s.revealedText.replacingOccurrences(of: "-", with: " ").utf8))
        XCTAssertNotNil(parsed)
        XCTAssertEqual(parsed?.revealedText, s.revealedText)
        XCTAssertNotEqual(OneTimeSecret.generate().revealedText, s.revealedText)
        XCTAssertNil(OneTimeSecret(typed: Array("0000".utf8)))
    }

    func testARequestableRoleMustSetMaxDuration() throws {
        let text = "roles:\n  MailboxReader:\n    requestableBy: [engineers]\n"
        XCTAssertThrowsError(try LockboxPolicy.load(text: text, file: "lockbox.yaml", roles: World.roles(of: World.snapshot()))) { error in
            XCTAssertTrue(String(describing: error).contains("lockbox.yaml:2:"), "\(error)")
            XCTAssertTrue(String(describing: error).contains("sets no maxDuration"), "\(error)")
        }
    }

    func testLockboxPolicyErrorsCarryFileAndLine() throws {
        let bad = """
        roles:
          MailboxAdmn:
            requestableBy: [engineers]
          MailboxAdmin:
            requestableBy: [engineers]
            aprovals: [manager]
            ticketPattern: 'INC-1'
        """
        XCTAssertThrowsError(try LockboxPolicy.load(text: bad, file: "lockbox.yaml", roles: World.roles(of: World.snapshot()))) { error in
            let text = String(describing: error)
            XCTAssertTrue(text.contains("lockbox.yaml:2:"), text)
            XCTAssertTrue(text.contains("did you mean 'MailboxAdmin'"), text)
            XCTAssertTrue(text.contains("lockbox.yaml:6:"), text)
            XCTAssertTrue(text.contains("lockbox.yaml:7:"), text)
        }
    }
}
