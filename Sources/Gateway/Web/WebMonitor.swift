import ConsoleCore
import Foundation
import GatehouseCore
import Lockbox
import Logging
import Synchronization
import Transcript

/// The monitor's side of the web channel: answers `gatehouse-web`, which
/// holds no privilege and no store, judging each request against
/// `WebPermits` and the monitor's own session table before it acts.
/// Approvals go through the same `Lockbox` calls, rules and audit events as
/// the shell; PAM runs in the same worker pool as the SSH sign-in, with the
/// same lockouts. A refusal is audited as `monitor.refused` (channel web).
final class WebMonitor: Sendable {
    private let gateway: GatewayContext
    private let channel: SharedPacketChannel
    private let permits = Mutex(WebPermits())
    private let sessions: Mutex<WebSessionTable>
    private let signIns = Mutex([String: WebSignIn]())
    private let tokens: APITokenStore?
    private let index: IndexHolder
    /// Where the audit log's records start, for the activity API's pages.
    private let marks = AuditLogMarks()
    private let work = DispatchQueue(label: "gatehouse.web-monitor", attributes: .concurrent)
    private let secondFactor: SecondFactor.Check
    /// The port the web process listens on, once it said ready.
    let readyPort = Mutex<Int?>(nil)
    let readySignal = DispatchSemaphore(value: 0)
    let closed = DispatchSemaphore(value: 0)

    /// Sign-ins in progress at once, at most (each holds a PAM worker).
    static let maxSignIns = 32

    init(gateway: GatewayContext, channel: consuming PacketChannel, secondFactor: SecondFactor.Check? = nil) {
        self.gateway = gateway
        self.channel = SharedPacketChannel(channel)
        self.secondFactor = secondFactor ?? SecondFactor.pam(gateway.pamWorkers)
        let c = gateway.configuration
        sessions = Mutex(WebSessionTable(idleTimeout: TimeInterval(c.idleTimeoutSeconds),
                                         lifetime: TimeInterval(c.maxSessionLifetimeSeconds)))
        do {
            tokens = try APITokenStore(path: c.stateDirectory + "/" + APITokenStore.fileName)
        } catch {
            gateway.logger.error("API token store unavailable: every API call is refused", metadata: ["error": "\(error)"])
            tokens = nil
        }
        index = IndexHolder(try? AuditIndex(path: c.stateDirectory + "/audit-index.sqlite", logPath: c.auditLogPath))
    }

    func start() {
        let thread = Thread { [self] in serve() }
        thread.name = "gatehouse-web-monitor"
        thread.start()
    }

    private func serve() {
        while true {
            let bytes: [UInt8]
            do {
                switch try channel.receive(maxBytes: WebWire.maxMessageBytes, maxDescriptors: 0) {
                case .endOfStream:
                    signIns.withLock { all in
                        for s in all.values { s.close() }
                        all.removeAll()
                    }
                    closed.signal()
                    return
                case .packet(let packet): bytes = packet.bytes
                }
            } catch {
                refused(nil, "unreadable packet: \(error)")
                continue
            }
            guard let envelope = try? WebWire.decode(WebEnvelope<WebRequest>.self, from: bytes) else {
                refused(nil, "malformed request")
                continue
            }
            work.async { [self] in handle(envelope) }
        }
    }

    private func isReviewer(_ user: String) -> Bool {
        guard let name = UserName(user) else { return false }
        return gateway.snapshot.directory.user(named: name)?.groups.contains("reviewers") ?? false
    }

    private func handle(_ envelope: WebEnvelope<WebRequest>) {
        let now = gateway.clock.now()
        let verdict = sessions.withLock { table in
            permits.withLock { $0.judge(envelope.body, sessions: &table, now: now, isReviewer: isReviewer) }
        }
        switch verdict {
        case .refused(let reason):
            refused(envelope.body, reason)
            reply(envelope, .forbidden(reason))
        case .unauthenticated(let audit):
            if audit { refused(envelope.body, "no such web session") }
            reply(envelope, .unauthenticated)
        case .open:
            open(envelope)
        case .session(let entry):
            guard let user = UserName(entry.user) else { return reply(envelope, .unauthenticated) }
            answer(envelope, user: user, entry: entry)
        }
    }

    // MARK: - Sign-in, API, ready

