import CmdletShell
import GatehouseCore
import SSHServer

/// One session channel as the user sees it: the pty (if any), the line
/// editor that turns typed bytes into line events and their echo, the
/// hidden secret prompt of `Enter-Elevation`, and output made fit for the
/// terminal. It decides nothing: what a line does is `SessionRunner`'s.
final class ShellChannel {
    let channel: SSHChannel
    var pty: (term: String, columns: Int, rows: Int)?
    /// Set once a shell starts on the channel (exec channels have none).
    private(set) var editor: LineEditor?
    /// Open while Enter-Elevation waits for the secret: input is not echoed
    /// and goes to the secret, never to a command line.
    private var secretPrompt: SecretPrompt?
    var started = false
    var lastStatus: Int32 = 0

    init(channel: SSHChannel) { self.channel = channel }

    /// What one typed byte did.
    enum Input {
        /// Line-editor events, with the echo to send first.
        case edited(echo: [UInt8], events: [LineEditor.Event])
        /// A byte of the secret, or a LF after its CR: nothing to show.
        case secretTyping
        /// The secret is complete: `takeSecret()` hands it over.
        case secretEntered
        /// Ctrl-C, Ctrl-D or an over-long secret: nothing is redeemed.
        case secretCancelled
    }

    var isInteractive: Bool { editor != nil }

    var isSecretPromptOpen: Bool {
        switch secretPrompt {
        case .some: true
        case .none: false
        }
    }

    /// Starts line editing; echo only with a pty (the client's terminal is raw).
    func startShell(completer: @escaping ([UInt8]) -> (addition: [UInt8], candidates: [String])) {
        var editor = LineEditor(echo: pty != nil, maxLineBytes: Lexer.maxLineBytes)
        editor.completer = completer
        self.editor = editor
    }

    /// The next bytes typed are the secret for `requestID`.
    func openSecretPrompt(requestID: Int64) {
        secretPrompt = SecretPrompt(requestID: requestID, maxBytes: Lexer.maxLineBytes,
                                    afterCR: editor?.lastWasCR ?? false)
    }

    /// Feeds one byte (one at a time, so a line that opens the secret prompt
    /// hides the very next byte).
    func feed(_ byte: UInt8) -> Input {
        if let step = secretPrompt?.feed(byte) {
            switch step {
            case .typing: return .secretTyping
            case .entered: return .secretEntered
            case .cancelled:
                closeSecretPrompt()
                return .secretCancelled
            }
        }
        guard var editor else { return .edited(echo: [], events: []) }
        let (echo, events) = editor.feed([byte])
        self.editor = editor
        return .edited(echo: echo, events: events)
    }

    /// The entered secret, moved out of the prompt, which closes.
    func takeSecret() -> SecretPrompt? {
        guard let prompt = secretPrompt.take() else { return nil }
        editor?.lastWasCR = prompt.endedOnCR
        return prompt
    }

    private func closeSecretPrompt() { _ = takeSecret() }

    /// Output as the terminal needs it. With a pty the client's terminal is
    /// raw, so a line feed alone would not return the cursor: each LF becomes
    /// CR LF. `raw` bytes (echo, prompts) are already terminal bytes. This is
    /// the one place output line endings are converted.
    func terminalBytes(_ bytes: [UInt8], raw: Bool = false) -> [UInt8] {
        guard pty != nil && !raw else { return bytes }
        return TerminalText.withCarriageReturns(bytes)
    }

    /// Completion candidates in columns across the terminal (80 without a
    /// pty), one line per row, as a shell lists them at a second Tab.
    func candidateColumns(_ names: [String]) -> String {
        Self.columns(names, width: pty?.columns ?? 80)
    }

    /// Names laid out in columns across `width`, one line per row.
    static func columns(_ names: [String], width: Int) -> String {
        let cell = (names.map { TerminalText.columns($0) }.max() ?? 0) + 2
        let perRow = max(1, width / max(cell, 1))
        var out = ""
        for (i, name) in names.enumerated() {
            let last = i % perRow == perRow - 1 || i == names.count - 1
            out += name + (last ? "\n" : String(repeating: " ", count: cell - TerminalText.columns(name)))
        }
        return out
    }
}
