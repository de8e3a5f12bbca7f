import ConsoleCore
import Foundation
import GatehouseCore
import Lockbox
import Synchronization
import Transcript

/// The activity API's answers, computed by the monitor for one validated
/// token (`scope`): read-only, and a customer's token sees only its
/// tenants' events, requests and sessions. Each answer is one JSON body of
/// at most `budget` bytes (the channel carries 64 KiB): a page stops early
/// when the next item would not fit, and its `nextPageUri` goes on from there.
struct ActivityAPI {
    let gateway: GatewayContext
    let index: IndexHolder
    let marks: AuditLogMarks
    let scope: TenantScope

    static let budget = 56 * 1024
    static let maxFieldBytes = 2048

    func answer(path: String, query: [String: String]) -> (Int, String) {
        do {
            let parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
            switch parts.count {
            case 1 where parts[0] == "activity": return (200, try activity(query))
            case 1 where parts[0] == "requests": return (200, try requests(query))
            case 2 where parts[0] == "requests": return try request(parts[1], query)
            case 1 where parts[0] == "sessions": return (200, try sessions(query))
            case 2 where parts[0] == "sessions": return try session(parts[1], query)
            case 3 where parts[0] == "sessions" && parts[2] == "transcript": return try transcript(parts[1], query)
            default:
                return (404, APIProblem(status: 404, code: "NotFound", message: "no such API path").json)
            }
        } catch let problem as APIProblem {
            return (problem.status, problem.json)
        } catch {
            return (503, APIProblem(status: 503, code: "Unavailable", message: "the audit data is unavailable").json)
        }
    }

    private static func notFound() -> APIProblem { APIProblem(status: 404, code: "NotFound", message: "not found") }

    // MARK: - Audit events

    func activity(_ query: [String: String]) throws -> String {
        let q = try ActivityQuery.parse(query, now: gateway.clock.now())
        guard let handle = FileHandle(forReadingAtPath: gateway.configuration.auditLogPath) else {
            throw APIProblem(status: 503, code: "Unavailable", message: "the audit log is unavailable")
        }
        defer { try? handle.close() }
        let length = (try? handle.seekToEnd()) ?? 0
        if length < marks.scannedTo { marks.reset() }
        let from = marks.start(after: q.after, from: q.startTime)
        try handle.seek(toOffset: from)
        let data = handle.readDataToEndOfFile()
        var items: [String] = []
        var size = 64
        var lastSeq: Int?
        var more = false
        var lineStart = data.startIndex
        while lineStart < data.endIndex {
            guard let newline = data[lineStart...].firstIndex(of: 0x0a) else { break }  // a line still being written
            let line = data[lineStart..<newline]
            let offset = from + UInt64(lineStart - data.startIndex)
            lineStart = newline + 1
            guard let record = try? AuditRecord.parse(line: line).record else { continue }
            marks.note(seq: record.seq, time: record.time, offset: offset, end: from + UInt64(lineStart - data.startIndex))
            guard record.seq > q.after, record.time >= q.startTime, record.time < q.endTime else { continue }
            let type = ActivityContentType.of(kind: record.kind)
            if let wanted = q.contentType, wanted != type { continue }
            if let user = q.user, record.user != user { continue }
            if let kind = q.kind, record.kind != kind { continue }
            guard scope.allows(scope: record.fields["scope"]) else { continue }
            var item = Self.item(record, contentType: type)
            if items.isEmpty && size + item.utf8.count + 1 > Self.budget {
                // One event larger than a page: its fields are left to the audit log, so paging goes on.
                item = Self.item(record, contentType: type, fields: ["truncated": "too large for one page; see the audit log, seq \(record.seq)"])
            }
            if items.count == q.pageSize || size + item.utf8.count + 1 > Self.budget {
                more = true
                break
            }
            items.append(item)
            size += item.utf8.count + 1
            lastSeq = record.seq
        }
        let next: APIJSON = more && lastSeq != nil ? .string(q.nextPageURI(afterSeq: lastSeq!)) : .null
        return "{\"items\":[" + items.joined(separator: ",") + "],\"nextPageUri\":" + next.text + "}"
    }

