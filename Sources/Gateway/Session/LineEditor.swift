import GatehouseCore

/// Turns the bytes a client types into command lines.
///
/// With a pty the server echoes (the client's terminal is in raw mode), so
/// the editor returns what to echo; without one it only splits lines.
/// Input is bounded: past `maxLineBytes` the rest of the line is discarded, not
/// buffered, and the line is reported as too long.
///
/// With a pty it also keeps this session's history, as an interactive shell
/// does: Up and Down walk it, Ctrl-R searches it backwards (Enter runs the
/// match, Ctrl-G puts the line back, another key keeps the match to edit).
/// A bracketed paste (the terminal marks it when the session asked for it,
/// `bracketedPasteOn`) is never run line by line unseen: one line is
/// inserted as if typed, several are shown and run only after a `y`. The
/// secret of Enter-Elevation never reaches the editor (see SecretPrompt), so
/// it never enters the history.
struct LineEditor {
    enum Event: Equatable {
        case line([UInt8])
        case tooLong
        case interrupt      // Ctrl-C: the line is discarded
        case endOfInput     // Ctrl-D on an empty line
        /// A second Tab with several candidates and nothing to add: show
        /// them, then the prompt and the line again (`echoOfLine`).
        case showCandidates([String])
        /// A pasted block of several lines was not confirmed: nothing ran.
        case pasteDiscarded
    }

    /// Sent to the terminal to have pastes marked (`ESC [200~` … `ESC [201~`), and to stop it.
    static let bracketedPasteOn = Array("\u{1b}[?2004h".utf8)
    static let bracketedPasteOff = Array("\u{1b}[?2004l".utf8)
    /// The most lines the history keeps (the oldest go first).
    static let maxHistory = 500
    /// The most bytes one paste may hold; a larger one is discarded whole.
    var maxPasteBytes: Int { maxLineBytes * 16 }

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
    /// This session's lines, oldest first.
    private(set) var history: [[UInt8]] = []
    /// While walking the history: the entry shown, and the line that was
    /// being typed before (Down past the newest entry gives it back).
    private var browsing: (index: Int, typed: [UInt8])?
    /// Ctrl-R in progress: what is searched for, the entry found, the line to
    /// put back on Ctrl-G, and the columns the search display took.
    private var search: (query: [UInt8], found: Int?, typed: [UInt8], shown: Int)?
    /// Inside a bracketed paste: its bytes so far (nil: not pasting).
    private var paste: [UInt8]?
    private var pasteOverflowed = false
    /// A pasted block of several lines waiting for its `y`.
    private var pendingPaste: [[UInt8]]?

    init(echo: Bool, maxLineBytes: Int) {
        self.echo = echo
        self.maxLineBytes = maxLineBytes
    }

    /// Feeds typed bytes; returns the echo to send and the events completed.
    mutating func feed(_ bytes: [UInt8]) -> (echo: [UInt8], events: [Event]) {
        var out: [UInt8] = []
        var events: [Event] = []
        for byte in bytes { feed(byte, &out, &events) }
        return (out, events)
    }

    private mutating func feed(_ byte: UInt8, _ out: inout [UInt8], _ events: inout [Event]) {
        if pendingPaste != nil {
            answerPaste(byte, &out, &events)
            return
        }
        switch escapes.consume(byte) {
        case .notEscape: break
        case .pending: return
        case .sequence(let key):
            handle(key, &out, &events)
            return
        }
        if paste != nil {
            if byte == 0x1b { escapes.begin() } else { addToPaste(byte) }
            return
        }
        if search != nil, searchKey(byte, &out, &events) { return }
        let wasCR = lastWasCR
        lastWasCR = byte == 0x0d
        let secondTab = lastTabFoundNothing && byte == 0x09
        lastTabFoundNothing = false
        switch byte {
        case 0x0d, 0x0a:
            if byte == 0x0a && wasCR { return }   // CR LF counts once
            if echo { out += [0x0d, 0x0a] }
            events.append(overflowed ? .tooLong : .line(buffer))
            if !overflowed { remember(buffer) }
            buffer.removeAll(keepingCapacity: true)
            overflowed = false
            browsing = nil
        case 0x03:
            if echo { out += Array("^C\r\n".utf8) }
            buffer.removeAll()
            overflowed = false
            browsing = nil
            events.append(.interrupt)
        case 0x04:
            if buffer.isEmpty && !overflowed { events.append(.endOfInput) }
        case 0x12 where echo:   // Ctrl-R: search the history backwards
            search = (query: [], found: nil, typed: buffer, shown: 0)
            redrawSearch(&out)
        case 0x7f, 0x08:
            if let removed = removeLastCharacter(), echo { out += Self.erase(Self.echoColumns(removed[...])) }
        case 0x15:   // Ctrl-U: kill the line
            if echo { out += Self.erase(Self.echoColumns(buffer[...])) }
            buffer.removeAll()
            overflowed = false
        case 0x1b:
            escapes.begin()
        case 0x09 where echo && completer != nil:
            guard !overflowed, let completer else { return }
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
        default:
            // Printable bytes, a tab kept as typed, and other control
            // characters, which are kept so the lexer can refuse the line
            // with a precise column, but never echoed raw.
            insert(byte, &out)
        }
    }

