import ConsoleCore
import Foundation
import XCTest

final class WebSessionTableTests: XCTestCase {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    func testSessionIsValidUntilIdleTimeoutAndActivityExtendsIt() {
        var table = WebSessionTable(idleTimeout: 600, lifetime: 3600)
        let (id, entry) = table.create(user: "carol", now: t0)
        XCTAssertEqual(table.lookup(id, now: t0 + 599), .valid(WebSessionTable.Entry(user: "carol", csrf: entry.csrf,
                                                                                      created: t0, lastSeen: t0 + 599)))
        // Activity at 599 s moved the idle deadline.
        if case .valid = table.lookup(id, now: t0 + 1198) {} else { XCTFail("activity must extend the idle timeout") }
        XCTAssertEqual(table.lookup(id, now: t0 + 1198 + 600), .expired)
        // Expired means gone: the same id is then unknown.
        XCTAssertEqual(table.lookup(id, now: t0 + 1198 + 601), .unknown)
    }

    func testLifetimeEndsASessionWhateverTheActivity() {
        var table = WebSessionTable(idleTimeout: 600, lifetime: 1000)
        let (id, _) = table.create(user: "bob", now: t0)
        for step in stride(from: 100, through: 900, by: 100) {
            if case .valid = table.lookup(id, now: t0 + TimeInterval(step)) {} else { XCTFail("step \(step)") }
        }
        XCTAssertEqual(table.lookup(id, now: t0 + 1000), .expired)
    }

    func testUnknownAndMalformedIdsAreUnknown() {
        var table = WebSessionTable(idleTimeout: 600, lifetime: 3600)
        _ = table.create(user: "bob", now: t0)
        XCTAssertEqual(table.lookup(WebTokens.random(), now: t0), .unknown)
        XCTAssertEqual(table.lookup("", now: t0), .unknown)
        XCTAssertEqual(table.lookup("../../etc/passwd", now: t0), .unknown)
    }

    func testIdsAndCSRFTokensAre256BitAndDistinct() {
        var table = WebSessionTable(idleTimeout: 600, lifetime: 3600)
        var seen = Set<String>()
        for _ in 0..<200 {
            let (id, entry) = table.create(user: "u", now: t0)
            XCTAssertTrue(WebTokens.isWellFormed(id))
            XCTAssertEqual(Data(base64Encoded: id.replacingOccurrences(of: "-", with: "+")
                .replacingOccurrences(of: "_", with: "/") + "=")?.count, 32)
            XCTAssertNotEqual(id, entry.csrf)
            XCTAssertTrue(seen.insert(id).inserted)
            XCTAssertTrue(seen.insert(entry.csrf).inserted)
        }
    }

    func testSignOutRemovesTheSession() {
        var table = WebSessionTable(idleTimeout: 600, lifetime: 3600)
        let (id, _) = table.create(user: "bob", now: t0)
        table.remove(id)
        XCTAssertEqual(table.lookup(id, now: t0), .unknown)
    }

    func testCapacityEvictsTheLeastRecentlySeen() {
        var table = WebSessionTable(idleTimeout: 600, lifetime: 3600, capacity: 2)
        let (a, _) = table.create(user: "a", now: t0)
        let (b, _) = table.create(user: "b", now: t0 + 1)
        _ = table.lookup(a, now: t0 + 2)
        _ = table.create(user: "c", now: t0 + 3)
        XCTAssertEqual(table.count, 2)
        XCTAssertEqual(table.lookup(b, now: t0 + 4), .unknown)
        if case .valid = table.lookup(a, now: t0 + 4) {} else { XCTFail("the recently seen session stays") }
    }
}

final class CSRFTests: XCTestCase {
    func testConstantTimeEquals() {
        XCTAssertTrue(WebTokens.constantTimeEquals("abc", "abc"))
        XCTAssertFalse(WebTokens.constantTimeEquals("abc", "abd"))
        XCTAssertFalse(WebTokens.constantTimeEquals("abc", "ab"))
        XCTAssertFalse(WebTokens.constantTimeEquals("", "a"))
        XCTAssertTrue(WebTokens.constantTimeEquals("", ""))
    }

