import ConsoleCore
import Foundation
import HTTPTypes
import Hummingbird

/// Every response: a strict CSP (no inline script or style; the asciinema
/// player compiles its WebAssembly terminal, hence 'wasm-unsafe-eval',
/// which allows no JavaScript eval), no sniffing, no referrer, no framing,
/// and nothing cached (every page is per person).
struct SecurityHeaders<Context: RequestContext>: RouterMiddleware {
    static var policy: String {
        "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self'; "
            + "connect-src 'self'; font-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as HTTPError {
            // Routing's own refusals (no such path, body too large) as plain, headed responses.
            response = Response(status: error.status, headers: [.contentType: "text/plain; charset=utf-8"],
                                body: .init(byteBuffer: ByteBuffer(string: error.status.reasonPhrase + "\n")))
        }
        response.headers[.contentSecurityPolicy] = Self.policy
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        response.headers[HTTPField.Name("Cross-Origin-Opener-Policy")!] = "same-origin"
        response.headers[.cacheControl] = "no-store"
        return response
    }
}

/// A request's context: Hummingbird's, plus the peer's address (the audit's
/// `source` and PAM's `PAM_RHOST`, as for an SSH sign-in).
struct WebContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let peer: String

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        if let address = source.channel.remoteAddress, let ip = address.ipAddress {
            peer = ip.contains(":") ? "[\(ip)]:\(address.port ?? 0)" : "\(ip):\(address.port ?? 0)"
        } else {
            peer = "unknown"
        }
    }
}

struct StaticAssets: Sendable {
    let playerScript: [UInt8]?
    let playerStyle: [UInt8]?
}

/// The console's routes. Every page asks the monitor who the cookie
/// belongs to; every POST carries the session's CSRF token, which the
/// monitor checks again; nothing here decides anything.
struct Console: Sendable {
    let link: MonitorLink
    let assets: StaticAssets

    static let sessionCookie = "gh_session"
    static let preCookie = "gh_pre"
    static let signInCookie = "gh_signin"
    static let maxForm = 16 * 1024

    func register(_ router: Router<WebContext>) {
        router.get("/") { request, _ in
            await identity(request) == nil ? redirect("/signin") : redirect("/queue")
        }
        router.get("/signin") { _, _ in signInPage(error: nil) }
        router.post("/signin") { request, context in try await signInStart(request, peer: context.peer) }
        router.post("/signin/step") { request, _ in try await signInStep(request) }
        router.post("/signout") { request, _ in try await signOut(request) }
        router.get("/queue") { request, _ in await queue(request, message: nil) }
        router.post("/requests/:id/decide") { request, context in
            try await decide(request, id: context.parameters.get("id") ?? "")
        }
        router.get("/review") { request, _ in await review(request) }
        router.get("/sessions/:id") { request, context in await session(request, id: context.parameters.get("id") ?? "") }
        router.get("/sessions/:id/cast") { request, context in await cast(request, id: context.parameters.get("id") ?? "") }
        router.get("/audit/verify") { request, _ in await verify(request) }
        router.get("/favicon.ico") { _, _ in Response(status: .noContent) }
        router.get("/static/console.css") { _, _ in file(Array(StaticText.css.utf8), "text/css; charset=utf-8") }
        router.get("/static/console.js") { _, _ in file(Array(StaticText.script.utf8), "text/javascript; charset=utf-8") }
        router.get("/static/asciinema-player.min.js") { _, _ in
            assets.playerScript.map { file($0, "text/javascript; charset=utf-8") } ?? notFoundPlain()
        }
        router.get("/static/asciinema-player.css") { _, _ in
            assets.playerStyle.map { file($0, "text/css; charset=utf-8") } ?? notFoundPlain()
        }
        ActivityRoutes(link: link).register(router)
    }

    // MARK: - Responses