    private mutating func insert(_ byte: UInt8, _ out: inout [UInt8]) {
        if overflowed { return }
        if buffer.count >= maxLineBytes {
            overflowed = true
            buffer.removeAll()
            return
        }
        buffer.append(byte)
        if echo { out += Self.echo(of: byte) }
    }

    // MARK: Keys sent as escape sequences

    private mutating func handle(_ key: EscapeSequenceFilter.Key, _ out: inout [UInt8], _ events: inout [Event]) {
        switch key {
        case .pasteStart:
            if paste == nil { paste = []; pasteOverflowed = false }
        case .pasteEnd:
            if paste != nil { endPaste(&out, &events) }
        case .up, .down:
            guard paste == nil else { return }
            if search != nil { acceptSearch(&out) }
            guard echo, !overflowed else { return }
            walkHistory(older: key == .up, &out)
        case .other:
            break
        }
    }

    // MARK: History

    private mutating func remember(_ line: [UInt8]) {
        guard echo, !line.isEmpty, history.last != line else { return }
        history.append(line)
        if history.count > Self.maxHistory { history.removeFirst(history.count - Self.maxHistory) }
    }

    private mutating func walkHistory(older: Bool, _ out: inout [UInt8]) {
        let next: Int?
        switch (browsing, older) {
        case (nil, true): next = history.isEmpty ? nil : history.count - 1
        case (nil, false): next = nil
        case (let b?, true): next = b.index > 0 ? b.index - 1 : nil
        case (let b?, false): next = b.index + 1
        }
        guard let next else {
            out.append(0x07)
            return
        }
        let typed = browsing?.typed ?? buffer
        if next < history.count {
            browsing = (next, typed)
            replaceLine(with: history[next], &out)
        } else {
            browsing = nil
            replaceLine(with: typed, &out)
        }
    }

    private mutating func replaceLine(with line: [UInt8], _ out: inout [UInt8]) {
        out += Self.erase(Self.echoColumns(buffer[...]))
        buffer = line
        out += buffer.flatMap(Self.echo(of:))
    }

    // MARK: Ctrl-R

    /// True when the byte was the search's; false when the search ended and
    /// the byte is to be handled as a key of its own.
    private mutating func searchKey(_ byte: UInt8, _ out: inout [UInt8], _ events: inout [Event]) -> Bool {
        guard var s = search else { return false }
        switch byte {
        case 0x12:   // Ctrl-R again: the next older match
            s.found = find(s.query, before: s.found ?? history.count)
            if s.found == nil { out.append(0x07); s.found = find(s.query, before: history.count) }
        case 0x07:   // Ctrl-G: give the typed line back
            let typed = s.typed
            clearSearch(&out)
            buffer = typed
            out += buffer.flatMap(Self.echo(of:))
            return true
        case 0x7f, 0x08:
            if !s.query.isEmpty {
                s.query.removeLast()
                while let last = s.query.last, (last & 0xc0) == 0x80 { s.query.removeLast() }
            }
            s.found = find(s.query, before: history.count)
        case 0x20...0x7e, 0x80...0xff:
            guard s.query.count < 64 else { out.append(0x07); return true }
            s.query.append(byte)
            s.found = find(s.query, before: (s.found ?? history.count - 1) + 1)
            if s.found == nil { out.append(0x07) }
        default:
            // Enter runs the match, Ctrl-C drops it, anything else keeps it
            // on the line to edit; then the byte acts as usual.
            acceptSearch(&out)
            return false
        }
        search = s
        redrawSearch(&out)
        return true
    }

    /// The newest entry before `index` that contains `query`.
    private func find(_ query: [UInt8], before index: Int) -> Int? {
        guard !query.isEmpty else { return nil }
        var i = min(index, history.count) - 1
        while i >= 0 {
            let entry = history[i]
            if entry.count >= query.count,
               (0...(entry.count - query.count)).contains(where: { entry[$0..<($0 + query.count)].elementsEqual(query) }) {
                return i
            }
            i -= 1
        }
        return nil
    }

    private mutating func redrawSearch(_ out: inout [UInt8]) {
        guard var s = search else { return }
        out += Self.erase(s.shown)
        let match = s.found.map { history[$0] } ?? []
        let display = Array("(reverse-i-search)`".utf8) + s.query.flatMap(Self.echo(of:)) + Array("': ".utf8)
            + match.flatMap(Self.echo(of:))
        out += display
        s.shown = Self.echoColumns(display[...])
        search = s
    }

    private mutating func clearSearch(_ out: inout [UInt8]) {
        if let s = search { out += Self.erase(s.shown) }
        search = nil
    }

