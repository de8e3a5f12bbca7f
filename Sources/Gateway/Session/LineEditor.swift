import GatehouseCore

/// Turns the bytes a client types into command lines.
///
/// With a pty the server echoes (the client's terminal is in raw mode), so
/// the editor returns what to echo; without one it only splits lines. Kept
/// deliberately small: history and completion come with the line-editor work.
/// Input is bounded: past `maxLineBytes` the rest of the line is discarded, not
/// buffered, and the line is reported as too long.
struct LineEditor {
    enum Event: Equatable {
        case line([UInt8])
        case tooLong
        case interrupt      // Ctrl-C: the line is discarded
        case endOfInput     // Ctrl-D on an empty line
        /// A second Tab with several candidates and nothing to add: show
        /// them, then the prompt and the line again (`echoOfLine`).
        case showCandidates([String])
    }

    /// With a pty only: the client's terminal is raw and shows nothing itself.
    /// (A secret never reaches the editor: see SecretPrompt.)
    let echo: Bool
    let maxLineBytes: Int
    /// Tab completion (only with echo): for the line typed so far, the bytes
    /// to append and every matching candidate. Without it, a tab is kept as
    /// a space.
    var completer: (([UInt8]) -> (addition: [UInt8], candidates: [String]))?
    /// The previous byte was a Tab that completed nothing.
    private var lastTabFoundNothing = false
    private var buffer: [UInt8] = []
    private var overflowed = false
    /// The last byte was a CR, so a LF right after it ends no second line.
    /// The shell channel sets it when the secret prompt, which reads bytes
    /// this editor never sees, ended on a CR.
    var lastWasCR = false
    private var escapes = EscapeSequenceFilter()

    init(echo: Bool, maxLineBytes: Int) {
        self.echo = echo
        self.maxLineBytes = maxLineBytes
    }

    /// Feeds typed bytes; returns the echo to send and the events completed.
    mutating func feed(_ bytes: [UInt8]) -> (echo: [UInt8], events: [Event]) {
        var out: [UInt8] = []
        var events: [Event] = []
        for byte in bytes {
            if escapes.swallows(byte) { continue }
            let wasCR = lastWasCR
            lastWasCR = byte == 0x0d
            let secondTab = lastTabFoundNothing && byte == 0x09
            lastTabFoundNothing = false
            switch byte {
            case 0x0d, 0x0a:
                if byte == 0x0a && wasCR { continue }   // CR LF counts once
                if echo { out += [0x0d, 0x0a] }
                events.append(overflowed ? .tooLong : .line(buffer))
                buffer.removeAll(keepingCapacity: true)
                overflowed = false
            case 0x03:
                if echo { out += Array("^C\r\n".utf8) }
                buffer.removeAll()
                overflowed = false
                events.append(.interrupt)
            case 0x04:
                if buffer.isEmpty && !overflowed { events.append(.endOfInput) }
            case 0x7f, 0x08:
                if let removed = removeLastCharacter(), echo { out += Self.erase(Self.echoColumns(removed[...])) }
            case 0x15:   // Ctrl-U: kill the line
                if echo { out += Self.erase(Self.echoColumns(buffer[...])) }
                buffer.removeAll()
                overflowed = false
            case 0x1b:
                escapes.begin()
            case 0x09 where echo && completer != nil:
                guard !overflowed, let completer else { continue }
                let (addition, candidates) = completer(buffer)
                if addition.isEmpty || buffer.count + addition.count > maxLineBytes {
                    if secondTab && candidates.count > 1 {
                        events.append(.showCandidates(candidates))
                    } else {
                        out.append(0x07) // bell: nothing (unique) to complete; a second Tab lists
                        lastTabFoundNothing = true
                    }
                } else {
                    buffer += addition
                    out += addition
                }
            case 0x09, 0x20...0x7e, 0x80...0xff:
                if overflowed { continue }
                if buffer.count >= maxLineBytes {
                    overflowed = true
                    buffer.removeAll()
                    continue
                }
                buffer.append(byte)
                if echo { out += Self.echo(of: byte) }
            default:
                // Other control characters are kept so the lexer can refuse
                // the line with a precise column, but never echoed raw.
                if overflowed { continue }
                if buffer.count >= maxLineBytes { overflowed = true; buffer.removeAll(); continue }
                buffer.append(byte)
                if echo { out += Self.echo(of: byte) }
            }
        }
        return (out, events)
    }

    /// The line as it was echoed (caret notation for control bytes, a space
    /// for a tab), to draw it again after a listing.
    var echoOfLine: [UInt8] { buffer.flatMap(Self.echo(of:)) }

    /// How a kept byte is echoed: a tab as a space, another control byte in
    /// caret notation (`^A`), anything else as itself.
    static func echo(of byte: UInt8) -> [UInt8] {
        if byte == 0x09 { return [0x20] }
        if byte.isASCIIControl { return [0x5e, byte ^ 0x40] }
        return [byte]
    }

    /// Backspace, space, backspace over `columns` columns.
    static func erase(_ columns: Int) -> [UInt8] {
        Array(repeating: 0x08, count: columns) + Array(repeating: 0x20, count: columns) + Array(repeating: 0x08, count: columns)
    }

    /// Columns the echo of `bytes` took: caret notation (`^A`) for a control
    /// byte, one column for a tab (echoed as a space) or a stray byte, and
    /// the character's own width otherwise (two for CJK, none for a
    /// combining mark), so erasing it erases exactly that much.
    static func echoColumns(_ bytes: ArraySlice<UInt8>) -> Int {
        var total = 0
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let lead = bytes[i]
            var end = i + 1
            while end < bytes.endIndex, (bytes[end] & 0xc0) == 0x80 { end += 1 }
            if lead == 0x09 {
                total += 1
            } else if lead.isASCIIControl {
                total += 2
            } else if lead < 0x80 {
                total += 1
            } else if let scalar = String(validating: bytes[i..<end], as: UTF8.self)?.unicodeScalars.first {
                total += TerminalText.columns(of: scalar)
            } else {
                total += end - i    // invalid UTF-8: the terminal shows a replacement per byte
            }
            i = end
        }
        return total
    }

    /// Removes the last UTF-8 scalar (all its continuation bytes) and
    /// returns its bytes; nil when the line is empty.
    private mutating func removeLastCharacter() -> [UInt8]? {
        guard !buffer.isEmpty else { return nil }
        var start = buffer.endIndex - 1
        while start > buffer.startIndex, (buffer[start] & 0xc0) == 0x80 { start -= 1 }
        let removed = Array(buffer[start...])
        buffer.removeSubrange(start...)
        return removed
    }
}

/// Swallows terminal escape sequences (arrow keys and the like): they must
/// neither reach a command line or a secret nor be echoed raw.
struct EscapeSequenceFilter {
    private enum State { case none, escape, csi }
    private var state = State.none

    /// After an ESC byte.
    mutating func begin() { state = .escape }

    /// True when `byte` belongs to a sequence in progress.
    mutating func swallows(_ byte: UInt8) -> Bool {
        switch state {
        case .escape:
            state = byte == UInt8(ascii: "[") || byte == UInt8(ascii: "O") ? .csi : .none
            return true
        case .csi:
            if (0x40...0x7e).contains(byte) { state = .none }
            return true
        case .none:
            return false
        }
    }
}
