import ConsoleCore
import Foundation
import GatehouseCore

/// The console's pages, built with `HTML` (every interpolated string
/// escaped). No inline script or style: the CSP forbids both, and the
/// pages need neither (console.js only starts the transcript player).
enum Pages {
    static func layout(_ title: String, identity: WebIdentity?, message: HTML? = nil, _ body: HTML) -> String {
        let nav: HTML
        if let identity {
            let review: HTML = identity.reviewer
                ? "<a href=\"/review\" id=\"nav-review\">Review</a> <a href=\"/audit/verify\" id=\"nav-verify\">Audit chain</a>" : ""
            nav = """
            <nav><a href="/queue" id="nav-queue">Approvals</a> \(review)
            <span class="who">Signed in as <b id="whoami">\(identity.user)</b></span>
            <form method="post" action="/signout" class="inline"><input type="hidden" name="csrf" value="\(identity.csrf)">
            <button type="submit" id="signout">Sign out</button></form></nav>
            """
        } else {
            nav = ""
        }
        let page: HTML = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>\(title) · Gatehouse</title>
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <link rel="stylesheet" href="/static/console.css">
        <link rel="stylesheet" href="/static/asciinema-player.css">
        <script src="/static/asciinema-player.min.js" defer></script>
        <script src="/static/console.js" defer></script>
        </head><body><header><h1>Gatehouse console</h1>\(nav)</header>
        <main><h2>\(title)</h2>\(message ?? "")\(body)</main></body></html>
        """
        return page.rendered
    }

    static func notice(_ text: String, kind: String = "info") -> HTML {
        "<p class=\"notice \(kind)\" id=\"notice\">\(text)</p>"
    }

    // MARK: - Sign-in

    static func signIn(pre: String, error: String? = nil) -> String {
        layout("Sign in", identity: nil, message: error.map { notice($0, kind: "error") }, """
        <form method="post" action="/signin" id="signin-form">
        <input type="hidden" name="csrf" value="\(pre)">
        <label>User name <input type="text" name="user" id="user" autocomplete="username" required maxlength="64"></label>
        <button type="submit" id="next">Next</button>
        </form>
        <p>Your password comes next, then the one-time code from your authenticator (TOTP).</p>
        """)
    }

    static func prompts(_ prompts: [WebPrompt], pre: String) -> String {
        var fields: [HTML] = []
        var n = 0
        for p in prompts {
            switch p.style {
            case .info: fields.append("<p class=\"notice info\">\(p.text)</p>")
            case .error: fields.append("<p class=\"notice error\">\(p.text)</p>")
            case .secret, .visible:
                let type = p.style == .secret ? "password" : "text"
                fields.append("""
                <label>\(p.text.trimmingCharacters(in: .whitespaces)) <input type="\(type)" name="answer" id="answer-\(n)" autocomplete="off" required maxlength="1024"></label>
                """)
                n += 1
            }
        }
        return layout("Sign in", identity: nil, """
        <form method="post" action="/signin/step" id="step-form">
        <input type="hidden" name="csrf" value="\(pre)">
        \(fields)
        <button type="submit" id="next">Next</button>
        </form>
        """)
    }

    // MARK: - Approvals

    static func duration(_ seconds: Int) -> String {
        if seconds % 3600 == 0 { return "\(seconds / 3600)h" }
        if seconds % 60 == 0 { return "\(seconds / 60)m" }
        return "\(seconds)s"
    }

    static func date(_ d: Date?) -> String {
        guard let d else { return "-" }
        return APIParameters.format(d)
    }

    static func queue(_ requests: [RequestView], identity: WebIdentity, message: HTML? = nil) -> String {
        guard !requests.isEmpty else {
            return layout("Approvals", identity: identity, message: message,
                          "<p id=\"empty-queue\">No requests are waiting for your approval.</p>")
        }
        let rows: [HTML] = requests.map { r in
            """
            <tr id="request-\(r.id)"><td>\(r.id)</td><td class="requester">\(r.requester)</td><td>\(r.role)</td>
            <td class="scope">\(r.scope)</td><td>\(duration(r.durationSeconds))</td><td class="reason">\(r.reason)</td>
            <td class="ticket">\(r.ticket ?? "-")</td><td class="stage">\(r.stage)\(r.managerApprover.map { " (manager: \($0))" } ?? "")</td>
            <td>\(date(r.createdAt))</td>
            <td><form method="post" action="/requests/\(r.id)/decide" class="decide">
            <input type="hidden" name="csrf" value="\(identity.csrf)">
            <input type="text" name="comment" id="comment-\(r.id)" maxlength="500" placeholder="Comment">
            <button type="submit" name="action" value="approve" id="approve-\(r.id)">Approve</button>
            <button type="submit" name="action" value="deny" id="deny-\(r.id)">Deny</button>
            </form></td></tr>
            """
        }
        return layout("Approvals", identity: identity, message: message, """
        <p>Requests waiting for your approval at their current stage.</p>
        <table id="queue"><thead><tr><th>Id</th><th>Requester</th><th>Role</th><th>Scope</th><th>Duration</th>
        <th>Reason</th><th>Ticket</th><th>Stage</th><th>Filed</th><th>Decision</th></tr></thead>
        <tbody>\(rows)</tbody></table>
        """)
    }

    // MARK: - Review

    struct SearchForm {
        var user = "", cmdlet = "", parameter = "", scope = "", request = "", decision = "", since = "", until = ""
    }

    static func review(_ form: SearchForm, page: CommandPage?, identity: WebIdentity, error: String? = nil) -> String {
        func field(_ name: String, _ label: String, _ value: String, _ hint: String = "") -> HTML {
            "<label>\(label) <input type=\"text\" name=\"\(name)\" id=\"q-\(name)\" value=\"\(value)\" placeholder=\"\(hint)\" maxlength=\"256\"></label>"
        }
        var results: HTML = ""
        if let page {
            let rows: [HTML] = page.commands.map { c in
                let session: HTML = c.session.map { "<a href=\"/sessions/\(HTML.urlComponent($0))\" class=\"session-link\">\($0)</a>" } ?? "-"
                return """
                <tr class="result"><td>\(date(c.time))</td><td class="user">\(c.user ?? "-")</td><td class="cmdlet">\(c.cmdlet ?? "-")</td>
                <td class="line"><code>\(c.line ?? "")</code></td><td class="decision">\(c.decision)</td><td>\(c.role ?? "-")</td>
                <td class="scope">\(c.scope ?? "-")</td><td>\(c.requestID.map(String.init) ?? "-")</td><td>\(session)</td></tr>
                """
            }
            results = """
            <p id="result-count">\(page.commands.count) command(s)\(page.truncated ? " (the newest \(WebWire.maxCommands); narrow the search)" : "")</p>
            <table id="results"><thead><tr><th>Time</th><th>User</th><th>Cmdlet</th><th>Line</th><th>Decision</th><th>Role</th>
            <th>Scope</th><th>Request</th><th>Session</th></tr></thead><tbody>\(rows)</tbody></table>
            """
        }
        return layout("Review", identity: identity, message: error.map { notice($0, kind: "error") }, """
        <form method="get" action="/review" id="search-form" class="search">
        \(field("user", "User", form.user)) \(field("cmdlet", "Cmdlet", form.cmdlet, "Set-Mailbox"))
        \(field("parameter", "Parameter", form.parameter, "Identity=alice")) \(field("scope", "Scope", form.scope, "contoso"))
        \(field("request", "Request", form.request, "id")) \(field("decision", "Decision", form.decision, "allow or deny"))
        \(field("since", "From", form.since, "2026-12-06T10:00:00Z")) \(field("until", "To", form.until, "2026-12-06T18:00:00Z"))
        <button type="submit" id="search">Search</button>
        </form>
        \(results)
        """)
    }

    static func session(_ s: SessionDetail, transcriptText: String?, identity: WebIdentity) -> String {
        let windows: [HTML] = s.elevations.map { w in
            "<tr class=\"elevation\"><td>\(w.requestID)</td><td>\(w.role ?? "-")</td><td>\(w.scope ?? "-")</td><td>\(date(w.start))</td><td>\(date(w.end))</td><td>\(w.endReason ?? "-")</td></tr>"
        }
        let approvals: [HTML] = s.approvals.map { r in
            """
            <tr class="approval" id="approval-\(r.id)"><td>\(r.id)</td><td>\(r.requester)</td><td>\(r.role)</td><td>\(r.scope)</td>
            <td class="reason">\(r.reason)</td><td class="ticket">\(r.ticket ?? "-")</td>
            <td class="manager-approver">\(r.managerApprover ?? "-")\(r.managerComment.map { ": \($0)" } ?? "")</td>
            <td class="customer-approver">\(r.customerApprover ?? "-")\(r.customerComment.map { ": \($0)" } ?? "")</td><td>\(r.state)</td></tr>
            """
        }
        let commands: [HTML] = s.commands.map { c in
            "<tr class=\"command\"><td>\(date(c.time))</td><td class=\"cmdlet\">\(c.cmdlet ?? "-")</td><td><code>\(c.line ?? "")</code></td><td>\(c.decision)</td><td>\(c.role ?? "-")</td><td>\(c.scope ?? "-")</td><td>\(c.requestID.map(String.init) ?? "-")</td><td>\(c.exitStatus.map(String.init) ?? "-")</td></tr>"
        }
        let transcript: HTML
        if s.hasTranscript {
            transcript = """
            <h3>Transcript</h3>
            <div id="player" data-cast="/sessions/\(HTML.urlComponent(s.id))/cast"></div>
            <details open><summary>Output as text (escaped; control sequences shown, never run)</summary>
            <pre id="transcript-text">\(transcriptText ?? "(unavailable)")</pre></details>
            """
        } else {
            transcript = "<p id=\"no-transcript\">No transcript was recorded for this session.</p>"
        }
        return layout("Session \(s.id)", identity: identity, """
        <dl class="meta"><dt>User</dt><dd id="session-user">\(s.user ?? "-")</dd><dt>Client</dt><dd>\(s.client ?? "-")</dd>
        <dt>Node</dt><dd>\(s.node ?? "-")</dd><dt>Started</dt><dd>\(date(s.started))</dd><dt>Ended</dt><dd>\(date(s.ended)) \(s.endReason ?? "")</dd></dl>
        <h3>Elevation windows</h3>
        <table id="elevations"><thead><tr><th>Request</th><th>Role</th><th>Scope</th><th>From</th><th>To</th><th>End</th></tr></thead><tbody>\(windows)</tbody></table>
        <h3>Approvals behind them</h3>
        <table id="approvals"><thead><tr><th>Request</th><th>Requester</th><th>Role</th><th>Scope</th><th>Reason</th><th>Ticket</th><th>Manager</th><th>Customer</th><th>State</th></tr></thead><tbody>\(approvals)</tbody></table>
        <h3>Commands</h3>
        <table id="commands"><thead><tr><th>Time</th><th>Cmdlet</th><th>Line</th><th>Decision</th><th>Role</th><th>Scope</th><th>Request</th><th>Exit</th></tr></thead><tbody>\(commands)</tbody></table>
        \(transcript)
        """)
    }

    static func chain(ok: Bool, summary: String, identity: WebIdentity) -> String {
        layout("Audit chain", identity: identity, """
        <p id="chain-result" class="\(ok ? "ok" : "failed")">\(summary)</p>
        """)
    }

    static func problem(_ title: String, _ text: String, identity: WebIdentity?) -> String {
        layout(title, identity: identity, notice(text, kind: "error"))
    }

    /// The output of an asciicast as plain text: output events joined,
    /// control characters made visible by the escaping of `HTML`, and the
    /// common escape sequences (colours, cursor moves) dropped first.
    static func transcriptText(_ cast: Data, limit: Int = 256 * 1024) -> String {
        var out = ""
        for line in cast.split(separator: 0x0a).dropFirst() {
            guard let event = try? JSONSerialization.jsonObject(with: Data(line)) as? [Any], event.count >= 3,
                  let type = event[1] as? String, type == "o",
                  let text = event[2] as? String else { continue }
            out += stripCSI(text)
            if out.utf8.count > limit { return String(out.prefix(limit)) + "\n[… cut: see the player]" }
        }
        return out.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "")
    }

    /// Drops ESC [ … final-byte sequences (CSI); any other control byte is left to the escaping.
    static func stripCSI(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        var scalars = text.unicodeScalars.makeIterator()
        while let s = scalars.next() {
            if s == "\u{1b}" {
                guard let n = scalars.next() else { break }
                if n == "[" {
                    while let c = scalars.next(), !(0x40...0x7e).contains(c.value) {}
                    continue
                }
                out.append(s)
                out.append(n)
                continue
            }
            out.append(s)
        }
        return String(out)
    }
}
