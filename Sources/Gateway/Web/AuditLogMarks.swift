import Foundation
import Synchronization

/// Where records of the audit log start, every `stride`-th record, with its
/// sequence number and time: learned as the log is read (it only grows;
/// a shorter file starts the marks over), so an activity page reads from
/// near its place instead of from the start of the log.
///
/// Seeking by sequence number (a page's cursor) is exact. Seeking by time (a first page) trusts the log's
/// times to rise (one clock writes them, in chain order) only up to
/// `timeSlack`: the mark chosen is older than the window's start by at
/// least that, so an event stamped a little earlier than one before it is
/// still read.
final class AuditLogMarks: Sendable {
    struct Mark: Equatable, Sendable {
        let seq: Int
        let time: Date
        let offset: UInt64
    }

    static let timeSlack: TimeInterval = 600
    let stride: Int
    private let state = Mutex((marks: [Mark](), counted: 0, scannedTo: UInt64(0)))

    init(stride: Int = 256) {
        self.stride = stride
    }

    /// Records that a record with `seq` and `time` starts at `offset`; records
    /// must be noted in file order, each once (`scannedTo` says how far).
    func note(seq: Int, time: Date, offset: UInt64, end: UInt64) {
        state.withLock { s in
            guard offset >= s.scannedTo else { return }
            if s.counted % stride == 0 { s.marks.append(Mark(seq: seq, time: time, offset: offset)) }
            s.counted += 1
            s.scannedTo = end
        }
    }

    /// How far the log has been noted.
    var scannedTo: UInt64 { state.withLock { $0.scannedTo } }

    /// The log was replaced or cut: forget everything.
    func reset() { state.withLock { $0 = ([], 0, 0) } }

    /// The offset to start reading at: with a cursor (`after` > 0, the
    /// sequence number the last page ended at), the mark at or before the
    /// next record, exactly; without one, a mark older than the window's
    /// `start` by `timeSlack`. 0 when no mark is early enough.
    func start(after: Int, from start: Date) -> UInt64 {
        state.withLock { s in
            if after > 0 { return s.marks.last { $0.seq <= after + 1 }?.offset ?? 0 }
            return s.marks.last { $0.time <= start - Self.timeSlack }?.offset ?? 0
        }
    }
}
