import ConsoleCore
import Foundation
import HTTPTypes
import Hummingbird

/// The activity API under /api/v1 (document: /api/v1/openapi.json). The
/// bearer token and every parameter go to the monitor, which validates the
/// token (hashed, tenant-scoped), the parameters, and builds the answer;
/// here only the HTTP shape is made. Read-only: every other method is 405.
struct ActivityRoutes: Sendable {
    let link: MonitorLink

    func register(_ router: Router<WebContext>) {
        router.get("/api/v1/openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"],
                     body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.json)))
        }
        router.get("/api/v1/activity") { request, _ in await call(request, "/activity") }
        router.get("/api/v1/requests") { request, _ in await call(request, "/requests") }
        router.get("/api/v1/requests/:id") { request, context in
            await call(request, "/requests/" + (context.parameters.get("id") ?? ""))
        }
        router.get("/api/v1/sessions") { request, _ in await call(request, "/sessions") }
        router.get("/api/v1/sessions/:id") { request, context in
            await call(request, "/sessions/" + (context.parameters.get("id") ?? ""))
        }
        router.get("/api/v1/sessions/:id/transcript") { request, context in
            await transcript(request, id: context.parameters.get("id") ?? "")
        }
        router.get("/api/v1/**") { _, _ in json(404, APIProblem(status: 404, code: "NotFound", message: "no such API path").json) }
        for method in [HTTPRequest.Method.post, .put, .delete, .patch] {
            router.on("/api/v1/**", method: method) { _, _ in notAllowed() }
            for path in ["/api/v1/activity", "/api/v1/requests", "/api/v1/requests/:id", "/api/v1/sessions",
                         "/api/v1/sessions/:id", "/api/v1/sessions/:id/transcript", "/api/v1/openapi.json"] {
                router.on(RouterPath(path), method: method) { _, _ in notAllowed() }
            }
        }
    }

    func notAllowed() -> Response {
        var response = json(405, APIProblem(status: 405, code: "MethodNotAllowed", message: "the API is read-only: GET only").json)
        response.headers[.allow] = "GET"
        return response
    }

    func json(_ status: Int, _ body: String) -> Response {
        var response = Response(status: HTTPResponse.Status(code: status), headers: [.contentType: "application/json"],
                                body: .init(byteBuffer: ByteBuffer(string: body)))
        if status == 401 { response.headers[.wwwAuthenticate] = "Bearer realm=\"gatehouse\"" }
        return response
    }

    static func bearer(_ request: Request) -> String? {
        guard let header = request.headers[.authorization] else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return parts[1].trimmingCharacters(in: .whitespaces)
    }

    /// The query as single values; a repeated parameter is refused.
    static func query(_ request: Request) -> Result<[String: String], APIProblem> {
        var out: [String: String] = [:]
        for (name, values) in FormData.parse(request.uri.query ?? "") {
            guard values.count == 1 else { return .failure(.badRequest("parameter \(name.debugDescription) is repeated")) }
            out[name] = values[0]
        }
        return .success(out)
    }

    private static func unauthorized() -> APIProblem {
        APIProblem(status: 401, code: "Unauthorized", message: "a valid bearer token is required")
    }

    func call(_ request: Request, _ path: String) async -> Response {
        guard let token = Self.bearer(request) else { return json(401, Self.unauthorized().json) }
        let query: [String: String]
        switch Self.query(request) {
        case .success(let q): query = q
        case .failure(let problem): return json(problem.status, problem.json)
        }
        switch await link.call(.api(token: token, path: path, query: query)) {
        case .api(let status, let body): return json(status, body)
        default: return json(503, APIProblem(status: 503, code: "Unavailable", message: "the gateway is unavailable").json)
        }
    }

    /// The transcript as one asciicast file, joined from the monitor's pieces.
    func transcript(_ request: Request, id: String) async -> Response {
        guard let token = Self.bearer(request) else { return json(401, Self.unauthorized().json) }
        switch Self.query(request) {
        case .success(let q) where q.isEmpty: break
        case .success: return json(400, APIProblem.badRequest("this path takes no parameters").json)
        case .failure(let problem): return json(problem.status, problem.json)
        }
        var data = Data()
        var offset = 0
        while true {
            let reply = await link.call(.api(token: token, path: "/sessions/\(id)/transcript", query: ["offset": String(offset)]))
            guard case .api(let status, let body) = reply else {
                return json(503, APIProblem(status: 503, code: "Unavailable", message: "the gateway is unavailable").json)
            }
            guard status == 200 else { return json(status, body) }
            guard let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
                  let base64 = object["data"] as? String, let piece = Data(base64Encoded: base64) else {
                return json(503, APIProblem(status: 503, code: "Unavailable", message: "the transcript is unreadable").json)
            }
            data.append(piece)
            guard let next = object["next"] as? Int, data.count < 16 * 1024 * 1024 else { break }
            offset = next
        }
        return Response(status: .ok, headers: [.contentType: "application/x-asciicast"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
