// `gatehouse sessions list --live`, `gatehouse sessions kill` and
// `gatehouse users unlock`: operator control of a running daemon through its
// control socket (<state dir>/control.sock, see Gateway.ControlSocket).
import ArgumentParser
import Foundation
import Gateway

struct DaemonLocation: ParsableArguments {
    @Option(name: .long, help: "The daemon's state directory (holds control.sock).")
    var stateDir: String = "/var/lib/gatehouse"

    /// Sends `request` to the daemon; returns its answer unless it refused.
    /// Exit status 2: the daemon cannot be reached; 1: it refused.
    func send(_ request: ControlRequest) throws -> ControlResponse {
        if let problem = request.problem { throw ValidationError(problem) }
        let dir = URL(fileURLWithPath: stateDir).standardizedFileURL.path
        let answer: ControlResponse
        do {
            answer = try ControlSocket.request(stateDirectory: dir, request)
        } catch {
            FileHandle.standardError.write(Data("gatehouse: \(error)\n".utf8))
            throw ExitCode(2)
        }
        if case .refused(_, let message) = answer {
            FileHandle.standardError.write(Data("gatehouse: \(message)\n".utf8))
            throw ExitCode(1)
        }
        return answer
    }

    /// A successful answer of the wrong kind: a daemon of another version.
    func unexpected(_ answer: ControlResponse) -> Error {
        FileHandle.standardError.write(Data("gatehouse: unexpected answer from the daemon: \(answer)\n".utf8))
        return ExitCode(2)
    }
}

/// Live-session control; `Sessions` (ReviewCommands.swift) is the one
/// `gatehouse sessions` command: its `list --live` runs `LiveSessions.List`
/// and `kill` is `LiveSessions.Kill`.
struct LiveSessions: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "live-sessions",
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
            let answer = try location.send(.list)
            guard case .sessions(let listing) = answer else { throw location.unexpected(answer) }
            if json {
                print(String(decoding: try ControlWire.line(listing, pretty: true).dropLast(), as: UTF8.self))
                return
            }
            let iso = ISO8601DateFormatter()
            print("ID                        USER         SOURCE                  STARTED               IDLE  RUNNING")
            for s in listing.sessions {
                print([s.id.padding(toLength: 25, withPad: " ", startingAt: 0),
                       s.user.padding(toLength: 12, withPad: " ", startingAt: 0),
                       s.source.padding(toLength: 23, withPad: " ", startingAt: 0),
                       iso.string(from: s.started).padding(toLength: 21, withPad: " ", startingAt: 0),
                       "\(s.idleSeconds)s".padding(toLength: 5, withPad: " ", startingAt: 0),
                       s.commandRunning ? "yes" : "no"].joined(separator: " "))
            }
            let locked = listing.lockedUsers
            print("\(listing.sessions.count) live session(s) on \(listing.node)"
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
            // One line on the user's terminal: the daemon would escape a newline.
            let answer = try location.send(.kill(session: id, reason: reason.replacingOccurrences(of: "\n", with: " ")))
            guard case .killed = answer else { throw location.unexpected(answer) }
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
            let answer = try location.send(.unlock(user: name))
            guard case .unlocked(_, let wasLocked) = answer else { throw location.unexpected(answer) }
            print(wasLocked ? "\(name) unlocked" : "\(name) was not locked")
        }
    }
}