    func html(_ body: String, status: HTTPResponse.Status = .ok, cookies: [String] = []) -> Response {
        var headers: HTTPFields = [.contentType: "text/html; charset=utf-8"]
        for cookie in cookies { headers.append(HTTPField(name: .setCookie, value: cookie)) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    func redirect(_ location: String, cookies: [String] = []) -> Response {
        var headers: HTTPFields = [.location: location]
        for cookie in cookies { headers.append(HTTPField(name: .setCookie, value: cookie)) }
        return Response(status: .seeOther, headers: headers)
    }

    func file(_ bytes: [UInt8], _ type: String) -> Response {
        Response(status: .ok, headers: [.contentType: type], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    func notFoundPlain() -> Response {
        Response(status: .notFound, headers: [.contentType: "text/plain; charset=utf-8"],
                 body: .init(byteBuffer: ByteBuffer(string: "Not found\n")))
    }

    /// `HttpOnly; Secure; SameSite=Strict`, always: the cookie never reaches
    /// script, another site's request, or (off loopback) plain HTTP.
    static func cookie(_ name: String, _ value: String, path: String = "/", expire: Bool = false) -> String {
        "\(name)=\(value); Path=\(path); HttpOnly; Secure; SameSite=Strict" + (expire ? "; Max-Age=0" : "")
    }

    func cookie(_ request: Request, _ name: String) -> String? {
        guard let value = request.cookies[name]?.value, WebTokens.isWellFormed(value) else { return nil }
        return value
    }

    static func form(_ request: inout Request) async throws -> [String: [String]] {
        let body = try await request.collectBody(upTo: maxForm)
        return FormData.parse(String(buffer: body))
    }


    // MARK: - Sign-in

    func signInPage(error: String?, status: HTTPResponse.Status = .ok) -> Response {
        let pre = WebTokens.random()
        return html(Pages.signIn(pre: pre, error: error), status: status,
                    cookies: [Self.cookie(Self.preCookie, pre, path: "/signin")])
    }

    /// The sign-in forms' CSRF check: the hidden field must equal the
    /// pre-session cookie (double submit; the cookie is SameSite=Strict).
    func preTokenMatches(_ request: Request, _ form: [String: [String]]) -> Bool {
        guard let cookie = cookie(request, Self.preCookie), let field = form["csrf"]?.first else { return false }
        return WebTokens.constantTimeEquals(cookie, field)
    }

    func signInStart(_ request: Request, peer: String) async throws -> Response {
        var request = request
        let form = try await Self.form(&request)
        guard preTokenMatches(request, form) else {
            return signInPage(error: "The form expired or did not come from this console; sign in again.", status: .forbidden)
        }
        let user = form["user"]?.first?.trimmingCharacters(in: .whitespaces) ?? ""
        guard !user.isEmpty, user.utf8.count <= 64 else { return signInPage(error: "Enter your user name.") }
        return await signInReply(await link.call(.signInStart(user: user, source: peer)), request: request)
    }

    func signInStep(_ request: Request) async throws -> Response {
        var request = request
        let form = try await Self.form(&request)
        guard preTokenMatches(request, form), let conversation = cookie(request, Self.signInCookie) else {
            return signInPage(error: "The sign-in expired; start again.", status: .forbidden)
        }
        let answers = form["answer"] ?? []
        return await signInReply(await link.call(.signInAnswers(conversation: conversation, answers: answers)),
                                 request: request)
    }

    func signInReply(_ reply: WebReply, request: Request) async -> Response {
        switch reply {
        case .prompts(let conversation, let prompts):
            let pre = cookie(request, Self.preCookie) ?? WebTokens.random()
            return html(Pages.prompts(prompts, pre: pre),
                        cookies: [Self.cookie(Self.signInCookie, conversation, path: "/signin"),
                                  Self.cookie(Self.preCookie, pre, path: "/signin")])
        case .signedIn(let session, _):
            return redirect("/queue", cookies: [Self.cookie(Self.sessionCookie, session),
                                                Self.cookie(Self.signInCookie, "", path: "/signin", expire: true),
                                                Self.cookie(Self.preCookie, "", path: "/signin", expire: true)])
        case .signInFailed(let message):
            return signInPage(error: message, status: .unauthorized)
        default:
            return signInPage(error: "Sign-in failed.", status: .unauthorized)
        }
    }

    func signOut(_ request: Request) async throws -> Response {
        var request = request
        let form = try await Self.form(&request)
        if let session = cookie(request, Self.sessionCookie) {
            let reply = await link.call(.signOut(session: session, csrf: form["csrf"]?.first ?? ""))
            if case .forbidden = reply {
                return html(Pages.problem("Refused", "The form did not carry this session's token.", identity: nil),
                            status: .forbidden)
            }
        }
        return redirect("/signin", cookies: [Self.cookie(Self.sessionCookie, "", expire: true)])
    }

    // MARK: - Signed in

    func identity(_ request: Request) async -> (session: String, identity: WebIdentity)? {
        guard let session = cookie(request, Self.sessionCookie) else { return nil }
        guard case .identity(let identity) = await link.call(.whoAmI(session: session)) else { return nil }
        return (session, identity)
    }

    func queue(_ request: Request, message: HTML?) async -> Response {
        guard let (session, who) = await identity(request) else { return redirect("/signin") }
        switch await link.call(.pending(session: session)) {
        case .requests(let list): return html(Pages.queue(list, identity: who, message: message))
        case .unauthenticated: return redirect("/signin")
        case .failed(let text): return html(Pages.problem("Approvals", text, identity: who), status: .serviceUnavailable)
        default: return html(Pages.problem("Approvals", "Unavailable.", identity: who), status: .serviceUnavailable)
        }
    }

    func decide(_ request: Request, id idText: String) async throws -> Response {
        var request = request
        let form = try await Self.form(&request)
        guard let session = cookie(request, Self.sessionCookie) else { return redirect("/signin") }
        guard let id = Int64(idText), id > 0 else { return html(Pages.problem("Not found", "No such request.", identity: nil), status: .notFound) }
        let action = form["action"]?.first
        guard action == "approve" || action == "deny" else {
            return html(Pages.problem("Refused", "Choose approve or deny.", identity: nil), status: .badRequest)
        }
        let comment = String((form["comment"]?.first ?? "").prefix(500))
        let reply = await link.call(.decide(session: session, csrf: form["csrf"]?.first ?? "", id: id,
                                            approve: action == "approve", comment: comment))
        switch reply {
        case .decided(_, let message):
            return await queue(request, message: Pages.notice(message, kind: "ok"))
        case .lockboxRefused(let message):
            var response = await queue(request, message: Pages.notice(message, kind: "error"))
            if response.status == .ok { response.status = .conflict }
            return response
        case .forbidden:
            return html(Pages.problem("Refused", "The form did not carry this session's token; nothing was changed.",
                                      identity: nil), status: .forbidden)
        case .unauthenticated:
            return redirect("/signin")
        case .failed(let text):
            return html(Pages.problem("Unavailable", text, identity: nil), status: .serviceUnavailable)
        default:
            return html(Pages.problem("Unavailable", "Nothing was changed.", identity: nil), status: .serviceUnavailable)
        }
    }

    func reviewerRefusal(_ reply: WebReply, who: WebIdentity) -> Response? {
        switch reply {
        case .unauthenticated: return redirect("/signin")
        case .forbidden: return html(Pages.problem("Review", "Review is for members of the reviewers group.", identity: who),
                                     status: .forbidden)
        case .notFound: return html(Pages.problem("Not found", "No such session.", identity: who), status: .notFound)
        case .failed(let text): return html(Pages.problem("Review", text, identity: who), status: .serviceUnavailable)
        default: return nil
        }
    }

    func review(_ request: Request) async -> Response {
        guard let (session, who) = await identity(request) else { return redirect("/signin") }
        let q = FormData.parse(request.uri.query ?? "")
        var form = Pages.SearchForm()
        func value(_ name: String) -> String { String((q[name]?.first ?? "").trimmingCharacters(in: .whitespaces).prefix(256)) }
        form.user = value("user"); form.cmdlet = value("cmdlet"); form.parameter = value("parameter")
        form.scope = value("scope"); form.request = value("request"); form.decision = value("decision")
        form.since = value("since"); form.until = value("until")
        var query = CommandQuery()
        func nonEmpty(_ s: String) -> String? { s.isEmpty ? nil : s }
        query.user = nonEmpty(form.user); query.cmdlet = nonEmpty(form.cmdlet); query.parameter = nonEmpty(form.parameter)
        query.scope = nonEmpty(form.scope); query.decision = nonEmpty(form.decision)
        if !form.request.isEmpty {
            guard let id = Int64(form.request) else {
                return html(Pages.review(form, page: nil, identity: who, error: "Request is a number."), status: .badRequest)
            }
            query.requestID = id
        }
        if let d = query.decision, d != "allow", d != "deny" {
            return html(Pages.review(form, page: nil, identity: who, error: "Decision is allow or deny."), status: .badRequest)
        }
        for (text, set) in [(form.since, { (d: Date) in query.since = d }), (form.until, { (d: Date) in query.until = d })]
            where !text.isEmpty {
            guard let date = APIParameters.parse(text) ?? APIParameters.parse(text + ":00Z") else {
                return html(Pages.review(form, page: nil, identity: who,
                                         error: "Times are ISO 8601, such as 2026-12-06T10:00:00Z."), status: .badRequest)
            }
            set(date)
        }
        let searched = q.isEmpty ? nil : await link.call(.search(session: session, query: query))
        if let searched, let refusal = reviewerRefusal(searched, who: who) { return refusal }
        if !who.reviewer { return html(Pages.problem("Review", "Review is for members of the reviewers group.", identity: who), status: .forbidden) }
        if case .commands(let page)? = searched { return html(Pages.review(form, page: page, identity: who)) }
        return html(Pages.review(form, page: nil, identity: who))
    }

    /// The whole asciicast, in pieces from the monitor (at most 16 MiB).
    enum Cast { case success(Data), failure(WebReply) }

    func castBytes(session: String, id: String) async -> Cast {
        var data = Data()
        var offset = 0
        while true {
            let reply = await link.call(.transcript(session: session, id: id, offset: offset))
            guard case .transcriptChunk(let base64, let next) = reply, let piece = Data(base64Encoded: base64) else {
                return .failure(reply)
            }
            data.append(piece)
            guard let next, data.count < 16 * 1024 * 1024 else { return .success(data) }
            offset = next
        }
    }

    func session(_ request: Request, id: String) async -> Response {
        guard let (session, who) = await identity(request) else { return redirect("/signin") }
        let reply = await link.call(.sessionDetail(session: session, id: id))
        if let refusal = reviewerRefusal(reply, who: who) { return refusal }
        guard case .session(let detail) = reply else { return html(Pages.problem("Review", "Unavailable.", identity: who), status: .serviceUnavailable) }
        var text: String?
        if detail.hasTranscript, case .success(let data) = await castBytes(session: session, id: id) {
            text = Pages.transcriptText(data)
        }
        return html(Pages.session(detail, transcriptText: text, identity: who))
    }

    func cast(_ request: Request, id: String) async -> Response {
        guard let session = cookie(request, Self.sessionCookie) else { return notFoundPlain() }
        switch await castBytes(session: session, id: id) {
        case .success(let data):
            return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: data)))
        case .failure(.forbidden):
            return Response(status: .forbidden)
        case .failure:
            return notFoundPlain()
        }
    }

    func verify(_ request: Request) async -> Response {
        guard let (session, who) = await identity(request) else { return redirect("/signin") }
        let reply = await link.call(.verifyChain(session: session))
        if let refusal = reviewerRefusal(reply, who: who) { return refusal }
        guard case .chain(let ok, let summary) = reply else { return html(Pages.problem("Audit chain", "Unavailable.", identity: who), status: .serviceUnavailable) }
        return html(Pages.chain(ok: ok, summary: summary, identity: who))
    }
}

/// `application/x-www-form-urlencoded` and query strings: `+` is a space,
/// `%XX` a byte; a name may repeat (the sign-in's answers).
enum FormData {
    static func parse(_ text: String) -> [String: [String]] {
        var out: [String: [String]] = [:]
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = decode(parts[0])
            let value = parts.count > 1 ? decode(parts[1]) : ""
            out[name, default: []].append(value)
        }
        return out
    }

    static func decode(_ s: Substring) -> String {
        var bytes: [UInt8] = []
        var i = s.utf8.startIndex
        let u = s.utf8
        while i < u.endIndex {
            let c = u[i]
            if c == UInt8(ascii: "+") {
                bytes.append(0x20)
            } else if c == UInt8(ascii: "%"), let h1 = u.index(i, offsetBy: 1, limitedBy: u.endIndex), h1 < u.endIndex,
                      let h2 = u.index(i, offsetBy: 2, limitedBy: u.endIndex), h2 < u.endIndex,
                      let v = UInt8(String(decoding: [u[h1], u[h2]], as: UTF8.self), radix: 16) {
                bytes.append(v)
                i = h2
            } else {
                bytes.append(c)
            }
            i = u.index(after: i)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
