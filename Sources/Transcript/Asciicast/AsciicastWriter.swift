import Foundation
import GatehouseCore
import Synchronization

/// Writes one session's terminal I/O as an asciicast v2 file
/// (https://docs.asciinema.org/manual/asciicast/v2/), which the real
/// `asciinema cat` and `asciinema play` read.
///
/// - The header is one JSON object: the standard keys (`version`, `width`,
///   `height`, `timestamp`, `env`, `title`) plus a `gatehouse` object with the
///   user, session, node, client address, start time and the claim at start
///   (asciinema ignores keys it does not know).
/// - `"o"` events are the bytes the client was sent, `"i"` events the bytes
///   it typed. Input typed while echo is off (a secret prompt) is never
///   written: a `"m"` marker `gatehouse: input redacted` stands in its place.
/// - A clean end writes a final `"m"` marker `gatehouse: session ended
///   (REASON)`; a transcript without it was cut off (daemon killed).
///
/// Events are buffered and written (`write(2)`) at most `flushInterval`
/// after they were recorded (a one-shot timer, set when data starts waiting
/// and not set again before it fires),
/// at every `flush()` (the gateway calls it at command boundaries) and when
/// the buffer grows past 64 KiB, so a daemon killed with `-9` leaves
/// everything up to the last flush intact.
/// Thread-safe: the session thread writes, the timer flushes.
public final class AsciicastWriter: Sendable {
    public static let endMarkerPrefix = "gatehouse: session ended"
    public static let redactionMarker = "gatehouse: input redacted (no-echo prompt)"

    /// The header's fixed and Gatehouse-specific fields.
    public struct Header: Sendable {
        public var width: Int
        public var height: Int
        public var start: Date
        public var term: String?
        public var title: String?
        /// Written under the header's `gatehouse` key.
        public var gatehouse: [String: JSONValue]

        public init(width: Int, height: Int, start: Date, term: String?, title: String?, gatehouse: [String: JSONValue]) {
            self.width = width
            self.height = height
            self.start = start
            self.term = term
            self.title = title
            self.gatehouse = gatehouse
        }

        var json: JSONValue {
            var env: [String: JSONValue] = ["SHELL": .string("gatehouse")]
            if let term { env["TERM"] = .string(term) }
            var members: [String: JSONValue] = [
                "version": .int(2), "width": .int(max(1, width)), "height": .int(max(1, height)),
                "timestamp": .int(Int(start.timeIntervalSince1970)), "env": .object(env),
                "gatehouse": .object(gatehouse),
            ]
            if let title { members["title"] = .string(title) }
            return .object(members)
        }
    }

    public let path: String
    private let state: Mutex<State>
    // unchecked: Dispatch on Linux does not mark its sources Sendable; the
    // timer is set once in init, and `schedule`/`cancel` are thread-safe.
    private nonisolated(unsafe) let timer: DispatchSourceTimer?
    private let flushInterval: TimeInterval
    fileprivate static let flushThreshold = 1 << 16

    /// Everything the session thread and the flush timer share.
    fileprivate struct State: ~Copyable {
        /// The transcript file; nil once closed.
        var file: OwnedFileDescriptor?
        let started: UInt64
        var buffer: [UInt8] = []
        /// A UTF-8 sequence split across two writes, per stream ("o", "i").
        var pendingOutput: [UInt8] = []
        var pendingInput: [UInt8] = []
        var failure: Int32?
        /// Whether the one-shot flush timer is set; it is set only while data
        /// waits, so an idle session costs no wake-ups.
        var armed = false
        /// The last event was a redaction marker: a secret typed byte by byte
        /// yields one marker, not one per byte (which would also tell its length).
        var redacting = false

        init(file: consuming OwnedFileDescriptor, started: UInt64) {
            self.file = consume file
            self.started = started
        }
    }

    /// Creates the file (mode 0600, must not exist) and writes the header.
    public convenience init(path: String, header: Header, flushInterval: TimeInterval = 0.2) throws {
        let file: OwnedFileDescriptor
        do throws(Errno) {
            file = try OwnedFileDescriptor(opening: path, flags: O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC,
                                           permissions: 0o600)
        } catch {
            throw AuditLogError.io(path: path, errno: error.rawValue)
        }
        try self.init(file: file, path: path, header: header, flushInterval: flushInterval)
    }

