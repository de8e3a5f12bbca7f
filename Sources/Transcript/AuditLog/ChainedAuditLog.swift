import Crypto
import Foundation
import GatehouseCore

/// The audit log: JSON lines, each carrying a sequence number and the SHA-256
/// of the previous line (see `AuditRecord`), with Ed25519-signed checkpoints
/// at a fixed interval and at shutdown. Editing, deleting, reordering or
/// truncating events is then detectable by `AuditLogVerifier`.
///
/// `record` returns only once the line is `fdatasync`ed, so a command's
/// event is durable before its backend starts. Failure is sticky: after one
/// failed write the chain's tail is uncertain, so every later `record`
/// throws too and the gateway fails closed until an operator intervenes.
///
/// The newest checkpoint is also kept in `<log>.checkpoint` (replaced
/// atomically): a log cut short before that checkpoint is reported as
/// truncated even though the cut removed the checkpoint line itself.
public final class ChainedAuditLog: AuditSink, @unchecked Sendable {
    public let path: String
    public var checkpointPath: String { path + ".checkpoint" }
    private let key: AuditSigningKey
    private let clock: Clock
    private let synchronous: Bool
    private let lock = NSLock()
    private let fd: Int32
    // Guarded by `lock`.
    private var lastSeq = 0
    private var lastHash = AuditRecord.genesisHash
    private var unsignedEvents = 0
    private var failure: String?
    private var timer: DispatchSourceTimer?
    /// True when the file ended in a partial line at open (a write cut short
    /// by power loss); the daemon logs it. That fragment is not in the chain.
    public private(set) var recoveredTornTail = false

    /// Opens (creating, 0600) the log at `path` and continues its chain.
    /// - Parameters:
    ///   - checkpointInterval: seconds between signed checkpoints while
    ///     events arrive; `nil` signs only on `close()`/`checkpoint()`.
    ///   - synchronous: `false` skips `fdatasync` (tests and benchmarks only).
    public init(path: String, key: AuditSigningKey, clock: Clock = SystemClock(),
                checkpointInterval: TimeInterval? = 60, synchronous: Bool = true) throws {
        self.path = path
        self.key = key
        self.clock = clock
        self.synchronous = synchronous
        fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AuditLogError.io(path: path, errno: errno) }
        do {
            try resumeChain()
        } catch {
            Glibc.close(fd)
            throw error
        }
        if let interval = checkpointInterval, interval > 0 {
            let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "gatehouse.audit.checkpoint"))
            timer.schedule(deadline: .now() + interval, repeating: interval)
            timer.setEventHandler { [weak self] in try? self?.checkpoint(reason: "interval") }
            timer.resume()
            self.timer = timer
        }
    }

    deinit {
        timer?.cancel()
        Glibc.close(fd)
    }

    /// The sequence number of the newest event.
    public var currentSeq: Int { lock.withLock { lastSeq } }

    /// Whether a write has failed (the gateway then ends sessions and refuses new ones).
    public var hasFailed: Bool { lock.withLock { failure != nil } }

    public func record(_ event: AuditEvent) throws {
        try lock.withLock {
            try append(event)
            unsignedEvents += 1
        }
    }

    /// Signs the chain head now if events arrived since the last checkpoint.
    public func checkpoint(reason: String) throws {
        try lock.withLock {
            guard unsignedEvents > 0 else { return }
            try writeCheckpoint(reason: reason)
        }
    }

    /// Stops the interval timer and writes the shutdown checkpoint.
    public func close(reason: String = "shutdown") throws {
        timer?.cancel()
        try checkpoint(reason: reason)
    }

    // MARK: - Under the lock

    private func append(_ event: AuditEvent) throws {
        if let failure { throw AuditLogError.failedEarlier(path: path, first: failure) }
        let record = AuditRecord(event: event, seq: lastSeq + 1, prev: lastHash)
        var line = record.lineBytes
        line.append(0x0a)
        do {
            try writeAll(line)
            if synchronous && fdatasync(fd) != 0 { throw AuditLogError.io(path: path, errno: errno) }
        } catch {
            failure = "\(error)"
            throw error
        }
        lastSeq = record.seq
        lastHash = record.hash
    }

    private func writeCheckpoint(reason: String) throws {
        let signedSeq = lastSeq
        let signedHash = lastHash
        let signature = try key.sign(seq: signedSeq, hash: signedHash)
        let event = AuditEvent(time: clock.now(), kind: .auditCheckpoint, fields: [
            "signedSeq": String(signedSeq), "signedHash": signedHash, "signature": signature,
            "key": key.keyID, "reason": reason,
        ])
        try append(event)
        unsignedEvents = 0
        // The newest checkpoint, kept apart so that truncation is detectable.
        let record = AuditRecord(event: event, seq: lastSeq, prev: signedHash)
        let tmp = checkpointPath + ".tmp"
        let cfd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard cfd >= 0 else { throw AuditLogError.io(path: tmp, errno: errno) }
        var line = record.lineBytes
        line.append(0x0a)
        let ok = line.withUnsafeBytes { write(cfd, $0.baseAddress, $0.count) } == line.count && fsync(cfd) == 0
        Glibc.close(cfd)
        guard ok, rename(tmp, checkpointPath) == 0 else { throw AuditLogError.io(path: checkpointPath, errno: errno) }
    }

    private func writeAll(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw AuditLogError.io(path: path, errno: errno)
            }
            offset += n
        }
    }

    /// Finds the last complete line and continues the chain from it.
    private func resumeChain() throws {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw AuditLogError.io(path: path, errno: errno) }
        let size = Int(st.st_size)
        guard size > 0 else { return }
        var window = min(size, 1 << 16)
        while true {
            var buffer = [UInt8](repeating: 0, count: window)
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, window, off_t(size - window)) }
            guard n == window else { throw AuditLogError.io(path: path, errno: errno) }
            var end = buffer.count
            if buffer.last != 0x0a {
                // A line cut short (power loss mid-write): end it so the next
                // event starts on a line of its own; the verifier notes it.
                recoveredTornTail = true
                guard let lastNewline = buffer.lastIndex(of: 0x0a) else {
                    if window < size { window = min(size, window * 4); continue }
                    try writeAll([0x0a])
                    return
                }
                end = lastNewline + 1
                try writeAll([0x0a])
            }
            let body = buffer[..<(end - 1)]
            if let start = body.lastIndex(of: 0x0a) {
                try resume(from: Array(body[(start + 1)...]), line: nil)
                return
            }
            if window == size {
                try resume(from: Array(body), line: 1)
                return
            }
            window = min(size, window * 4)
        }
    }

    private func resume(from line: [UInt8], line number: Int?) throws {
        let parsed: AuditRecord.Parsed
        do {
            parsed = try AuditRecord.parse(line: line)
        } catch let failure as AuditRecord.ParseFailure {
            throw AuditLogError.malformed(path: path, line: number ?? 0,
                                          reason: "the last line is \(failure.reason); run `gatehouse audit verify`")
        }
        lastSeq = parsed.record.seq
        lastHash = parsed.record.hash
        unsignedEvents = parsed.record.kind == AuditEventKind.auditCheckpoint.rawValue ? 0 : 1
    }
}
