import GatehouseCore

/// Where a running command's output goes (the SSH channel, a transcript, a
/// test buffer). Bytes arrive already sanitised for a terminal, as they come.
/// Called on the thread that runs the command.
public protocol CommandOutput: AnyObject {
    func stdout(_ bytes: [UInt8])
    func stderr(_ bytes: [UInt8])
    /// The client terminal's width, when it has one; tables fit into it.
    var terminalColumns: Int? { get }
    /// True only for a consumer that parses stdout and sanitises whatever it
    /// prints itself (the JSON formatters): it gets the backend's bytes as
    /// written, because sanitising first would corrupt valid JSON (a raw
    /// U+2028 or C1 character inside a string is legal JSON).
    var receivesRawStdout: Bool { get }
    /// Called on the command's own thread while a backend runs, after each
    /// wake-up and at `secondsUntilNextTick`, so the session can say
    /// something meanwhile (a warning that the session is about to be
    /// logged off).
    func tick()
    /// When `tick` has something to do next without any other event (the
    /// next lifetime warning), in seconds from now; nil when nothing is
    /// due. The executor sleeps until then, not on a fixed interval.
    var secondsUntilNextTick: Double? { get }
}

extension CommandOutput {
    public var terminalColumns: Int? { nil }
    public var receivesRawStdout: Bool { false }
    public func tick() {}
    public var secondsUntilNextTick: Double? { nil }
}

/// Holds a JSON backend's stdout for the formatters (it is already bounded
/// by the executor's output cap) and passes stderr straight through.
final class CapturingOutput: CommandOutput {
    let inner: CommandOutput
    var captured: [UInt8] = []

    init(inner: CommandOutput) { self.inner = inner }

    func stdout(_ bytes: [UInt8]) { captured += bytes }
    func stderr(_ bytes: [UInt8]) { inner.stderr(bytes) }
    var terminalColumns: Int? { inner.terminalColumns }
    var receivesRawStdout: Bool { true }
    func tick() { inner.tick() }
    var secondsUntilNextTick: Double? { inner.secondsUntilNextTick }
}

/// Sanitises a byte stream for a terminal without breaking a UTF-8 sequence
/// that a `read` split in two: an incomplete tail is held back until the
/// next chunk (or `finish`) completes it.
struct StreamSanitizer {
    private var pending: [UInt8] = []

    /// Sanitised text for the complete part of `pending + bytes`.
    mutating func feed(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        var data = pending
        data.append(contentsOf: bytes)
        let cut = StreamSanitizer.completePrefixLength(data)
        pending = Array(data[cut...])
        guard cut > 0 else { return [] }
        return Array(TerminalText.sanitize(data[..<cut], keepLineBreaks: true).utf8)
    }

    /// Whatever is held back, decoded with replacement characters.
    mutating func finish() -> [UInt8] {
        defer { pending = [] }
        guard !pending.isEmpty else { return [] }
        return Array(TerminalText.sanitize(pending, keepLineBreaks: true).utf8)
    }

    /// The length of `data` without a trailing, still-incomplete UTF-8 sequence.
    static func completePrefixLength(_ data: [UInt8]) -> Int {
        let n = data.count
        var back = 1
        while back <= min(3, n) {
            let b = data[n - back]
            if b & 0xc0 == 0x80 { back += 1; continue } // continuation byte
            let needed: Int
            switch b {
            case 0xc2...0xdf: needed = 2
            case 0xe0...0xef: needed = 3
            case 0xf0...0xf4: needed = 4
            default: return n // ASCII or invalid lead: nothing to wait for
            }
            return back < needed ? n - back : n
        }
        return n
    }
}
