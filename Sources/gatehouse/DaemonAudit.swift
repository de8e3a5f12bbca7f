import Foundation
import Gateway

/// An operator's change made by this CLI (`gatehouse mfa`, `gatehouse
/// api-token`) is audited by the running daemon, which alone holds the audit
/// chain, over its control socket. Without a daemon the change stands,
/// unaudited, and stderr says so.
enum DaemonAudit {
    /// The kind the daemon's audit log recorded, or nil once the warning
    /// (naming `command`) is on stderr.
    static func report(_ request: ControlRequest, stateDirectory: String, command: String) -> String? {
        let dir = URL(fileURLWithPath: stateDirectory).standardizedFileURL.path
        let problem: String
        do {
            switch try ControlSocket.request(stateDirectory: dir, request) {
            case .audited(let kind): return kind
            case .refused(_, let message): problem = message
            default: problem = "unexpected answer from the daemon"
            }
        } catch {
            problem = "no running gatehoused answered on \(ControlSocket.path(stateDirectory: dir)) (\(error))"
        }
        FileHandle.standardError.write(Data("gatehouse \(command): warning: the change is made but not audited: \(problem)\n".utf8))
        return nil
    }
}
