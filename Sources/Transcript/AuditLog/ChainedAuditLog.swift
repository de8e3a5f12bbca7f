import Crypto
import Foundation
import GatehouseCore
import Synchronization

/// The audit log: JSON lines, each carrying a sequence number and the SHA-256
/// of the previous line (see `AuditRecord`), with Ed25519-signed checkpoints
/// at a fixed interval and at shutdown. Editing, deleting, reordering or
/// truncating events is then detectable by `AuditLogVerifier`.
///
/// `record` of an event that gates an action (`AuditEventKind.gatesAnAction`:
/// `command.allowed`, `session.start`, the Lockbox's transitions…) returns
/// only once an `fdatasync` covers its line and every line before it, so a
/// command's event is durable before its backend starts. An event that only
/// describes (`auth.*`, `command.finished`, `session.end`, refusals…) is
/// chained and written in order at once, and `record` returns without
/// waiting: the next sync makes it durable. That is either the next gating
/// event's, or the flusher thread's, which sleeps on the group-commit
/// condition with no timeout while nothing describing is pending, and with
/// the deadline `describingSyncDelay` after the first undurable describing
/// event otherwise; `close()` (and deinit) sync whatever is left. A login
/// thus syncs for its `session.start` and its commands, not for each of its
/// events. Group commit keeps one slow
/// disk from serialising every session behind one lock: lines are chained
/// and written in order under the chain's lock, and the sync runs outside
/// it. The first thread to wait becomes the leader and syncs everything
/// written so far; threads that wrote while that sync ran wait for the next
/// one, which one of them leads and which covers them all. Failure is
/// sticky: after one failed write or sync the chain's tail is uncertain, so
/// every event that sync covered, and every later `record`, throws, and the
/// gateway fails closed until an operator intervenes.
///
/// The newest checkpoint is also kept in `<log>.checkpoint` (replaced
/// atomically): a log cut short before that checkpoint is reported as
/// truncated even though the cut removed the checkpoint line itself.
public final class ChainedAuditLog: AuditSink, Sendable {
    public let path: String
    public var checkpointPath: String { path + ".checkpoint" }
    private let key: AuditSigningKey
    private let clock: Clock
    private let synchronous: Bool
    private let fd: OwnedFileDescriptor
    private let chain: Mutex<Chain>
    private let durability: Durability
    /// The seq of the checkpoint in the side file; its lock orders replacements.
    private let newestCheckpointFile = Mutex(0)
    /// Test seam: runs in place of each `fdatasync`, given the highest seq
    /// that sync covers and the real call.
    private let syncSeam: SyncSeam?
    // unchecked: Dispatch on Linux does not mark its sources Sendable; the
    // timer is set once in init and only cancelled afterwards, which is thread-safe.
    private nonisolated(unsafe) let timer: DispatchSourceTimer?
    /// At most this long after a describing event is written, a sync covers it.
    public let describingSyncDelay: TimeInterval
    /// True when the file ended in a partial line at open (a write cut short
    /// by power loss); the daemon logs it. That fragment is not in the chain.
    public let recoveredTornTail: Bool

    /// The head of the chain and whether it may still be extended.
    private struct Chain {
        var lastSeq = 0
        var lastHash = AuditRecord.genesisHash
        var unsignedEvents = 0
        var failure: String?
    }

    typealias SyncSeam = @Sendable (_ coveredSeq: Int, _ synchronize: () throws -> Void) throws -> Void

    /// Group commit's state. Taken after the chain's lock when both are
    /// needed (a writer publishes its seq), never before it.
    // unchecked: every field is read and written only with `condition` locked;
    // Mutex cannot be waited on, so an NSCondition is both lock and condition.
    private final class Durability: @unchecked Sendable {
        let condition = NSCondition()
        /// The newest seq written to the file.
        var written: Int
        /// The newest seq a completed `fdatasync` covered.
        var durable: Int
        /// A leader is in `fdatasync` now.
        var syncing = false
        var failure: AuditLogError?
        var syncs = 0
        /// The newest seq of a describing event (durable once `durable` reaches it).
        var describing = 0
        /// When a sync must cover `describing` at the latest.
        var describingDeadline = Date.distantFuture
        /// The flusher thread leaves (deinit, close).
        var stopping = false

        /// A describing event was written and is not yet durable.
        var describingPending: Bool { describing > durable && failure == nil }

        init(seq: Int) {
            written = seq
            durable = seq
        }