    private func open(_ envelope: WebEnvelope<WebRequest>) {
        switch envelope.body {
        case .ready(let port):
            readyPort.withLock { $0 = port }
            readySignal.signal()
            reply(envelope, .done)
        case .signInStart(let name, let source):
            guard let user = UserName(name) else { return reply(envelope, .signInFailed("Sign-in failed.")) }
            let id = WebTokens.random()
            let signIn = WebSignIn(user: user.rawValue, source: String(source.prefix(64)),
                                   deadline: gateway.clock.now() + TimeInterval(gateway.configuration.loginGraceSeconds * 4))
            let admitted = signIns.withLock { all -> Bool in
                guard all.count < Self.maxSignIns else { return false }
                all[id] = signIn
                return true
            }
            guard admitted else { return reply(envelope, .signInFailed("Too many sign-ins in progress; try again.")) }
            Thread.detachNewThread { [self] in converse(user, id: id, signIn: signIn) }
            step(envelope, id: id, signIn: signIn)
        case .signInAnswers(let id, let answers):
            guard let signIn = signIns.withLock({ $0[id] }), answers.count <= 8,
                  answers.allSatisfy({ $0.utf8.count <= 1024 }), signIn.deliver(answers) else {
                refused(envelope.body, "answers with no sign-in waiting for them")
                return reply(envelope, .signInFailed("Sign-in failed."))
            }
            step(envelope, id: id, signIn: signIn)
        case .api(let token, let path, let query):
            guard let client = tokens?.validate(token) else {
                return reply(envelope, .api(status: 401, json: APIProblem(
                    status: 401, code: "Unauthorized", message: "a valid bearer token is required").json))
            }
            let (status, json) = ActivityAPI(gateway: gateway, index: index, marks: marks, scope: client.scope)
                .answer(path: path, query: query)
            guard recordAccess(user: nil, ["via": "api", "client": client.name, "path": path, "status": String(status),
                                           "query": query.sorted { $0.key < $1.key }
                                               .map { "\($0.key)=\($0.value)" }.joined(separator: "&")]) else {
                return reply(envelope, .api(status: 503, json: APIProblem(
                    status: 503, code: "AuditUnavailable", message: "the audit log is unavailable").json))
            }
            reply(envelope, .api(status: status, json: json))
        default:
            reply(envelope, .forbidden("not an open request"))
        }
    }

    /// Answers a sign-in call with PAM's next step.
    private func step(_ envelope: WebEnvelope<WebRequest>, id: String, signIn: WebSignIn) {
        switch signIn.nextStep() {
        case .prompts(let prompts):
            reply(envelope, .prompts(conversation: id, prompts))
        case .finished(let success, let notice):
            signIns.withLock { _ = $0.removeValue(forKey: id) }
            guard success, let user = UserName(signIn.user),
                  gateway.snapshot.directory.user(named: user) != nil else {
                return reply(envelope, .signInFailed(notice ?? "Sign-in failed."))
            }
            let (cookie, entry) = sessions.withLock { $0.create(user: user.rawValue, now: gateway.clock.now()) }
            reply(envelope, .signedIn(session: cookie, identity: WebIdentity(user: user.rawValue, csrf: entry.csrf,
                                                                              reviewer: isReviewer(user.rawValue))))
        case nil:
            signIns.withLock { _ = $0.removeValue(forKey: id) }
            signIn.close()
            reply(envelope, .signInFailed("The sign-in took too long; start again."))
        }
    }

    /// Runs the sign-in's PAM transaction (password, then TOTP) on its own
    /// thread: it blocks on the person's answers.
    private func converse(_ user: UserName, id: String, signIn: WebSignIn) {
        let outcome = SecondFactor.check(user, service: gateway.configuration.webPamService,
                                         remoteHost: PreAuthLimits.host(of: signIn.source), lockouts: gateway.lockouts,
                                         clock: gateway.clock, conversation: WebPAMConversation(signIn: signIn),
                                         pam: secondFactor)
        let inDirectory = gateway.snapshot.directory.user(named: user) != nil
        let success = outcome.success && inDirectory
        var fields = ["via": "web", "source": signIn.source, "method": "password+totp"]
        if !success { fields["reason"] = outcome.failure ?? "not in the directory" }
        try? gateway.audit.record(AuditEvent(time: gateway.clock.now(), kind: success ? .authSuccess : .authFailure,
                                             user: user.rawValue, fields: fields))
        if outcome.lockedOut {
            try? gateway.audit.record(AuditEvent(time: gateway.clock.now(), kind: .userLockout, user: user.rawValue,
                                                 fields: ["via": "web", "source": signIn.source,
                                                          "reason": "too many failed second factors"]))
        }
        signIn.finish(success: success, notice: outcome.notice)
    }

