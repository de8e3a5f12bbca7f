import Foundation
import GatehouseCore
import Lockbox
import Prometheus

/// The node's Prometheus figures (issue 13). Counted from the audit events
/// as they are written (`MeteredAuditSink`), so a figure can never disagree
/// with the audit log about what happened; the gauges are read when scraped.
/// No label carries a user, a session or a line: the figures say how busy
/// the node is, not who did what.
public final class GatewayMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let loginSuccess, loginFailure: Counter
    private let commandsAllowed, commandsDenied: Counter
    private let commandDuration: ValueHistogram
    private let auditWriteFailures: Counter
    private let liveSessions: Gauge
    private let lockboxRequests: [RequestState: Gauge]

    public init() {
        func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "gatehouse", metricName: metric, unitName: unit, helpText: help)
        }
        let logins = name("logins", "total", "Logins by result: success counts completed logins (both factors), "
                          + "failure each refused attempt of a method (publickey or keyboard-interactive).")
        loginSuccess = registry.makeCounter(descriptor: logins, labels: [("result", "success")])
        loginFailure = registry.makeCounter(descriptor: logins, labels: [("result", "failure")])
        let commands = name("commands", "total", "Command lines by the gate's decision.")
        commandsAllowed = registry.makeCounter(descriptor: commands, labels: [("decision", "allowed")])
        commandsDenied = registry.makeCounter(descriptor: commands, labels: [("decision", "denied")])
        commandDuration = registry.makeValueHistogram(
            descriptor: name("command_duration", "seconds",
                             "From the allowed event to the finished event of a command (backend run and output)."),
            buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300])
        auditWriteFailures = registry.makeCounter(
            descriptor: name("audit_write_failures", "total", "Audit events the log could not take (sessions then end)."))
        liveSessions = registry.makeGauge(descriptor: name("sessions", "live", "Live sessions on this node."))
        let requests = name("lockbox", "requests", "Lockbox requests by state.")
        var byState: [RequestState: Gauge] = [:]
        for state in RequestState.allCases {
            byState[state] = registry.makeGauge(descriptor: requests, labels: [("state", state.rawValue)])
        }
        lockboxRequests = byState
    }

    /// One audit event written (`failed`: the log refused it).
    func observe(_ event: AuditEvent, failed: Bool) {
        if failed {
            auditWriteFailures.increment()
            return
        }
        switch event.kind {
        // A login's first factor is a partial success, and every client
        // first asks for method "none": neither is a login's result.
        case .authSuccess where event.fields["partial"] != "true": loginSuccess.increment()
        case .authFailure where event.fields["method"] != "none": loginFailure.increment()
        case .commandAllowed: commandsAllowed.increment()
        case .commandDenied: commandsDenied.increment()
        case .commandFinished:
            if let ms = event.fields["durationMs"].flatMap(Double.init), ms >= 0 { commandDuration.record(ms / 1000) }
        default: break
        }
    }

    /// The exposition text, with the gauges read now.
    public func scrape(liveSessions live: Int, lockbox: Lockbox?) -> [UInt8] {
        liveSessions.set(Double(live))
        if let counts = try? lockbox?.requestCounts() {
            for (state, gauge) in lockboxRequests { gauge.set(Double(counts[state] ?? 0)) }
        }
        return registry.emitToBuffer()
    }
}

/// The audit sink the gateway writes through: the chained log, and the
/// metrics counted from what it took.
struct MeteredAuditSink: AuditSink {
    let log: AuditSink
    let metrics: GatewayMetrics
    var afterWrite: (@Sendable () -> Void)? = nil

    func record(_ event: AuditEvent) throws {
        do {
            try log.record(event)
        } catch {
            metrics.observe(event, failed: true)
            throw error
        }
        metrics.observe(event, failed: false)
        afterWrite?()
    }
}
