import ArgumentParser
import ConsoleCore
import Directory
import Foundation
import Gateway

/// `gatehouse api-token create|list|revoke`: the activity API's clients.
/// A token is printed once, at creation; only its SHA-256 is kept, in
/// `<state dir>/api-tokens.sqlite` (0600, the monitor's), never in the
/// Lockbox store. Tokens are read-only and see only their tenants.
struct APITokens: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api-token", abstract: "Create, list and revoke activity API tokens (tenant-scoped, read-only).",
        subcommands: [Create.self, List.self, Revoke.self])

    /// The daemon audits the change (`DaemonAudit`), as for `gatehouse mfa`.
    static func audit(_ request: ControlRequest, stateDirectory: String) -> String {
        DaemonAudit.report(request, stateDirectory: stateDirectory, command: "api-token")
            .map { "the audit log records \($0)" } ?? "not audited: see the warning"
    }

    struct Store: ParsableArguments {
        @Option(name: .long, help: "The gateway's state directory (holds api-tokens.sqlite).")
        var stateDir: String = "/var/lib/gatehouse"

        func open() throws -> APITokenStore {
            guard FileManager.default.fileExists(atPath: stateDir) else {
                throw ValidationError("no state directory at \(stateDir)")
            }
            return try APITokenStore(path: stateDir + "/" + APITokenStore.fileName)
        }
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a client's token and print it once.",
            discussion: "Each --tenant must be a tenant of the directory; '*' gives every tenant and the events that name none (an operator's token).")
        @OptionGroup var store: Store
        @Option(name: .long, help: "The client's name (letters, digits, '.', '_', '-').") var name: String
        @Option(name: .long, help: "A tenant whose events the token may read (repeat for more).") var tenant: [String] = []
        @Option(name: .long, help: "The directory file whose tenants are checked (default <state dir>/directory.yaml, else /etc/gatehouse/policies/directory.yaml).")
        var directory: String?

        func run() throws {
            guard !tenant.isEmpty else { throw ValidationError("name at least one --tenant (or '*' for all)") }
            let file = directory ?? [store.stateDir + "/directory.yaml", "/etc/gatehouse/policies/directory.yaml"]
                .first { FileManager.default.fileExists(atPath: $0) }
            guard let file else { throw ValidationError("no directory file to check the tenants against; pass --directory") }
            let known = Set(try DirectoryLoader.load(file: file).tenants.map { $0.name })
            for t in tenant where t != "*" && !known.contains(t) {
                throw ValidationError("no tenant '\(t)' in \(file) (tenants: \(known.sorted().joined(separator: ", ")))")
            }
            let (client, token) = try store.open().create(name: name, tenants: tenant, now: Date())
            print("Created API client \(client.name) (id \(client.id)) for tenants: \(client.tenants.joined(separator: ", ")); "
                  + APITokens.audit(.apiTokenChanged(name: client.name, tenants: client.tenants, revoked: false),
                                    stateDirectory: store.stateDir) + ".")
            print("Its token is shown only this once; keep it secret:")
            print(token)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List clients (never their tokens).")
        @OptionGroup var store: Store

        func run() throws {
            let clients = try store.open().list()
            if clients.isEmpty { print("No API clients."); return }
            for c in clients {
                let state = c.revoked.map { "revoked \(ISO8601DateFormatter().string(from: $0))" } ?? "active"
                print("\(c.id)  \(c.name)  tenants: \(c.tenants.joined(separator: ","))  created \(ISO8601DateFormatter().string(from: c.created))  \(state)")
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a client's token; it stops working at once.")
        @OptionGroup var store: Store
        @Option(name: .long, help: "The client's name.") var name: String

        func run() throws {
            try store.open().revoke(name: name, now: Date())
            print("Revoked API client \(name); "
                  + APITokens.audit(.apiTokenChanged(name: name, tenants: [], revoked: true), stateDirectory: store.stateDir) + ".")
        }
    }
}