    /// Ends the search with its match (or the typed line) on the line.
    private mutating func acceptSearch(_ out: inout [UInt8]) {
        guard let s = search else { return }
        let line = s.found.map { history[$0] } ?? s.typed
        clearSearch(&out)
        buffer = line
        browsing = nil
        out += buffer.flatMap(Self.echo(of:))
    }

    // MARK: Bracketed paste

    private mutating func addToPaste(_ byte: UInt8) {
        guard !pasteOverflowed else { return }
        if (paste?.count ?? 0) >= maxPasteBytes {
            pasteOverflowed = true
            paste = []
            return
        }
        paste?.append(byte)
    }

    private mutating func endPaste(_ out: inout [UInt8], _ events: inout [Event]) {
        guard let pasted = paste.take() else { return }
        if pasteOverflowed {
            if echo { out += Array("\r\n(paste discarded: more than \(maxPasteBytes) bytes)\r\n".utf8) }
            events.append(.pasteDiscarded)
            return
        }
        // A final line break ends the block; it does not run it.
        var lines = Self.splitLines(pasted)
        while lines.count > 1, lines.last?.isEmpty == true { lines.removeLast() }
        if lines.count <= 1 {
            for byte in lines.first ?? [] { insert(byte, &out) }
            return
        }
        lines[0] = buffer + lines[0]
        pendingPaste = lines
        guard echo else { return }
        out += Self.erase(Self.echoColumns(buffer[...]))
        out += Array("\r\nPasted \(lines.count) lines:\r\n".utf8)
        for line in lines { out += Array("  ".utf8) + line.flatMap(Self.echo(of:)) + [0x0d, 0x0a] }
        out += Array("Run them one after another? [y/N] ".utf8)
    }

    /// Lines split at CR LF, CR or LF, each ending counted once.
    static func splitLines(_ bytes: [UInt8]) -> [[UInt8]] {
        var lines: [[UInt8]] = [[]]
        var previousCR = false
        for byte in bytes {
            if byte == 0x0a && previousCR { previousCR = false; continue }
            previousCR = byte == 0x0d
            if byte == 0x0d || byte == 0x0a { lines.append([]) } else { lines[lines.count - 1].append(byte) }
        }
        return lines
    }

    private mutating func answerPaste(_ byte: UInt8, _ out: inout [UInt8], _ events: inout [Event]) {
        guard let lines = pendingPaste.take() else { return }
        buffer.removeAll()
        browsing = nil
        if byte == UInt8(ascii: "y") || byte == UInt8(ascii: "Y") {
            if echo { out += Array("y\r\n".utf8) }
            for line in lines {
                if line.count > maxLineBytes { events.append(.tooLong); continue }
                events.append(.line(line))
                remember(line)
            }
        } else {
            if echo { out += Array("\r\n(not run)\r\n".utf8) }
            events.append(.pasteDiscarded)
        }
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
/// neither reach a command line or a secret nor be echoed raw. The few the
/// line editor acts on are reported: Up, Down, and the marks of a bracketed
/// paste.
struct EscapeSequenceFilter {
    enum Key: Equatable { case up, down, pasteStart, pasteEnd, other }
    enum Step: Equatable {
        case notEscape
        /// Part of a sequence in progress.
        case pending
        /// The last byte of a sequence.
        case sequence(Key)
    }
    private enum State { case none, escape, csi, ss3 }
    private var state = State.none
    /// A CSI sequence's parameter bytes (bounded: only short ones mean anything here).
    private var parameters: [UInt8] = []

    /// After an ESC byte.
    mutating func begin() { state = .escape }

    /// True when `byte` belongs to a sequence in progress.
    mutating func swallows(_ byte: UInt8) -> Bool { consume(byte) != .notEscape }

    mutating func consume(_ byte: UInt8) -> Step {
        switch state {
        case .escape:
            parameters.removeAll()
            state = byte == UInt8(ascii: "[") ? .csi : (byte == UInt8(ascii: "O") ? .ss3 : .none)
            return state == .none ? .sequence(.other) : .pending
        case .ss3:
            state = .none
            return .sequence(Self.arrow(byte) ?? .other)
        case .csi:
            guard (0x40...0x7e).contains(byte) else {
                if parameters.count < 8 { parameters.append(byte) }
                return .pending
            }
            state = .none
            if parameters.isEmpty, let arrow = Self.arrow(byte) { return .sequence(arrow) }
            if byte == UInt8(ascii: "~") && parameters == Array("200".utf8) { return .sequence(.pasteStart) }
            if byte == UInt8(ascii: "~") && parameters == Array("201".utf8) { return .sequence(.pasteEnd) }
            return .sequence(.other)
        case .none:
            return .notEscape
        }
    }

    private static func arrow(_ byte: UInt8) -> Key? {
        switch byte {
        case UInt8(ascii: "A"): return .up
        case UInt8(ascii: "B"): return .down
        default: return nil
        }
    }
}