    // MARK: - In a web session

    private func answer(_ envelope: WebEnvelope<WebRequest>, user: UserName, entry: WebSessionTable.Entry) {
        if let read = Self.recordingRead(envelope.body), !recordAccess(user: user, read) {
            return reply(envelope, .failed(Self.unaudited))
        }
        let lockbox = gateway.lockbox
        switch envelope.body {
        case .whoAmI:
            reply(envelope, .identity(WebIdentity(user: user.rawValue, csrf: entry.csrf, reviewer: isReviewer(user.rawValue))))
        case .signOut(let cookie, _):
            sessions.withLock { $0.remove(cookie) }
            reply(envelope, .done)
        case .pending:
            do {
                reply(envelope, .requests(Self.fitting(try lockbox.pending(for: user).map(\.view), budget: Self.pageBudget).kept))
            } catch {
                reply(envelope, .failed("The Lockbox is unavailable."))
            }
        case .decide(_, _, let id, let approve, let comment):
            let text = comment.trimmingCharacters(in: .whitespacesAndNewlines)
            do {
                if approve {
                    let r = try lockbox.approve(id: id, by: user, comment: text.isEmpty ? nil : text)
                    reply(envelope, .decided(r.redacted.view, message: r.state == .approved
                        ? "Request \(id) is approved. \(r.requester) can now fetch the one-time credential."
                        : "Request \(id) approved at your stage; it now waits for the approver of \(r.scope)."))
                } else {
                    let r = try lockbox.deny(id: id, by: user, reason: text.isEmpty ? "denied in the console" : text)
                    reply(envelope, .decided(r.redacted.view, message: "Request \(id) is denied."))
                }
            } catch let error as LockboxError {
                reply(envelope, .lockboxRefused(error.message))
            } catch {
                reply(envelope, .failed("The Lockbox is unavailable; nothing was changed."))
            }
        case .search(_, let query):
            reply(envelope, search(query))
        case .sessionDetail(_, let id):
            reply(envelope, detail(id))
        case .transcript(_, let id, let offset):
            reply(envelope, transcript(id, offset: offset))
        case .verifyChain:
            reply(envelope, verifyChain())
        case .ready, .signInStart, .signInAnswers, .api:
            reply(envelope, .forbidden("not a session request"))
        }
    }

    /// `review.access`: who read recorded activity, and what they asked
    /// for. It only describes, so it waits for no sync; the values came from
    /// a browser or an API client, so each is cut to 512 bytes. False when
    /// the audit log did not take it: then nothing is read.
    private func recordAccess(user: UserName?, _ fields: [String: String]) -> Bool {
        let bounded = fields.mapValues { String(decoding: Array($0.utf8.prefix(512)), as: UTF8.self) }
        do {
            try gateway.audit.record(AuditEvent(time: gateway.clock.now(), kind: .recordingAccess,
                                                user: user?.rawValue, fields: bounded))
            return true
        } catch {
            gateway.logger.error("cannot audit a read of recorded activity", metadata: ["error": "\(error)"])
            return false
        }
    }

    static let unaudited = "The audit log is unavailable; nothing can be read until it is back."

    /// The `review.access` fields of a request that reads recorded activity;
    /// nil for any other. A replay reads its transcript in chunks: the first
    /// one is the access.
    static func recordingRead(_ request: WebRequest) -> [String: String]? {
        switch request {
        case .search(_, let query): ["via": "web", "what": "search", "query": describe(query)]
        case .sessionDetail(_, let id): ["via": "web", "what": "session", "session": id]
        case .transcript(_, let id, 0): ["via": "web", "what": "transcript", "session": id]
        case .verifyChain: ["via": "web", "what": "verify-chain"]
        default: nil
        }
    }

    /// A console search as one line: the filters that were set.
    static func describe(_ q: CommandQuery) -> String {
        let iso = ISO8601DateFormatter()
        let parts: [(String, String?)] = [
            ("user", q.user), ("cmdlet", q.cmdlet), ("parameter", q.parameter), ("scope", q.scope),
            ("request", q.requestID.map(String.init)), ("decision", q.decision),
            ("since", q.since.map(iso.string(from:))), ("until", q.until.map(iso.string(from:))),
        ]
        return parts.compactMap { name, value in value.map { "\(name)=\($0)" } }.joined(separator: "&")
    }