        func withLock<R>(_ body: (Durability) throws -> R) rethrows -> R {
            condition.lock()
            defer { condition.unlock() }
            return try body(self)
        }
    }

    /// Opens (creating, 0600) the log at `path` and continues its chain.
    /// - Parameters:
    ///   - checkpointInterval: seconds between signed checkpoints while
    ///     events arrive; `nil` signs only on `close()`/`checkpoint()`.
    ///   - synchronous: `false` skips `fdatasync` (tests and benchmarks only).
    ///   - describingSyncDelay: the bound on how long a describing event
    ///     stays written but not yet synced.
    public convenience init(path: String, key: AuditSigningKey, clock: Clock = SystemClock(),
                            checkpointInterval: TimeInterval? = 60, synchronous: Bool = true,
                            describingSyncDelay: TimeInterval = ChainedAuditLog.defaultDescribingSyncDelay) throws {
        try self.init(path: path, key: key, clock: clock, checkpointInterval: checkpointInterval,
                      synchronous: synchronous, describingSyncDelay: describingSyncDelay, syncSeam: nil)
    }

    /// 50 ms: a power cut may lose at most this much of what was only described.
    public static let defaultDescribingSyncDelay: TimeInterval = 0.05

    init(path: String, key: AuditSigningKey, clock: Clock = SystemClock(), checkpointInterval: TimeInterval? = 60,
         synchronous: Bool = true, describingSyncDelay: TimeInterval = ChainedAuditLog.defaultDescribingSyncDelay,
         syncSeam: SyncSeam?) throws {
        self.path = path
        self.describingSyncDelay = describingSyncDelay
        self.syncSeam = syncSeam
        self.key = key
        self.clock = clock
        self.synchronous = synchronous
        let fd: OwnedFileDescriptor
        do throws(Errno) {
            fd = try OwnedFileDescriptor(opening: path, flags: O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, permissions: 0o600)
        } catch {
            throw AuditLogError.io(path: path, errno: error.rawValue)
        }
        // A throw from here on closes `fd` once, in its own deinit.
        let (chain, tornTail) = try Self.resumeChain(fd, path: path)
        self.fd = fd
        durability = Durability(seq: chain.lastSeq)
        self.chain = Mutex(chain)
        recoveredTornTail = tornTail
        if let interval = checkpointInterval, interval > 0 {
            let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "gatehouse.audit.checkpoint"))
            self.timer = timer
            timer.schedule(deadline: .now() + interval, repeating: interval)
            timer.setEventHandler { [weak self] in try? self?.checkpoint(reason: "interval") }
            timer.resume()
        } else {
            timer = nil
        }
        if synchronous {
            let durability = durability
            let thread = Thread { [weak self] in Self.flush(durability, log: { self }) }
            thread.name = "audit-flush"
            thread.start()
        }
    }

    deinit {
        timer?.cancel()
        let pending = durability.withLock { durability in
            durability.stopping = true
            durability.condition.broadcast()
            return durability.describingPending
        }
        if pending { _ = synchronizeData(covering: durability.withLock { $0.written }) }
    }

    /// The sequence number of the newest event.
    public var currentSeq: Int { chain.withLock { $0.lastSeq } }

    /// Whether a write or sync has failed (the gateway then ends sessions and refuses new ones).
    public var hasFailed: Bool {
        chain.withLock { $0.failure != nil } || durability.withLock { $0.failure != nil }
    }

    /// The newest seq written to the file, synced or not; read without the
    /// chain's lock, so a sync seam may look at it.
    var writtenSeq: Int { durability.withLock { $0.written } }

    /// How many `fdatasync` calls the log has made: under concurrent
    /// sessions fewer than events, which is the point of group commit.
    public var synchronizations: Int { durability.withLock { $0.syncs } }

    /// Chains and writes the event; if its kind gates an action, returns only
    /// once a sync covers it (and so every earlier event), otherwise at once,
    /// the flusher's deadline set if this is the first pending describing event.
    public func record(_ event: AuditEvent) throws {
        let gates = event.kind.gatesAnAction
        let seq = try chain.withLock { chain in
            let seq = try append(event, to: &chain, describing: !gates && synchronous)
            chain.unsignedEvents += 1
            return seq
        }
        if gates { try waitUntilDurable(seq) }
    }

    /// Signs the chain head now if events arrived since the last checkpoint.
    ///
    /// The checkpoint line is chained under the chain's lock, but its sync is
    /// waited for outside it, like any event's: sessions keep writing (and
    /// share that sync) while it runs. The side file is replaced only once
    /// the line it names is durable, and never by an older checkpoint.
    public func checkpoint(reason: String) throws {
        let pending = try chain.withLock { chain -> AuditRecord? in
            guard chain.unsignedEvents > 0 else { return nil }
            let record = try appendCheckpoint(reason: reason, to: &chain)
            chain.unsignedEvents = 0
            return record
        }
        guard let pending else { return }
        try waitUntilDurable(pending.seq)
        try newestCheckpointFile.withLock { newest in
            guard pending.seq > newest else { return }
            try replaceCheckpointFile(with: pending)
            newest = pending.seq
        }
    }

    /// Stops the interval timer and writes the shutdown checkpoint, whose
    /// sync covers every describing event still pending; then stops the flusher.
    public func close(reason: String = "shutdown") throws {
        timer?.cancel()
        defer {
            durability.withLock { durability in
                durability.stopping = true
                durability.condition.broadcast()
            }
        }
        try checkpoint(reason: reason)
        if durability.withLock({ $0.describingPending }) { try waitUntilDurable(durability.withLock { $0.describing }) }
    }

    // MARK: - Group commit

    /// Returns once a completed `fdatasync` covers `seq`, leading a sync
    /// when none is running; throws if the sync that covered it failed (or
    /// an earlier one did). No polling: waiters sleep on the condition
    /// until a leader finishes.
    private func waitUntilDurable(_ seq: Int) throws {
        guard synchronous else { return }
        let condition = durability.condition
        condition.lock()
        defer { condition.unlock() }
        while true {
            if durability.durable >= seq { return }
            if let failure = durability.failure { throw failure }
            if durability.syncing {
                condition.wait()
                continue
            }
            // Lead: one sync for everything written so far.
            durability.syncing = true
            let target = durability.written
            condition.unlock()
            let failure = synchronizeData(covering: target)
            condition.lock()
            durability.syncing = false
            durability.syncs += 1
            if let failure {
                durability.failure = failure
            } else {
                durability.durable = max(durability.durable, target)
            }
            condition.broadcast()
        }
    }

    /// The flusher thread: sleeps on the group-commit condition, with no
    /// timeout while no describing event is pending, and until the first
    /// pending one's deadline otherwise; then syncs (or joins the running
    /// sync) so that it is durable. It holds the log only while syncing, so
    /// the log's deinit stops it.
    private static func flush(_ durability: Durability, log: () -> ChainedAuditLog?) {
        let condition = durability.condition
        condition.lock()
        defer { condition.unlock() }
        while !durability.stopping {
            guard durability.describingPending else {
                condition.wait()
                continue
            }
            if Date() < durability.describingDeadline {
                _ = condition.wait(until: durability.describingDeadline)
                continue
            }
            let target = durability.describing
            condition.unlock()
            // The reference is dropped before the lock is taken again: if it
            // is the last one, the deinit (which takes the lock) runs here.
            let alive = Self.synchronize(log, covering: target)
            condition.lock()
            if !alive { return }
        }
    }

    /// The flusher's sync; false if the log is gone. A failure is sticky
    /// and thrown at the next `record`.
    private static func synchronize(_ log: () -> ChainedAuditLog?, covering seq: Int) -> Bool {
        guard let log = log() else { return false }
        try? log.waitUntilDurable(seq)
        return true
    }

    /// `fdatasync` (or the test seam in its place); the failure, if any.
    private func synchronizeData(covering seq: Int) -> AuditLogError? {
        do {
            if let syncSeam {
                try syncSeam(seq) { try self.fd.synchronizeData() }
            } else {
                try fd.synchronizeData()
            }
            return nil
        } catch let error as Errno {
            return AuditLogError.io(path: path, errno: error.rawValue)
        } catch {
            return AuditLogError.io(path: path, errno: EIO)
        }
    }

    // MARK: - Under the lock

    /// Chains and writes one line (not yet synced) and returns its seq; a
    /// describing line is noted for the flusher, its deadline set if it is
    /// the first one not yet durable.
    private func append(_ event: AuditEvent, to chain: inout Chain, describing: Bool = false) throws -> Int {
        if let failure = chain.failure { throw AuditLogError.failedEarlier(path: path, first: failure) }
        if let failure = durability.withLock({ $0.failure }) {
            chain.failure = "\(failure)"
            throw AuditLogError.failedEarlier(path: path, first: "\(failure)")
        }
        let record = AuditRecord(event: event, seq: chain.lastSeq + 1, prev: chain.lastHash)
        var line = record.lineBytes
        line.append(0x0a)
        do throws(Errno) {
            try fd.writeAll(line)
        } catch {
            let failure = AuditLogError.io(path: path, errno: error.rawValue)
            chain.failure = "\(failure)"
            throw failure
        }
        chain.lastSeq = record.seq
        chain.lastHash = record.hash
        durability.withLock { durability in
            durability.written = record.seq
            guard describing else { return }
            if !durability.describingPending {
                durability.describingDeadline = Date().addingTimeInterval(describingSyncDelay)
                durability.condition.broadcast()
            }
            durability.describing = record.seq
        }
        return record.seq
    }

    /// Signs the chain head and chains the checkpoint event (not yet synced).
    /// Its record, kept for the side file, links to the hash it signed, so
    /// that truncation of the log is detectable.
    private func appendCheckpoint(reason: String, to chain: inout Chain) throws -> AuditRecord {
        let signedSeq = chain.lastSeq
        let signedHash = chain.lastHash
        let signature = try key.sign(seq: signedSeq, hash: signedHash)
        let event = AuditEvent(time: clock.now(), kind: .auditCheckpoint, fields: [
            "signedSeq": String(signedSeq), "signedHash": signedHash, "signature": signature,
            "key": key.keyID, "reason": reason,
        ])
        let seq = try append(event, to: &chain)
        return AuditRecord(event: event, seq: seq, prev: signedHash)
    }

    /// Writes the newest checkpoint to its side file, atomically.
    private func replaceCheckpointFile(with record: AuditRecord) throws {
        let tmp = checkpointPath + ".tmp"
        var line = record.lineBytes
        line.append(0x0a)
        do throws(Errno) {
            let file = try OwnedFileDescriptor(opening: tmp, flags: O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                                               permissions: 0o600)
            try file.writeAll(line)
            try file.synchronize()
            try file.close()
        } catch {
            throw AuditLogError.io(path: tmp, errno: error.rawValue)
        }
        guard rename(tmp, checkpointPath) == 0 else { throw AuditLogError.io(path: checkpointPath, errno: errno) }
    }

    // MARK: - Opening

    /// Finds the last complete line and continues the chain from it; also
    /// says whether the file ended in a torn line (which is then ended with
    /// a newline so that the next event starts on a line of its own).
    private static func resumeChain(_ fd: borrowing OwnedFileDescriptor, path: String) throws -> (Chain, Bool) {
        do {
            let size = Int(try fd.size())
            guard size > 0 else { return (Chain(), false) }
            var window = min(size, 1 << 16)
            while true {
                var buffer = [UInt8](repeating: 0, count: window)
                let n = try buffer.withUnsafeMutableBytes { raw in
                    try fd.read(fromAbsoluteOffset: Int64(size - window), into: raw)
                }
                guard n == window else {
                    throw AuditLogError.malformed(path: path, line: 0, reason: "the log shrank while it was opened")
                }
                var end = buffer.count
                var tornTail = false
                if buffer.last != 0x0a {
                    // A line cut short (power loss mid-write); the verifier notes it.
                    tornTail = true
                    guard let lastNewline = buffer.lastIndex(of: 0x0a) else {
                        if window < size { window = min(size, window * 4); continue }
                        try fd.writeAll([0x0a])
                        return (Chain(), true)
                    }
                    end = lastNewline + 1
                    try fd.writeAll([0x0a])
                }
                let body = buffer[..<(end - 1)]
                if let start = body.lastIndex(of: 0x0a) {
                    return (try resume(from: Array(body[(start + 1)...]), line: nil, path: path), tornTail)
                }
                if window == size {
                    return (try resume(from: Array(body), line: 1, path: path), tornTail)
                }
                window = min(size, window * 4)
            }
        } catch let error as Errno {
            throw AuditLogError.io(path: path, errno: error.rawValue)
        }
    }

    private static func resume(from line: [UInt8], line number: Int?, path: String) throws -> Chain {
        let parsed: AuditRecord.Parsed
        do {
            parsed = try AuditRecord.parse(line: line)
        } catch let failure as AuditRecord.ParseFailure {
            throw AuditLogError.malformed(path: path, line: number ?? 0,
                                          reason: "the last line is \(failure.reason); run `gatehouse audit verify`")
        }
        return Chain(lastSeq: parsed.record.seq, lastHash: parsed.record.hash,
                     unsignedEvents: parsed.record.kind == AuditEventKind.auditCheckpoint.rawValue ? 0 : 1)
    }
}
