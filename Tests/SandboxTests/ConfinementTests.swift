#if os(Linux)
import Foundation
import Glibc
import Sandbox
import TestSupport
import XCTest

/// Privilege drop and sandbox, each in a `sandbox-helper` process: both are
/// irreversible, and a disallowed call kills the whole process.
final class ConfinementTests: XCTestCase {
    /// `nobody` (uid and gid 65534 on Debian): an account that exists on
    /// every test machine and owns nothing.
    private let account = "nobody"
    private var uid: String = ""
    private var gid: String = ""

    override func setUpWithError() throws {
        #if !arch(x86_64)
        throw XCTSkip("the filter has a system call table for x86_64 only")
        #endif
        guard geteuid() == 0 else {
            throw XCTSkip("privilege drop needs root (this runner is uid \(geteuid()))")
        }
        guard let entry = try? SandboxAccount(named: account) else { throw XCTSkip("no account \(account) on this machine") }
        uid = String(entry.uid)
        gid = String(entry.gid)
    }

    private func helper(_ arguments: String...) throws -> HelperProcess.Run {
        try HelperProcess("sandbox-helper").run(arguments)
    }

    func testTheConfinedProcessHasTheAccountsIdsNoCapabilityAndAFilter() throws {
        let run = try helper("confine", account)
        XCTAssertFalse(run.crashed, "\(run)")
        let fields = Dictionary(run.lines.compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }, uniquingKeysWith: { $1 })
        XCTAssertEqual(fields["Uid"], "\(uid) \(uid) \(uid) \(uid)", "\(run)")
        XCTAssertEqual(fields["Gid"], "\(gid) \(gid) \(gid) \(gid)", "\(run)")
        XCTAssertEqual(fields["Groups"], gid, "\(run)")
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            XCTAssertEqual(fields[set], "0000000000000000", "\(set): \(run)")
        }
        XCTAssertEqual(fields["NoNewPrivs"], "1", "\(run)")
        XCTAssertEqual(fields["Seccomp"], "2", "\(run)")
        XCTAssertEqual(fields["Seccomp_filters"], "1", "\(run)")
    }

    /// PR_SET_DUMPABLE 0: no ptrace and no /proc/<pid>/mem from the same uid, no core.
    func testEnterMakesTheProcessNotDumpable() throws {
        let run = try helper("not-dumpable")
        XCTAssertEqual(run.lines, ["dumpable 1 then 0"], "\(run)")
    }

    func testSetuidZeroFailsAfterTheDrop() throws {
        let run = try helper("drop", account)
        XCTAssertEqual(run.lines, ["setuid(0) rc -1 errno \(EPERM)"], "\(run)")
    }

    /// Capabilities are per thread: a thread that existed before the drop
    /// would keep its bounding and inheritable sets, so the drop refuses.
    func testTheDropRefusesWhileAnotherThreadRuns() throws {
        let run = try helper("drop-after-thread", account)
        XCTAssertEqual(run.lines.count, 1, "\(run)")
        XCTAssertTrue(run.lines.first?.hasPrefix("refused: 2 threads exist") == true, "\(run)")
    }

    func testAllowedCallsStillWorkInTheSandbox() throws {
        let run = try helper("allowed", account)
        XCTAssertFalse(run.crashed, "\(run)")
        XCTAssertEqual(run.lines, ["allowed ok"], "\(run)")
    }

    func testADisallowedCallKillsTheProcessWithSIGSYS() throws {
        for call in ["mount", "setuid", "execve", "fork", "dumpable"] {
            let run = try helper("forbidden", call, account)
            XCTAssertTrue(run.crashed, "\(call): \(run)")
            XCTAssertEqual(run.status, SIGSYS, "\(call): \(run)")
            // It got as far as the call: confined, and nothing after it.
            XCTAssertEqual(run.lines, ["confined"], "\(call): \(run)")
        }
    }

    /// SECCOMP_FILTER_FLAG_TSYNC: a thread that was already running when the
    /// filter went in has it too, with no-new-privs, and dies on a forbidden call.
    func testAThreadStartedBeforeEnterIsConfinedToo() throws {
        let run = try helper("tsync", account)
        XCTAssertEqual(run.lines, ["confined", "thread NoNewPrivs: 1", "thread Seccomp: 2"], "\(run)")
        XCTAssertTrue(run.crashed, "\(run)")
        XCTAssertEqual(run.status, SIGSYS, "\(run)")
    }
}
#endif
