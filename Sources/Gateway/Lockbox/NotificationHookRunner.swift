import Foundation
import GatehouseCore
import Lockbox
import Logging

/// Runs the policy's notification hook on every Lockbox event: the event as
/// one JSON object on stdin, a clean environment, a timeout. It runs off the
/// session's thread, one event at a time in order; a failure or a timeout is
/// logged and never affects the request (mail or chat being down must not
/// block an approval).
final class NotificationHookRunner: LockboxNotifier, Sendable {
    private let hook: NotificationHook
    private let logger: Logger
    private let queue = DispatchQueue(label: "gatehouse.lockbox.notify")

    init(hook: NotificationHook, logger: Logger) {
        self.hook = hook
        self.logger = logger
    }

    func notify(_ event: AuditEvent) {
        var object: [String: Any] = ["time": ISO8601DateFormatter().string(from: event.time), "kind": event.kind.rawValue,
                                     "fields": event.fields]
        if let user = event.user { object["user"] = user }
        if let session = event.session { object["session"] = session.rawValue }
        guard var line = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        line.append(0x0a)
        let data = line
        queue.async { [hook, logger] in Self.run(hook, input: data, logger: logger) }
    }

    static func run(_ hook: NotificationHook, input: Data, logger: Logger) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: hook.argv[0])
        process.arguments = Array(hook.argv.dropFirst())
        process.environment = ["PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"]
        let stdin = Pipe()
        process.standardInput = stdin
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        do {
            try process.run()
        } catch {
            logger.warning("Lockbox notification hook could not start: \(error)")
            return
        }
        try? stdin.fileHandleForWriting.write(contentsOf: input)
        try? stdin.fileHandleForWriting.close()
        if done.wait(timeout: .now() + .seconds(hook.timeoutSeconds)) == .timedOut {
            process.terminate()
            kill(process.processIdentifier, SIGKILL)
            logger.warning("Lockbox notification hook timed out after \(hook.timeoutSeconds)s and was killed")
            return
        }
        if process.terminationStatus != 0 {
            logger.warning("Lockbox notification hook failed with status \(process.terminationStatus)")
        }
    }
}
