import Foundation

/// The source of "now" for every time-dependent decision (grant expiry, idle
/// and lifetime limits). Production uses `SystemClock`; unit tests use a manual
/// clock from `TestSupport`, so no test ever sleeps to observe an expiry.
public protocol Clock: Sendable {
    func now() -> Date
}

public struct SystemClock: Clock {
    public init() {}
    public func now() -> Date { Date() }
}
