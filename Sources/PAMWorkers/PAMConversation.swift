/// How PAM wants a message shown; mirrors `PAM_PROMPT_ECHO_OFF`,
/// `PAM_PROMPT_ECHO_ON`, `PAM_ERROR_MSG` and `PAM_TEXT_INFO`.
public enum PAMMessageStyle: Sendable, Equatable {
    case promptEchoOff, promptEchoOn, errorMessage, textInfo

    /// True for the two styles that expect an answer.
    public var isPrompt: Bool { self == .promptEchoOff || self == .promptEchoOn }
}

/// One `struct pam_message`, copied into Swift.
public struct PAMMessage: Sendable, Equatable {
    public let style: PAMMessageStyle
    public let text: String
    public init(style: PAMMessageStyle, text: String) {
        self.style = style
        self.text = text
    }
}

/// The Swift side of a PAM conversation function.
///
/// The C trampoline in `PAMTransaction` converts PAM's messages, calls this
/// and converts the replies back into `calloc`/`strdup` memory that PAM frees.
/// Implementations run on the thread that called `pam_authenticate`; they may
/// block (for example waiting for an SSH client), which is why PAM must never
/// run on Swift's cooperative pool.
public protocol PAMConversation: AnyObject {
    /// One PAM conversation call. Return exactly one reply per message (nil for
    /// non-prompts), or nil to fail the conversation (`PAM_CONV_ERR`).
    func converse(_ messages: [PAMMessage]) -> [String?]?
}