    static func clip(_ s: String) -> String {
        s.utf8.count <= maxFieldBytes ? s : String(decoding: s.utf8.prefix(maxFieldBytes), as: UTF8.self) + "…"
    }

    static func item(_ r: AuditRecord, contentType: String, fields: [String: String]? = nil) -> String {
        APIJSON.object([
            "id": .string(r.hash), "seq": .int(Int64(r.seq)), "creationTime": .date(r.time), "kind": .string(r.kind),
            "contentType": .string(contentType), "user": .optional(r.user), "session": .optional(r.session),
            "scope": .optional(r.fields["scope"]),
            "requestId": .optional((r.fields["requestID"] ?? r.fields["request"]).flatMap { Int64($0) }),
            "fields": .object((fields ?? r.fields).mapValues { .string(clip($0)) }),
        ]).text
    }

    // MARK: - Requests and approvals

    func requestJSON(_ r: RequestView) -> APIJSON {
        .object([
            "id": .int(r.id), "state": .string(r.state), "stage": .string(r.stage), "requester": .string(r.requester),
            "role": .string(r.role), "scope": .string(r.scope), "durationSeconds": .int(Int64(r.durationSeconds)),
            "reason": .string(Self.clip(r.reason)), "ticket": .optional(r.ticket),
            "createdAt": .date(r.createdAt), "activatedAt": .date(r.activatedAt), "deadline": .date(r.deadline),
            "session": .optional(r.session), "endReason": .optional(r.endReason),
            "approvals": .array(
                (r.managerApprover.map { [APIJSON.object(["stage": .string("manager"), "approver": .string($0),
                                                          "comment": .optional(r.managerComment)])] } ?? [])
                + (r.customerApprover.map { [APIJSON.object(["stage": .string("customer"), "approver": .string($0),
                                                             "comment": .optional(r.customerComment)])] } ?? [])),
        ])
    }

    func requests(_ query: [String: String]) throws -> String {
        let p = try APIParameters(query, allowed: ["state", "pageSize", "nextPage"])
        let states = [RequestState.pendingManager, .pendingCustomer, .approved, .active, .denied, .expired, .revoked,
                      .cancelled]
        let state = try p.oneOf("state", states.map(\.rawValue)).flatMap(RequestState.init(rawValue:))
        let pageSize = try p.int("pageSize", in: 1...100) ?? 50
        let before = try p.int("nextPage", in: 1...Int(Int32.max))
        let all = try gateway.lockbox.store.requests(RequestQuery(states: state.map { [$0] }, limit: 1000))
            .filter { scope.allows(scope: $0.scope) }
            .filter { r in before.map { r.id < Int64($0) } ?? true }
        var items: [String] = []
        var size = 64
        var last: Int64?
        var more = false
        for r in all {
            let item = requestJSON(r.redacted.view).text
            if items.count == pageSize || size + item.utf8.count + 1 > Self.budget {
                more = true
                break
            }
            items.append(item)
            size += item.utf8.count + 1
            last = r.id
        }
        var next = "null"
        if more, let last {
            var uri = "/api/v1/requests?pageSize=\(pageSize)&nextPage=\(last)"
            if let state { uri += "&state=\(HTML.urlComponent(state.rawValue))" }
            next = APIJSON.string(uri).text
        }
        return "{\"items\":[" + items.joined(separator: ",") + "],\"nextPageUri\":" + next + "}"
    }

    func request(_ idText: String, _ query: [String: String]) throws -> (Int, String) {
        _ = try APIParameters(query, allowed: [])
        guard idText.utf8.count <= 18, idText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let id = Int64(idText),
              let r = try gateway.lockbox.store.request(id: id), scope.allows(scope: r.scope) else {
            throw Self.notFound()
        }
        return (200, requestJSON(r.redacted.view).text)
    }

    // MARK: - Sessions

    private func withIndex<T>(_ body: (AuditIndex) throws -> T) throws -> T {
        try index.use { index in
            guard let index else {
                throw APIProblem(status: 503, code: "Unavailable", message: "the audit index is unavailable")
            }
            try index.catchUp()
            return try body(index)
        }
    }