    private func withIndex<T>(_ body: (AuditIndex) throws -> T) -> T? {
        index.use { index in
            guard let index else { return nil }
            _ = try? index.catchUp()
            return try? body(index)
        }
    }

    private func search(_ q: CommandQuery) -> WebReply {
        var filter = AuditIndex.CommandFilter()
        filter.user = q.user
        filter.cmdlet = q.cmdlet
        filter.scope = q.scope
        filter.requestID = q.requestID
        filter.decision = q.decision
        filter.since = q.since
        filter.until = q.until
        if let p = q.parameter {
            guard let eq = p.firstIndex(of: "="), eq != p.startIndex else {
                return .failed("A parameter is searched as Name=Value.")
            }
            filter.parameters = [(String(p[..<eq]).trimmingCharacters(in: .whitespaces).trimmingCharacters(in: ["-"]),
                                  String(p[p.index(after: eq)...]))]
        }
        guard let rows = withIndex({ try $0.commands(filter) }) else { return .failed("The audit index is unavailable.") }
        let newest = Self.fitting(rows.suffix(WebWire.maxCommands).reversed().map(\.view), budget: Self.pageBudget)
        return .commands(CommandPage(commands: newest.kept, truncated: rows.count > WebWire.maxCommands || newest.cut))
    }

    /// What one reply's list may take of the channel's 64 KiB.
    static let pageBudget = 48 * 1024

    /// The leading items whose encodings fit in `budget` bytes, and whether any were left out.
    static func fitting<T: Encodable>(_ items: [T], budget: Int) -> (kept: [T], cut: Bool) {
        var size = 0
        for (i, item) in items.enumerated() {
            size += ((try? WebWire.encode(item))?.count ?? budget) + 1
            if size > budget { return (Array(items.prefix(i)), true) }
        }
        return (items, false)
    }