    /// Writes the header to `file`, a new, empty transcript created by
    /// whoever may create files in the transcript directory (under privilege
    /// separation, the monitor); `path` names it in errors and the audit.
    public init(file: consuming OwnedFileDescriptor, path: String, header: Header,
                flushInterval: TimeInterval = 0.2) throws {
        self.path = path
        self.flushInterval = flushInterval
        var state = State(file: file, started: Self.monotonicNanoseconds())
        header.json.write(to: &state.buffer)
        state.buffer.append(0x0a)
        state.flush()
        // A throw closes the file once, when `state` goes out of scope.
        if let failure = state.failure { throw AuditLogError.io(path: path, errno: failure) }
        self.state = Mutex(state)
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "gatehouse.transcript.flush"))
        self.timer = timer
        timer.schedule(deadline: .distantFuture)
        timer.setEventHandler { [weak self] in self?.state.withLock { $0.flush(disarming: true) } }
        timer.resume()
    }

    deinit {
        timer?.cancel()
    }

    /// Records bytes sent to the client.
    public func recordOutput(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        state.withLock { armAfter($0.appendEvent("o", bytes, stream: .output)) }
    }

    /// Records bytes the client typed; with `redacted` (echo was off: a PAM
    /// or elevation-secret prompt) only a marker is written, never the bytes.
    public func recordInput(_ bytes: [UInt8], redacted: Bool) {
        guard !bytes.isEmpty else { return }
        state.withLock { state in
            if redacted {
                if !state.redacting { armAfter(state.appendMarker(Self.redactionMarker)) }
                state.redacting = true
            } else {
                armAfter(state.appendEvent("i", bytes, stream: .input))
            }
        }
    }

    /// Records a terminal resize (`"r"` event, `COLSxROWS`).
    public func recordResize(columns: Int, rows: Int) {
        state.withLock { armAfter($0.appendEvent("r", Array("\(columns)x\(rows)".utf8), stream: .whole)) }
    }

    /// Records a marker (`"m"` event); reviewers see it in the timeline.
    public func recordMarker(_ label: String) {
        state.withLock { armAfter($0.appendMarker(label)) }
    }

    /// Writes everything buffered to the file (without fsync: a killed
    /// daemon loses nothing the kernel already has).
    public func flush() {
        state.withLock { $0.flush() }
    }

    /// Writes the end marker, flushes, fsyncs and closes. Idempotent.
    public func close(reason: String) {
        timer?.cancel()
        state.withLock { state in
            guard state.file != nil else { return }
            _ = state.appendMarker("\(Self.endMarkerPrefix) (\(reason))")
            state.flush()
            guard let file = state.file.take() else { return }
            try? file.synchronize()
            try? file.close()
        }
    }

    /// The errno of the first failed write (disk full), after which nothing
    /// more is written; the gateway then ends the session.
    public var failureErrno: Int32? { state.withLock { $0.failure } }

    /// Sets the one-shot flush timer when `appendEvent` left data waiting
    /// and the timer is not set yet.
    private func armAfter(_ outcome: State.Outcome) {
        guard outcome == .arm else { return }
        timer?.schedule(deadline: .now() + flushInterval, leeway: .milliseconds(20))
    }

    /// Which split-UTF-8 carry-over an event uses; `.whole` events are complete.
    fileprivate enum Stream { case output, input, whole }

    /// `carry + bytes` up to the last complete UTF-8 sequence; the rest is carried.
    fileprivate static func takeComplete(_ bytes: [UInt8], carry: inout [UInt8]) -> [UInt8] {
        let data = carry.isEmpty ? bytes : carry + bytes
        let cut = completePrefixLength(data)
        if cut == data.count {          // the common case: no copy
            carry = []
            return data
        }
        carry = Array(data[cut...])
        return Array(data[..<cut])
    }

    static func formatTime(_ seconds: Double) -> String {
        let micros = Int((seconds * 1e6).rounded())
        let whole = micros / 1_000_000
        let frac = String(micros % 1_000_000)
        return "\(whole)." + String(repeating: "0", count: 6 - frac.count) + frac
    }

    static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// The length of `data` without a trailing, still-incomplete UTF-8 sequence.
    static func completePrefixLength(_ data: [UInt8]) -> Int {
        let n = data.count
        var back = 1
        while back <= min(3, n) {
            let b = data[n - back]
            if b & 0xc0 == 0x80 { back += 1; continue }
            let needed: Int
            switch b {
            case 0xc2...0xdf: needed = 2
            case 0xe0...0xef: needed = 3
            case 0xf0...0xf4: needed = 4
            default: return n
            }
            return back < needed ? n - back : n
        }
        return n
    }
}

extension AsciicastWriter.State {
    /// What an append asks of the writer: nothing, or to set the flush timer.
    enum Outcome { case none, arm }

    mutating func appendMarker(_ label: String) -> Outcome {
        appendEvent("m", Array(label.utf8), stream: .whole)
    }

    mutating func appendEvent(_ type: String, _ bytes: [UInt8], stream: AsciicastWriter.Stream) -> Outcome {
        guard file != nil else { return .none }
        redacting = false
        let data: [UInt8]
        switch stream {
        case .output: data = AsciicastWriter.takeComplete(bytes, carry: &pendingOutput)
        case .input: data = AsciicastWriter.takeComplete(bytes, carry: &pendingInput)
        case .whole: data = bytes
        }
        if data.isEmpty { return .none }
        let elapsed = Double(AsciicastWriter.monotonicNanoseconds() &- started) / 1e9
        buffer.append(UInt8(ascii: "["))
        buffer.append(contentsOf: AsciicastWriter.formatTime(elapsed).utf8)
        buffer.append(contentsOf: ", \"".utf8)
        buffer.append(contentsOf: type.utf8)
        buffer.append(contentsOf: "\", \"".utf8)
        // Invalid UTF-8 (a client may type anything) becomes U+FFFD: an
        // asciicast line must be valid JSON text.
        buffer.reserveCapacity(buffer.count + data.count + data.count / 8 + 8)
        data.withUnsafeBufferPointer { JSONValue.writeEscaped($0, to: &buffer) }
        buffer.append(contentsOf: "\"]\n".utf8)
        if buffer.count >= AsciicastWriter.flushThreshold {
            flush(keepingCapacity: true) // more output is on its way
            return .none
        }
        if armed { return .none }
        armed = true
        return .arm
    }

    /// Writes the buffer out; the first failure (disk full) is kept and
    /// nothing more is written after it.
    ///
    /// Only the timer's own flush disarms it: a flush at the threshold or a
    /// command boundary leaves the timer set (it then finds little or
    /// nothing to write), so steady output sets the timer once per
    /// `flushInterval` instead of once per buffer.
    mutating func flush(keepingCapacity: Bool = false, disarming: Bool = false) {
        if disarming { armed = false }
        guard !buffer.isEmpty, failure == nil else { return }
        do throws(Errno) {
            try file?.writeAll(buffer)
        } catch {
            failure = error.rawValue
        }
        // An idle session keeps no large buffer after a burst of output.
        buffer.removeAll(keepingCapacity: keepingCapacity || buffer.capacity <= 1 << 12)
    }
}