    /// Sessions a tenant-scoped token may see: those with a command or event in one of its tenants.
    private func visibleSessions(_ index: AuditIndex) throws -> Set<String>? {
        if scope.all { return nil }
        var ids = Set<String>()
        for tenant in scope.tenants {
            var filter = AuditIndex.CommandFilter()
            filter.scope = tenant
            ids.formUnion(try index.commands(filter).compactMap(\.session))
        }
        return ids
    }

    func sessionJSON(_ s: AuditIndex.SessionRow) -> APIJSON {
        let hasTranscript = WebMonitorPaths.transcript(gateway, s.id).map { FileManager.default.fileExists(atPath: $0) } ?? false
        return .object([
            "id": .string(s.id), "user": .optional(s.user), "node": .optional(s.node), "client": .optional(s.client),
            "started": .date(s.started), "ended": .date(s.ended), "endReason": .optional(s.endReason),
            "commands": .int(Int64(s.commands)), "denied": .int(Int64(s.denied)),
            "transcriptUri": hasTranscript ? .string("/api/v1/sessions/\(s.id)/transcript") : .null,
        ])
    }

    func sessions(_ query: [String: String]) throws -> String {
        let p = try APIParameters(query, allowed: ["startTime", "endTime", "user", "pageSize", "nextPage"])
        var filter = AuditIndex.SessionFilter()
        filter.since = try p.date("startTime")
        filter.until = try p.date("endTime")
        filter.user = try p.string("user", maxLength: 64)
        let pageSize = try p.int("pageSize", in: 1...100) ?? 50
        let after = try p.int("nextPage", in: 0...Int(Int32.max)) ?? 0
        let rows = try withIndex { index -> [AuditIndex.SessionRow] in
            let visible = try visibleSessions(index)
            return try index.sessions(filter).filter { visible?.contains($0.id) ?? true }
        }
        var items: [String] = []
        var size = 64
        var more = false
        var position = after
        for row in rows.dropFirst(after) {
            let item = sessionJSON(row).text
            if items.count == pageSize || size + item.utf8.count + 1 > Self.budget {
                more = true
                break
            }
            items.append(item)
            size += item.utf8.count + 1
            position += 1
        }
        var next = "null"
        if more {
            var uri = "/api/v1/sessions?pageSize=\(pageSize)&nextPage=\(position)"
            for (key, value) in query.sorted(by: { $0.key < $1.key }) where key != "pageSize" && key != "nextPage" {
                uri += "&\(key)=\(HTML.urlComponent(value))"
            }
            next = APIJSON.string(uri).text
        }
        return "{\"items\":[" + items.joined(separator: ",") + "],\"nextPageUri\":" + next + "}"
    }

    private func visibleSession(_ id: String) throws -> AuditIndex.SessionRow {
        guard WebMonitor.validSessionID(id) else { throw Self.notFound() }
        let row = try withIndex { index -> AuditIndex.SessionRow? in
            guard let visible = try visibleSessions(index) else { return try index.session(id: id) }
            return visible.contains(id) ? try index.session(id: id) : nil
        }
        guard let row else { throw Self.notFound() }
        return row
    }

    func session(_ id: String, _ query: [String: String]) throws -> (Int, String) {
        _ = try APIParameters(query, allowed: [])
        return (200, sessionJSON(try visibleSession(id)).text)
    }

    /// One piece of the asciicast; the web process joins the pieces.
    func transcript(_ id: String, _ query: [String: String]) throws -> (Int, String) {
        let p = try APIParameters(query, allowed: ["offset"])
        let offset = try p.int("offset", in: 0...Int(Int32.max)) ?? 0
        _ = try visibleSession(id)
        guard let path = WebMonitorPaths.transcript(gateway, id), let handle = FileHandle(forReadingAtPath: path) else {
            throw Self.notFound()
        }
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(offset))
        let data = try handle.read(upToCount: WebWire.transcriptChunk) ?? Data()
        let next: APIJSON = data.count == WebWire.transcriptChunk ? .int(Int64(offset + data.count)) : .null
        return (200, APIJSON.object(["data": .string(data.base64EncodedString()), "next": next]))
    }
}

enum WebMonitorPaths {
    static func transcript(_ gateway: GatewayContext, _ id: String) -> String? {
        WebMonitor.validSessionID(id) ? gateway.configuration.transcriptDirectory + "/\(id).cast" : nil
    }
}
