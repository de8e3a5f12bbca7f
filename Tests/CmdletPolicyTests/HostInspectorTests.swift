import CmdletPolicy
import Foundation
import Synchronization
import XCTest

/// A host made of tables: root-owned, non-writable files unless a test says
/// otherwise, and only the accounts a test lists.
struct FakeHost: HostInspector {
    var accounts: [String: HostAccount] = [:]
    var executables: Set<String>? = nil
    var statuses: [String: HostFileStatus] = [:]

    func account(named name: String) -> HostAccount? { accounts[name] }
    func isExecutableFile(_ path: String) -> Bool { executables?.contains(path) ?? true }
    func resolvingSymlinks(_ path: String) -> String { path }
    func status(of path: String) -> HostFileStatus? {
        statuses[path] ?? HostFileStatus(mode: 0o755, owner: 0, isDirectory: path != "/usr/bin/printf")
    }
    var effectiveUserID: Int { 1000 }
}

/// The loader asks the machine nothing itself: every account and file
/// question goes to the injected `HostInspector`.
final class HostInspectorTests: XCTestCase {
    let runAsCmdlets = baseCmdlets.replacingOccurrences(of: "      executable: /usr/bin/printf",
                                                        with: "      executable: /usr/bin/printf\n      runAs: svc-mail")

    func testRunAsIsResolvedByTheInjectedHost() throws {
        var host = FakeHost()
        host.accounts["svc-mail"] = HostAccount(uid: 4321, gid: 4322)
        let snapshot = try loadPolicy(cmdlets: runAsCmdlets, host: host)
        let runAs = try XCTUnwrap(snapshot.cmdlet(named: "Get-Thing")?.backend?.runAs)
        XCTAssertEqual([runAs.name, String(runAs.uid), String(runAs.gid)], ["svc-mail", "4321", "4322"])

        let errors = loadErrors(cmdlets: runAsCmdlets, host: FakeHost())
        XCTAssertTrue(errors.contains { $0.message == "runAs account 'svc-mail' does not exist on this host" }, "\(errors)")
    }

    func testMissingBackendAndSetprivComeFromTheInjectedHost() throws {
        var host = FakeHost()
        host.accounts["svc-mail"] = HostAccount(uid: 4321, gid: 4322)
        host.executables = []
        let errors = loadErrors(cmdlets: runAsCmdlets, host: host)
        XCTAssertTrue(errors.contains { $0.message.contains("runAs needs \(RunAsAccount.setprivPath)") }, "\(errors)")
        let snapshot = try loadPolicy(host: host)
        XCTAssertTrue(snapshot.warnings.contains { $0.message.contains("'/usr/bin/printf' does not exist") },
                      "\(snapshot.warnings)")
    }

    func testWritableDirectoryAboveTheBackendComesFromTheInjectedHost() {
        var host = FakeHost()
        host.statuses["/usr/bin"] = HostFileStatus(mode: 0o777, owner: 0, isDirectory: true)
        XCTAssertTrue(loadErrors(host: host).contains { $0.message.contains("directory '/usr/bin' above backend") })
        host.statuses["/usr/bin"] = HostFileStatus(mode: 0o1777, owner: 0, isDirectory: true)
        XCTAssertNoThrow(try loadPolicy(host: host), "a sticky directory is not writable by everyone in effect")
    }

    /// `getpwnam_r` from many threads at once: every answer is right, for an
    /// account that exists and one that does not.
    func testSystemAccountLookupsFromManyThreads() {
        let host = SystemHostInspector()
        let wrong = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 400) { i in
            if i % 2 == 0 {
                let root = host.account(named: "root")
                if root != HostAccount(uid: 0, gid: 0) { wrong.withLock { $0.append("root: \(String(describing: root))") } }
            } else if let missing = host.account(named: "gatehouse-no-such-account-\(i % 7)") {
                wrong.withLock { $0.append("missing account found: \(missing)") }
            }
        }
        XCTAssertEqual(wrong.withLock { $0 }, [])
    }
}
