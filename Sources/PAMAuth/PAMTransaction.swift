import CPAM
import Glibc
import PAMWorkers

/// One PAM transaction: `pam_start`, `pam_authenticate`, `pam_acct_mgmt`,
/// `pam_end`.
///
/// A `pam_handle_t` has exactly one owner and is not thread-safe, so this class
/// must stay on the thread that created it; that is made visible by the
/// unavailable `Sendable` conformance below. Call `end()` when done so that
/// `pam_end` receives the last status; `deinit` only calls it as a safety net.
public final class PAMTransaction {
    private var handle: OpaquePointer?
    private var lastStatus: Int32 = PAM_SUCCESS
    /// The `pam_conv` PAM keeps a pointer to; it is freed (once, by its own
    /// deinit) after this transaction's `pam_end`.
    private let binding: ConversationBinding
    /// `PAMModulePins.loadCount()` before `pam_start`: whether this
    /// transaction loaded modules that should stay loaded.
    private let loadCountAtStart: UInt64

    /// Starts a transaction for `user` against `/etc/pam.d/<service>`
    /// (`pam_start`) and, when given, sets `PAM_RHOST` to `remoteHost`
    /// (`pam_set_item`), which modules log and some judge (pam_access).
    /// Throws `PAMError` if PAM cannot load the stack.
    public init(service: String, user: String, remoteHost: String? = nil, conversation: PAMConversation) throws {
        binding = ConversationBinding(conversation)
        loadCountAtStart = PAMModulePins.loadCount()
        var h: OpaquePointer?
        var rc = pam_start(service, user, binding.conv, &h)
        var operation = "pam_start"
        if rc == PAM_SUCCESS, let h, let remoteHost {
            rc = pam_set_item(h, PAM_RHOST, remoteHost)
            operation = "pam_set_item"
        }
        guard rc == PAM_SUCCESS, let h else {
            // Only the handle is released here; `binding` is released with
            // this object, which Swift deinitialises even though init throws.
            let message = h.map { String(cString: pam_strerror($0, rc)) } ?? "pam_start failed"
            if let h { pam_end(h, rc) }
            throw PAMError(code: rc, message: message, operation: operation)
        }
        handle = h
    }

    deinit {
        end()
    }

    /// `pam_authenticate(handle, 0)`: runs the stack's `auth` modules, which
    /// talk to the user through the conversation. Throws on any result but
    /// `PAM_SUCCESS`.
    public func authenticate() throws {
        try check(pam_authenticate(try live(), 0), "pam_authenticate")
    }

    /// `pam_acct_mgmt(handle, 0)`: is the account allowed in now (expiry,
    /// time, access lists)? Required after `authenticate` succeeds.
    public func accountManagement() throws {
        try check(pam_acct_mgmt(try live(), 0), "pam_acct_mgmt")
    }

    /// `pam_end` with the last status. Idempotent.
    public func end() {
        guard let h = handle else { return }
        handle = nil
        PAMModulePins.pinNewlyLoaded(since: loadCountAtStart)
        pam_end(h, lastStatus)
    }

    private func live() throws -> OpaquePointer {
        guard let h = handle else {
            throw PAMError(code: PAMError.systemError, message: "transaction already ended")
        }
        return h
    }

    private func check(_ rc: Int32, _ operation: String) throws {
        lastStatus = rc
        guard rc == PAM_SUCCESS else {
            let text = handle.map { String(cString: pam_strerror($0, rc)) } ?? "PAM error"
            throw PAMError(code: rc, message: text, operation: operation)
        }
    }
}

@available(*, unavailable)
extension PAMTransaction: Sendable {}

/// Owns the heap `pam_conv` that PAM keeps a pointer to from `pam_start` to
/// `pam_end`, and the conversation its `appdata_ptr` points at (this
/// object's stable address). Allocated and freed in one place, so that no
/// path can free it twice.
final class ConversationBinding {
    let conversation: PAMConversation
    let conv: UnsafeMutablePointer<pam_conv>

    init(_ conversation: PAMConversation) {
        self.conversation = conversation
        conv = .allocate(capacity: 1)
        conv.initialize(to: pam_conv(conv: pamConversationTrampoline, appdata_ptr: nil))
        conv.pointee.appdata_ptr = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        conv.deinitialize(count: 1)
        conv.deallocate()
    }
}

/// Frees the first `count` replies in `replies` (and their strings) and the array itself.
private func freeReplies(_ replies: UnsafeMutablePointer<pam_response>, count: Int) {
    for i in 0..<count {
        if let r = replies[i].resp {
            // Wipe before freeing: these may be passwords or codes.
            explicit_bzero(r, strlen(r))
            free(r)
        }
    }
    free(replies)
}

/// The C conversation function. No Swift error crosses into C: every failure
/// becomes `PAM_CONV_ERR` with all partial replies freed (OpenSSH `auth-pam.c`
/// shape).
private let pamConversationTrampoline: @convention(c) (
    Int32,
    UnsafeMutablePointer<UnsafePointer<pam_message>?>?,
    UnsafeMutablePointer<UnsafeMutablePointer<pam_response>?>?,
    UnsafeMutableRawPointer?
) -> Int32 = { numMsg, msg, resp, appdata in
    guard numMsg > 0, numMsg <= PAM_MAX_NUM_MSG, let msg, let resp, let appdata else {
        return PAM_CONV_ERR
    }
    resp.pointee = nil
    let count = Int(numMsg)
    var messages: [PAMMessage] = []
    messages.reserveCapacity(count)
    for i in 0..<count {
        // Linux-PAM passes an array of pointers (`msg[i]`), not a pointer to an array.
        guard let m = msg[i] else { return PAM_CONV_ERR }
        let style: PAMMessageStyle
        switch m.pointee.msg_style {
        case PAM_PROMPT_ECHO_OFF: style = .promptEchoOff
        case PAM_PROMPT_ECHO_ON: style = .promptEchoOn
        case PAM_ERROR_MSG: style = .errorMessage
        case PAM_TEXT_INFO: style = .textInfo
        default: return PAM_CONV_ERR
        }
        let text = m.pointee.msg.map { String(cString: $0) } ?? ""
        messages.append(PAMMessage(style: style, text: text))
    }
    let binding = Unmanaged<ConversationBinding>.fromOpaque(appdata).takeUnretainedValue()
    guard let answers = binding.conversation.converse(messages), answers.count == count else {
        return PAM_CONV_ERR
    }
    guard let replies = calloc(count, MemoryLayout<pam_response>.stride)?
        .bindMemory(to: pam_response.self, capacity: count) else {
        return PAM_BUF_ERR
    }
    for i in 0..<count {
        replies[i].resp_retcode = 0
        guard messages[i].style.isPrompt else { replies[i].resp = nil; continue }
        guard let answer = answers[i], answer.utf8.count <= PAM_MAX_RESP_SIZE,
              let dup = strdup(answer) else {
            freeReplies(replies, count: i)
            return PAM_CONV_ERR
        }
        replies[i].resp = dup
    }
    resp.pointee = replies
    return PAM_SUCCESS
}
