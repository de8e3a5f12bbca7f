// pam-conversation-helper: one PAM transaction with a scripted conversation,
// run by PAMAuthTests under pam_wrapper (which must be preloaded at process
// start, hence a process of its own).
//
//   pam-conversation-helper SERVICE USER [ANSWER...]
//
// Prints one line per message PAM sent, `message STYLE TEXT`, then
// `result success` or `result error CODE OPERATION`, and exits 0. A crash
// (a double free in a failed pam_start, say) shows as a signal instead.
import Foundation
import PAMAuth
import PAMWorkers
import TestSupport

let args = CommandLine.arguments
guard args.count >= 3 else {
    print("usage: pam-conversation-helper SERVICE USER [ANSWER...]")
    exit(2)
}
let conversation = ScriptedPAMConversation(answers: Array(args.dropFirst(3)))
var outcome: String
do {
    let transaction = try PAMTransaction(service: args[1], user: args[2], conversation: conversation)
    defer { transaction.end() }
    try transaction.authenticate()
    try transaction.accountManagement()
    outcome = "result success"
} catch let error as PAMError {
    outcome = "result error \(error.code) \(error.operation)"
} catch {
    outcome = "result unexpected \(error)"
}
for message in conversation.messages {
    print("message \(message.style) \(message.text)")
}
print(outcome)