    func testPermitsRefuseAChangeWithoutTheSessionsToken() {
        var table = WebSessionTable(idleTimeout: 600, lifetime: 3600)
        let now = Date()
        let (id, entry) = table.create(user: "carol", now: now)
        var permits = WebPermits()
        XCTAssertEqual(permits.judge(.ready(port: 1), sessions: &table, now: now, isReviewer: { _ in false }), .open)
        let decide = { (csrf: String) in WebRequest.decide(session: id, csrf: csrf, id: 1, approve: true, comment: "") }
        if case .refused = permits.judge(decide(""), sessions: &table, now: now, isReviewer: { _ in false }) {} else { XCTFail("no token") }
        if case .refused = permits.judge(decide(WebTokens.random()), sessions: &table, now: now, isReviewer: { _ in false }) {} else {
            XCTFail("wrong token")
        }
        XCTAssertEqual(permits.judge(decide(entry.csrf), sessions: &table, now: now, isReviewer: { _ in false }),
                       .session(WebSessionTable.Entry(user: "carol", csrf: entry.csrf, created: now, lastSeen: now)))
    }

    func testPermitsTable() {
        var table = WebSessionTable(idleTimeout: 600, lifetime: 3600)
        let now = Date()
        let (id, _) = table.create(user: "bob", now: now)
        var permits = WebPermits()
        // Nothing before ready; ready once.
        if case .refused = permits.judge(.whoAmI(session: id), sessions: &table, now: now, isReviewer: { _ in true }) {} else { XCTFail() }
        XCTAssertEqual(permits.judge(.ready(port: 1), sessions: &table, now: now, isReviewer: { _ in true }), .open)
        if case .refused = permits.judge(.ready(port: 1), sessions: &table, now: now, isReviewer: { _ in true }) {} else { XCTFail() }
        // Sign-in and API are judged by their handlers.
        XCTAssertEqual(permits.judge(.signInStart(user: "x", source: "y"), sessions: &table, now: now, isReviewer: { _ in false }), .open)
        XCTAssertEqual(permits.judge(.api(token: "", path: "/activity", query: [:]), sessions: &table, now: now, isReviewer: { _ in false }), .open)
        // A forged cookie is audited; review needs the group.
        XCTAssertEqual(permits.judge(.whoAmI(session: WebTokens.random()), sessions: &table, now: now, isReviewer: { _ in false }),
                       .unauthenticated(audit: true))
        if case .refused = permits.judge(.search(session: id, query: CommandQuery()), sessions: &table, now: now,
                                         isReviewer: { _ in false }) {} else { XCTFail("not a reviewer") }
        if case .session = permits.judge(.search(session: id, query: CommandQuery()), sessions: &table, now: now,
                                         isReviewer: { $0 == "bob" }) {} else { XCTFail("a reviewer") }
        // An expired session is not audited, only sent to sign in.
        XCTAssertEqual(permits.judge(.pending(session: id), sessions: &table, now: now + 601, isReviewer: { _ in false }),
                       .unauthenticated(audit: false))
    }
}

final class HTMLEscapingTests: XCTestCase {
    func testInterpolatedStringsAreEscapedAndLiteralsAreNot() {
        let hostile = "<img src=x onerror=alert(1)>\"'&"
        let html: HTML = "<td class=\"x\" title=\"\(hostile)\">\(hostile)</td>"
        XCTAssertEqual(html.rendered, "<td class=\"x\" title=\"&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;\">"
                       + "&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;</td>")
    }

