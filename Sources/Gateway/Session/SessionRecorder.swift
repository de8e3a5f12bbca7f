import Foundation
import GatehouseCore
import Transcript

/// The session's recording: its asciicast transcript, opened when the first
/// shell or exec channel starts (that is when the terminal size is known)
/// and closed with the session's end reason. One file per session:
/// `<transcriptDirectory>/<session id>.cast`.
///
/// Recording fails closed like the audit log: if the transcript cannot be
/// created or a write fails, `unrecordable` says so and the session ends.
final class SessionRecorder {
    private var writer: AsciicastWriter?
    private(set) var openFailure: String?
    /// The transcript's failure was reported (once per session).
    private var failureReported = false

    var path: String? { writer?.path }

    /// What can no longer record this session, in words for the user, or
    /// nil: the audit log, or the transcript (it could not be created, or a
    /// write failed). The transcript's first failure goes to `report` once,
    /// to be logged and audited.
    func unrecordable(auditFailed: Bool, report: (String) -> Void) -> String? {
        if auditFailed { return "The audit log is unavailable" }
        guard let failure = transcriptFailure else { return nil }
        if !failureReported {
            failureReported = true
            report(failure)
        }
        return "Session recording is unavailable"
    }

    /// Why the transcript can no longer be written, or nil while it can.
    var transcriptFailure: String? {
        if let openFailure { return "cannot create the transcript: \(openFailure)" }
        if let writer, let errno = writer.failureErrno {
            return "transcript write failed: \(String(cString: strerror(errno)))"
        }
        return nil
    }

    /// Opens the file unless it is already open (a second channel shares it).
    /// `create` makes the empty file at `path` (the session's privileges).
    func open(creating create: () throws -> OwnedFileDescriptor, path: String, session: SessionID, user: UserName,
              node: String, client: String, balancer: String? = nil, claim: AccessClaim, term: String?, columns: Int, rows: Int, channel: String, command: String?) {
        guard writer == nil, openFailure == nil else { return }
        let claimJSON: [JSONValue] = claim.grants.map { grant in
            var o: [String: JSONValue] = ["role": .string(grant.role)]
            if let scope = grant.scope { o["scope"] = .string(scope) }
            if let expires = grant.expires { o["expires"] = .string(AuditTime.format(expires)) }
            switch grant.source {
            case .baseline: o["source"] = .string("baseline")
            case .elevation(let id): o["source"] = .string("elevation"); o["requestID"] = .int(Int(id))
            }
            return .object(o)
        }
        var gatehouse: [String: JSONValue] = [
            "user": .string(user.rawValue), "session": .string(session.rawValue), "node": .string(node),
            "client": .string(client), "start": .string(AuditTime.format(claim.issuedAt)),
            "claim": .array(claimJSON), "channel": .string(channel),
        ]
        if let balancer { gatehouse["balancer"] = .string(balancer) }
        if let command { gatehouse["command"] = .string(TerminalText.sanitize(command, keepLineBreaks: false)) }
        let header = AsciicastWriter.Header(width: columns, height: rows, start: claim.issuedAt, term: term,
                                            title: "gatehouse \(user)@\(node) session \(session)", gatehouse: gatehouse)
        do {
            writer = try AsciicastWriter(file: try create(), path: path, header: header)
        } catch {
            openFailure = "\(error)"
        }
    }

    func output(_ bytes: [UInt8]) { writer?.recordOutput(bytes) }
    func input(_ bytes: [UInt8]) { writer?.recordInput(bytes, redacted: false) }
    /// Typed at the secret prompt: only a redaction marker is recorded. The
    /// typed bytes never come here; the writer needs some non-empty input
    /// to mark, and a redacted input's content is never written.
    func hiddenInput() { writer?.recordInput([0x2a], redacted: true) }
    func resize(columns: Int, rows: Int) { writer?.recordResize(columns: columns, rows: rows) }
    /// A reviewer-visible note where something was deliberately not recorded.
    func marker(_ label: String) { writer?.recordMarker(label) }
    /// Command boundaries flush, so a reviewer sees every finished command.
    func flush() { writer?.flush() }
    func close(reason: String) { writer?.close(reason: reason) }
}
