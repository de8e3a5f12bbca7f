import Foundation
import GatehouseCore
import Synchronization

/// Keeps every audit event in memory; `failing` makes `record` throw, to test
/// that callers fail closed when the audit log cannot be written.
public final class RecordingAuditSink: AuditSink, Sendable {
    public struct WriteFailed: Error {}
    private let state: Mutex<(events: [AuditEvent], failing: Bool)>

    public init(failing: Bool = false) { state = Mutex(([], failing)) }

    public var events: [AuditEvent] { state.withLock { $0.events } }

    public func setFailing(_ failing: Bool) { state.withLock { $0.failing = failing } }

    public func record(_ event: AuditEvent) throws {
        try state.withLock {
            if $0.failing { throw WriteFailed() }
            $0.events.append(event)
        }
    }

    public func events(of kind: AuditEventKind) -> [AuditEvent] { events.filter { $0.kind == kind } }
}
