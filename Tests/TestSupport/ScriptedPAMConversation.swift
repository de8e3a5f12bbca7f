import PAMWorkers

/// A PAM conversation that answers from a script and records every message
/// PAM sent, so a test can check the prompts, their styles and the order.
///
/// Each prompt takes the next answer; a prompt with no answer left fails the
/// conversation (`PAM_CONV_ERR`), as a client that gave up would.
public final class ScriptedPAMConversation: PAMConversation {
    private var answers: [String]
    /// Every message PAM sent, in order, prompts and notices alike.
    public private(set) var messages: [PAMMessage] = []

    public init(answers: [String]) { self.answers = answers }

    public func converse(_ batch: [PAMMessage]) -> [String?]? {
        messages += batch
        var replies: [String?] = []
        for message in batch {
            guard message.style.isPrompt else { replies.append(nil); continue }
            guard !answers.isEmpty else { return nil }
            replies.append(answers.removeFirst())
        }
        return replies
    }
}
