import ConsoleCore
import Foundation
import PAMWorkers

/// One web sign-in in progress, between the thread that runs PAM (in a
/// worker process, through `SecondFactor.check`) and the web calls that
/// carry the person's answers. PAM's prompts become one HTML form each;
/// the answers come back with the next call. An abandoned conversation ends
/// at its deadline (the login grace time): PAM then fails and the worker is
/// returned.
// unchecked: every field is read and written with `condition` locked.
final class WebSignIn: @unchecked Sendable {
    enum Step: Equatable {
        case prompts([WebPrompt])
        case finished(success: Bool, notice: String?)
    }

    let user: String
    let source: String
    let deadline: Date
    private let condition = NSCondition()
    private var step: Step?
    private var answers: [String]?
    /// True while PAM waits for answers: only then may answers come.
    private var awaiting = false
    private var closed = false

    init(user: String, source: String, deadline: Date) {
        self.user = user
        self.source = source
        self.deadline = deadline
    }

    var isAwaitingAnswers: Bool { condition.withLock { awaiting && !closed } }

    // PAM's side.

    /// Shows `prompts` and waits for the answers; nil when the person gave
    /// up (deadline) or the conversation closed.
    func ask(_ prompts: [WebPrompt]) -> [String]? {
        condition.withLock {
            step = .prompts(prompts)
            awaiting = true
            condition.broadcast()
            while answers == nil && !closed {
                if !condition.wait(until: deadline) { closed = true }
            }
            awaiting = false
            defer { answers = nil }
            return closed ? nil : answers
        }
    }

    func finish(success: Bool, notice: String?) {
        condition.withLock {
            step = .finished(success: success, notice: notice)
            awaiting = false
            condition.broadcast()
        }
    }

    // The web call's side.

    /// Hands over the answers to the prompts shown; false when none were asked.
    func deliver(_ given: [String]) -> Bool {
        condition.withLock {
            guard awaiting, !closed, answers == nil else { return false }
            step = nil
            answers = given
            condition.broadcast()
            return true
        }
    }

    /// The next step PAM reached: prompts or the result (nil at the deadline).
    func nextStep() -> Step? {
        condition.withLock {
            while step == nil && !closed {
                if !condition.wait(until: deadline) { closed = true }
            }
            return step
        }
    }

    func close() {
        condition.withLock {
            closed = true
            condition.broadcast()
        }
    }
}

/// PAM's conversation, carried to the browser: prompts go out as a form,
/// info and error texts are shown with the next prompts.
final class WebPAMConversation: PAMConversation {
    let signIn: WebSignIn
    init(signIn: WebSignIn) { self.signIn = signIn }

    func converse(_ messages: [PAMMessage]) -> [String?]? {
        let prompts = messages.map { m -> WebPrompt in
            switch m.style {
            case .promptEchoOff: WebPrompt(style: .secret, text: m.text)
            case .promptEchoOn: WebPrompt(style: .visible, text: m.text)
            case .errorMessage: WebPrompt(style: .error, text: m.text)
            case .textInfo: WebPrompt(style: .info, text: m.text)
            }
        }
        let asking = prompts.filter { $0.style == .secret || $0.style == .visible }.count
        // Nothing to answer: PAM only said something; it is not shown on its own.
        guard asking > 0 else { return messages.map { _ in nil } }
        guard let given = signIn.ask(prompts), given.count == asking else { return nil }
        var next = given.makeIterator()
        return prompts.map { p in p.style == .secret || p.style == .visible ? next.next() : nil }
    }
}
