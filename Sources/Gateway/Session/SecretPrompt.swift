import GatehouseCore

/// The hidden prompt of `Enter-Elevation`. What is typed goes byte by byte
/// into `SecretBytes`, from the first byte to Lockbox's hash check, and is
/// never echoed: no array, no `String`, no line editor buffer ever holds it.
///
/// Editing is the line editor's with echo off: backspace and Ctrl-U erase,
/// escape sequences are dropped, Enter ends the secret (CR LF once), and
/// Ctrl-C, Ctrl-D on an empty secret, or a secret over the line limit cancel.
struct SecretPrompt: ~Copyable {
    enum Step { case typing, entered, cancelled }

    let requestID: Int64
    private var secret: SecretBytes
    private var overflowed = false
    private var lastWasCR: Bool
    private var escapes = EscapeSequenceFilter()

    /// `afterCR`: the line that opened the prompt ended with a CR, so a LF
    /// right after it is that line's, not an empty secret.
    init(requestID: Int64, maxBytes: Int, afterCR: Bool) {
        self.requestID = requestID
        secret = SecretBytes(capacity: maxBytes)
        lastWasCR = afterCR
    }

    /// True when the prompt ended on a CR (the editor skips a LF after it).
    var endedOnCR: Bool { lastWasCR }

    mutating func feed(_ byte: UInt8) -> Step {
        if escapes.swallows(byte) { return .typing }
        let wasCR = lastWasCR
        lastWasCR = byte == 0x0d
        switch byte {
        case 0x0d, 0x0a:
            if byte == 0x0a && wasCR { return .typing }
            return overflowed ? .cancelled : .entered
        case 0x03:
            return .cancelled
        case 0x04:
            return secret.isEmpty && !overflowed ? .cancelled : .typing
        case 0x7f, 0x08:
            removeLastCharacter()
        case 0x15:
            secret.removeAll()
            overflowed = false
        case 0x1b:
            escapes.begin()
        default:
            if !overflowed && !secret.append(byte) {
                overflowed = true
                secret.removeAll()
            }
        }
        return .typing
    }

    /// The typed secret; the prompt is gone.
    consuming func typed() -> SecretBytes { secret }

    /// Removes the last UTF-8 scalar (its continuation bytes too), as the
    /// line editor's backspace does.
    private mutating func removeLastCharacter() {
        while let last = secret.withUnsafeBytes({ $0.last }) {
            secret.removeLast()
            if last & 0xc0 != 0x80 { return }
        }
    }
}