    static func validSessionID(_ id: String) -> Bool {
        (1...64).contains(id.utf8.count) && id.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x2d || c == 0x5f
        }
    }

    func transcriptPath(_ id: String) -> String? {
        Self.validSessionID(id) ? gateway.configuration.transcriptDirectory + "/\(id).cast" : nil
    }

    private func detail(_ id: String) -> WebReply {
        guard Self.validSessionID(id) else { return .notFound }
        let found = withIndex { index -> (AuditIndex.SessionRow?, [AuditIndex.CommandRow], [AuditIndex.EventRow]) in
            var filter = AuditIndex.CommandFilter()
            filter.session = id
            return (try index.session(id: id), try index.commands(filter), try index.otherEvents(session: id))
        }
        guard let (row, commands, events) = found, let row else { return .notFound }
        let windows = Self.windows(events)
        let requests = Set(windows.map(\.requestID) + commands.compactMap(\.requestID))
        let approvals = requests.sorted().compactMap { try? gateway.lockbox.store.request(id: $0)?.redacted.view }
        let hasTranscript = transcriptPath(id).map { FileManager.default.fileExists(atPath: $0) } ?? false
        // The newest commands that fit keep the reply under the channel's limit
        // (a long session's full list is in the API and `gatehouse sessions show`).
        let shown = Self.fitting(commands.reversed().map(\.view), budget: Self.pageBudget / 2).kept.reversed()
        return .session(SessionDetail(id: row.id, user: row.user, client: row.client, node: row.node,
                                      started: row.started, ended: row.ended, endReason: row.endReason,
                                      commands: Array(shown), elevations: Array(windows.suffix(50)),
                                      approvals: Self.fitting(approvals, budget: Self.pageBudget / 4).kept,
                                      hasTranscript: hasTranscript))
    }

    /// Elevation windows: each `elevation.start` to the `elevation.end` of the same request.
    static func windows(_ events: [AuditIndex.EventRow]) -> [ElevationWindow] {
        var windows: [ElevationWindow] = []
        for e in events {
            guard let request = e.requestID else { continue }
            switch e.kind {
            case "elevation.start":
                windows.append(ElevationWindow(requestID: request, role: e.fields["role"], scope: e.fields["scope"],
                                               start: e.time, end: nil, endReason: nil))
            case "elevation.end", "lockbox.revoked", "lockbox.expired":
                if let i = windows.lastIndex(where: { $0.requestID == request && $0.end == nil }) {
                    windows[i].end = e.time
                    windows[i].endReason = e.fields["reason"] ?? e.kind
                }
            default: break
            }
        }
        return windows
    }

    private func transcript(_ id: String, offset: Int) -> WebReply {
        guard offset >= 0, let path = transcriptPath(id), let handle = FileHandle(forReadingAtPath: path) else {
            return .notFound
        }
        defer { try? handle.close() }
        do {
            try handle.seek(toOffset: UInt64(offset))
            let data = try handle.read(upToCount: WebWire.transcriptChunk) ?? Data()
            let next = data.count == WebWire.transcriptChunk ? offset + data.count : nil
            return .transcriptChunk(base64: data.base64EncodedString(), next: next)
        } catch {
            return .failed("The transcript cannot be read.")
        }
    }

    private func verifyChain() -> WebReply {
        let c = gateway.configuration
        let keyPath = c.stateDirectory + "/" + AuditSigningKey.publicFileName
        let key = try? AuditSigningKey.readPublicKey(path: keyPath)
        do {
            let report = try AuditLogVerifier(logPath: c.auditLogPath, publicKey: key).verify()
            if let problem = report.problem {
                return .chain(ok: false, summary: "FAILED at seq \(problem.seq): \(problem.description). "
                              + "Events before it verified: \(report.events) (through seq \(report.lastSeq)).")
            }
            var summary = "OK: \(report.events) events, chain intact through seq \(report.lastSeq); "
                + "\(report.checkpoints) checkpoint(s)"
            if key != nil {
                summary += ", signatures valid, signed through seq \(report.signedThrough)"
                if report.unsignedTail > 0 { summary += "; \(report.unsignedTail) event(s) after the last checkpoint are chained but not yet signed" }
            } else {
                summary += "; no public key: signatures were not checked"
            }
            return .chain(ok: true, summary: summary)
        } catch {
            return .chain(ok: false, summary: "The audit log cannot be verified: \(error)")
        }
    }

    // MARK: - Channel

    private func reply(_ envelope: WebEnvelope<WebRequest>, _ body: WebReply) {
        do {
            var bytes = try WebWire.encode(WebEnvelope(call: envelope.call, body: body))
            if bytes.count > WebWire.maxMessageBytes {
                gateway.logger.error("web reply too large", metadata: ["bytes": "\(bytes.count)", "request": "\(envelope.body.name)"])
                bytes = try WebWire.encode(WebEnvelope(call: envelope.call, body: WebReply.failed("The answer is too large.")))
            }
            try channel.send(bytes)
        } catch {
            gateway.logger.error("web reply failed", metadata: ["error": "\(error)"])
        }
    }

    private func refused(_ request: WebRequest?, _ reason: String) {
        gateway.logger.warning("monitor refused a web request", metadata: ["reason": "\(reason)"])
        var fields = ["reason": reason, "channel": "web"]
        if let request { fields["request"] = request.name }
        try? gateway.audit.record(AuditEvent(time: gateway.clock.now(), kind: .monitorRefused, fields: fields))
    }
}

/// The review index, one user at a time (its catch-up writes).
// unchecked: `index` (a non-Sendable GRDB-backed class) is touched only inside `use`, with `lock` held.
final class IndexHolder: @unchecked Sendable {
    private let lock = NSLock()
    private let index: AuditIndex?
    init(_ index: AuditIndex?) { self.index = index }

    func use<T>(_ body: (AuditIndex?) throws -> T) rethrows -> T {
        try lock.withLock { try body(index) }
    }
}

extension LockboxRequest {
    /// The console's and the API's view (never the secret).
    var view: RequestView {
        let stage: String
        switch state {
        case .pendingManager: stage = "manager"
        case .pendingCustomer: stage = "customer"
        default: stage = state.rawValue
        }
        return RequestView(id: id, state: state.rawValue, requester: requester.rawValue, role: role, scope: scope,
                           durationSeconds: durationSeconds, reason: reason, ticket: ticket, stage: stage,
                           managerApprover: managerApprover?.rawValue, managerComment: managerComment,
                           customerApprover: customerApprover?.rawValue, customerComment: customerComment,
                           createdAt: createdAt, activatedAt: activatedAt, deadline: deadline,
                           session: session?.rawValue, endReason: endReason)
    }
}

extension AuditIndex.CommandRow {
    var view: CommandView {
        CommandView(seq: seq, session: session, user: user, time: time, cmdlet: cmdlet, line: line, decision: decision,
                    role: role, reason: reason, scope: scope, requestID: requestID, exitStatus: exitStatus)
    }
}
