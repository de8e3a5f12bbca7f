// `gatehouse sessions list --live`, `gatehouse sessions kill` and
// `gatehouse users unlock`: operator control of a running daemon through its
// control socket (<state dir>/control.sock, see Gateway.ControlSocket).
import ArgumentParser
import Foundation
import Gateway

struct DaemonLocation: ParsableArguments {
    @Option(name: .long, help: "The daemon's state directory (holds control.sock).")
    var stateDir: String = "/var/lib/gatehouse"

    func request(_ line: String) throws -> [String: Any] {
        let dir = URL(fileURLWithPath: stateDir).standardizedFileURL.path
        let answer: [String: Any]
        do {
            answer = try ControlSocket.request(stateDirectory: dir, line)
        } catch {
            FileHandle.standardError.write(Data("gatehouse: \(error)\n".utf8))
            throw ExitCode(2)
        }
        guard answer["ok"] as? Bool == true else {
            FileHandle.standardError.write(Data("gatehouse: \(answer["error"] as? String ?? "request failed")\n".utf8))
            throw ExitCode(1)
        }
        return answer
    }
}

struct Sessions: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Live sessions on this node: list them, or end one (NIST AC-17(9)).",
        subcommands: [List.self, Kill.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List sessions; --live asks the running daemon.")

        @Flag(name: .long, help: "Live sessions of the running daemon on this node.")
        var live = false

        @Flag(name: .long, help: "Print the daemon's JSON answer.")
        var json = false

        @OptionGroup var location: DaemonLocation

        func run() throws {
            guard live else {
                throw ValidationError("only --live is available here: recorded sessions are listed by the transcript tools")
            }
            let answer = try location.request("list")
            if json {
                let data = try JSONSerialization.data(withJSONObject: answer, options: [.sortedKeys, .prettyPrinted])
                print(String(decoding: data, as: UTF8.self))
                return
            }
            let sessions = answer["sessions"] as? [[String: Any]] ?? []
            print("ID                        USER         SOURCE                  STARTED               IDLE  RUNNING")
            for s in sessions {
                func f(_ k: String) -> String { "\(s[k] ?? "")" }
                print([f("id").padding(toLength: 25, withPad: " ", startingAt: 0),
                       f("user").padding(toLength: 12, withPad: " ", startingAt: 0),
                       f("source").padding(toLength: 23, withPad: " ", startingAt: 0),
                       f("started").padding(toLength: 21, withPad: " ", startingAt: 0),
                       (f("idleSeconds") + "s").padding(toLength: 5, withPad: " ", startingAt: 0),
                       (s["commandRunning"] as? Bool == true) ? "yes" : "no"].joined(separator: " "))
            }
            let locked = answer["lockedUsers"] as? [String] ?? []
            print("\(sessions.count) live session(s) on \(answer["node"] ?? "?")"
                  + (locked.isEmpty ? "" : "; locked users: \(locked.joined(separator: ", "))"))
        }
    }

    struct Kill: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "End a live session: its running command is stopped, its user told why, and the kill audited.")

        @Argument(help: "Session ID (from `gatehouse sessions list --live`).")
        var id: String

        @Option(name: .long, help: "Why; shown to the user and written to the audit log.")
        var reason: String

        @OptionGroup var location: DaemonLocation

        func run() throws {
            guard id.range(of: "^[A-Za-z0-9._-]{1,64}$", options: .regularExpression) != nil else {
                throw ValidationError("'\(id)' is not a session ID")
            }
            let text = reason.replacingOccurrences(of: "\n", with: " ")
            guard !text.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError("--reason must not be empty") }
            _ = try location.request("kill \(id) \(text)")
            print("session \(id) ended")
        }
    }
}

struct Users: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "User lockouts on this node.",
        subcommands: [Unlock.self])

    struct Unlock: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Clear a user's lockout after repeated failed second factors (audited).")

        @Argument(help: "User name.")
        var name: String

        @OptionGroup var location: DaemonLocation

        func run() throws {
            let answer = try location.request("unlock \(name)")
            print(answer["wasLocked"] as? Bool == true ? "\(name) unlocked" : "\(name) was not locked")
        }
    }
}