    func testControlCharactersBecomeVisibleText() {
        let html: HTML = "<pre>\("a\u{1b}]0;title\u{07}b\u{9b}c")</pre>"
        XCTAssertEqual(html.rendered, "<pre>a\\u{1b}]0;title\\u{7}b\\u{9b}c</pre>")
    }

    func testNestedHTMLIsInsertedOnceEscaped() {
        let inner: HTML = "<b>\("<x>")</b>"
        let outer: HTML = "<p>\(inner)\([inner, inner])</p>"
        XCTAssertEqual(outer.rendered, "<p><b>&lt;x&gt;</b><b>&lt;x&gt;</b><b>&lt;x&gt;</b></p>")
    }

    func testURLComponent() {
        XCTAssertEqual(HTML.urlComponent("a b/c?d=\"e\""), "a%20b%2Fc%3Fd%3D%22e%22")
        XCTAssertEqual(HTML.urlComponent("Abc-_.~9"), "Abc-_.~9")
    }

    func testAPIJSONNeverCarriesMarkup() {
        XCTAssertEqual(APIJSON.string("<script>\"\\\n\u{1}").text, "\"\\u003cscript\\u003e\\\"\\\\\\n\\u0001\"")
    }
}

final class APITokenTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("api-tokens-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    func testTokenIsStoredOnlyAsItsDigestAndValidates() throws {
        let path = directory.appendingPathComponent("t.sqlite").path
        let store = try APITokenStore(path: path)
        let (client, token) = try store.create(name: "siem", tenants: ["contoso"], now: Date())
        XCTAssertEqual(store.validate(token)?.id, client.id)
        XCTAssertEqual(store.validate(token)?.tenants, ["contoso"])
        XCTAssertNil(store.validate(WebTokens.random()))
        XCTAssertNil(store.validate(token + "x"))
        XCTAssertNil(store.validate(""))
        let file = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertNil(file.range(of: Data(token.utf8)), "the token itself is never stored")
        XCTAssertNotNil(file.range(of: Data(WebTokens.digest(token).utf8)))
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o600)
    }

    func testRevokedTokenStopsAndNamesAreChecked() throws {
        let store = try APITokenStore(path: directory.appendingPathComponent("t.sqlite").path)
        let (_, token) = try store.create(name: "siem", tenants: ["contoso"], now: Date())
        XCTAssertThrowsError(try store.create(name: "siem", tenants: ["contoso"], now: Date())) {
            XCTAssertEqual($0 as? APITokenError, .duplicateName("siem"))
        }
        try store.revoke(name: "siem", now: Date())
        XCTAssertNil(store.validate(token))
        XCTAssertThrowsError(try store.revoke(name: "siem", now: Date()))
        XCTAssertThrowsError(try store.create(name: "bad name", tenants: ["contoso"], now: Date()))
        XCTAssertThrowsError(try store.create(name: "x", tenants: [], now: Date()))
        XCTAssertThrowsError(try store.create(name: "x", tenants: ["con,toso"], now: Date()))
        // After revocation the name may be used again.
        _ = try store.create(name: "siem", tenants: ["*"], now: Date())
    }

    func testTenantScopeDeniesByDefault() {
        let contoso = TenantScope(tenants: ["contoso"])
        XCTAssertTrue(contoso.allows(scope: "contoso"))
        XCTAssertFalse(contoso.allows(scope: "fabrikam"))
        XCTAssertFalse(contoso.allows(scope: nil))
        XCTAssertFalse(contoso.allows(scope: ""))
        let all = TenantScope(tenants: ["*"])
        XCTAssertTrue(all.allows(scope: nil))
        XCTAssertTrue(all.allows(scope: "fabrikam"))
    }
}

final class ActivityQueryTests: XCTestCase {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func testDefaultsToTheLastDay() throws {
        let q = try ActivityQuery.parse([:], now: now)
        XCTAssertEqual(q.endTime, now)
        XCTAssertEqual(q.startTime, now - 86400)
        XCTAssertEqual(q.pageSize, 50)
        XCTAssertEqual(q.after, 0)
    }

