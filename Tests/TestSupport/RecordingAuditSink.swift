import Foundation
import GatehouseCore

/// Keeps every audit event in memory; `failing` makes `record` throw, to test
/// that callers fail closed when the audit log cannot be written.
public final class RecordingAuditSink: AuditSink, @unchecked Sendable {
    public struct WriteFailed: Error {}
    private let lock = NSLock()
    private var storage: [AuditEvent] = []
    private var shouldFail: Bool

    public init(failing: Bool = false) { shouldFail = failing }

    public var events: [AuditEvent] { lock.withLock { storage } }

    public func setFailing(_ failing: Bool) { lock.withLock { shouldFail = failing } }

    public func record(_ event: AuditEvent) throws {
        try lock.withLock {
            if shouldFail { throw WriteFailed() }
            storage.append(event)
        }
    }

    public func events(of kind: AuditEventKind) -> [AuditEvent] { events.filter { $0.kind == kind } }
}
