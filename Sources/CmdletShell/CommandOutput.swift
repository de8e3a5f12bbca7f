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
    /// A descriptor that becomes readable when the user typed something
    /// (the SSH socket), watched in the same poll() as the backend; -1: none.
    /// `inputReady` is then called, on the command's thread, and may
    /// interrupt the command through its `CancellationFlag` (Ctrl-C).
    var inputDescriptor: Int32 { get }
    func inputReady()
}

extension CommandOutput {
    public var terminalColumns: Int? { nil }
    public var receivesRawStdout: Bool { false }
    public func tick() {}
    public var secondsUntilNextTick: Double? { nil }
    public var inputDescriptor: Int32 { -1 }
    public func inputReady() {}
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
    var inputDescriptor: Int32 { inner.inputDescriptor }
    func inputReady() { inner.inputReady() }
}