    func testBadParametersAre400NamingThem() {
        func problem(_ q: [String: String]) -> String? {
            do {
                _ = try ActivityQuery.parse(q, now: now)
                return nil
            } catch {
                XCTAssertEqual(error.status, 400)
                return error.message
            }
        }
        XCTAssertTrue(problem(["startTime": "yesterday"])?.contains("startTime") ?? false)
        XCTAssertTrue(problem(["pageSize": "0"])?.contains("pageSize") ?? false)
        XCTAssertTrue(problem(["pageSize": "101"])?.contains("pageSize") ?? false)
        XCTAssertTrue(problem(["pageSize": "-1"])?.contains("pageSize") ?? false)
        XCTAssertTrue(problem(["contentType": "Audit.Exchange"])?.contains("contentType") ?? false)
        XCTAssertTrue(problem(["bogus": "1"])?.contains("bogus") ?? false)
        XCTAssertNotNil(problem(["startTime": "2026-12-06T10:00:00Z", "endTime": "2026-12-06T09:00:00Z"]))
        XCTAssertNotNil(problem(["startTime": "2026-11-01T10:00:00Z", "endTime": "2026-12-06T09:00:00Z"]))
        XCTAssertNotNil(problem(["user": "a\u{1}b"]))
        XCTAssertNil(problem(["startTime": "2026-12-06T10:00:00.5Z", "pageSize": "100", "contentType": "Audit.Lockbox"]))
    }

    func testNextPageURIContinuesTheSameQuery() throws {
        let q = try ActivityQuery.parse(["startTime": "2026-12-06T10:00:00Z", "endTime": "2026-12-06T12:00:00Z",
                                         "user": "alice", "pageSize": "2"], now: now)
        let uri = q.nextPageURI(afterSeq: 41)
        XCTAssertEqual(uri, "/api/v1/activity?startTime=2026-12-06T10%3A00%3A00.000Z&endTime=2026-12-06T12%3A00%3A00.000Z"
                       + "&user=alice&pageSize=2&nextPage=41")
    }

    func testNextPageKeepsEveryEventOfANanosecondWindow() throws {
        let end = Date(timeIntervalSince1970: 1_800_000_000.1234567)
        let q = try ActivityQuery.parse(["endTime": "2026-12-06T12:00:00Z"], now: now)
        var precise = q
        precise.endTime = end
        precise.startTime = end - 3600
        let uri = precise.nextPageURI(afterSeq: 1)
        let items = Dictionary(uniqueKeysWithValues: uri.split(separator: "?")[1].split(separator: "&").map {
            let kv = $0.split(separator: "=", maxSplits: 1)
            return (String(kv[0]), String(kv[1]).removingPercentEncoding!)
        })
        let parsed = try ActivityQuery.parse(items, now: now)
        XCTAssertGreaterThanOrEqual(parsed.endTime, end)
        XCTAssertLessThan(parsed.endTime.timeIntervalSince(end), 0.001)
    }

    func testPaging() {
        let items = Array(1...7)
        let first = Paging.page(items, pageSize: 3, after: nil, key: { $0 })
        XCTAssertEqual(first.items, [1, 2, 3])
        XCTAssertEqual(first.next, 3)
        let last = Paging.page(items, pageSize: 3, after: 6, key: { $0 })
        XCTAssertEqual(last.items, [7])
        XCTAssertNil(last.next)
        let descending = Paging.page(items.reversed(), pageSize: 4, after: 5, key: { $0 }, ascending: false)
        XCTAssertEqual(descending.items, [4, 3, 2, 1])
        XCTAssertNil(descending.next)
    }

    func testContentTypes() {
        XCTAssertEqual(ActivityContentType.of(kind: "command.allowed"), "Audit.Command")
        XCTAssertEqual(ActivityContentType.of(kind: "lockbox.approved"), "Audit.Lockbox")
        XCTAssertEqual(ActivityContentType.of(kind: "elevation.start"), "Audit.Lockbox")
        XCTAssertEqual(ActivityContentType.of(kind: "session.start"), "Audit.Session")
        XCTAssertEqual(ActivityContentType.of(kind: "auth.failure"), "Audit.Gateway")
    }
}
