#if os(Linux)
import CSandbox
import Glibc
@testable import Sandbox
import XCTest

/// The filter's program, run through a small classic-BPF interpreter (the
/// subset the filter uses), so each verdict is checked without installing
/// anything in the test runner.
final class SeccompFilterTests: XCTestCase {
    private let allow = UInt32(SECCOMP_RET_ALLOW)
    private let kill = UInt32(SECCOMP_RET_KILL_PROCESS)
    private let x86_64 = gh_audit_arch_x86_64()

    override func setUpWithError() throws {
        #if !arch(x86_64)
        throw XCTSkip("the filter has a system call table for x86_64 only")
        #endif
    }

    func testAllowsExactlyTheListedCallsOfTheNativeABI() throws {
        let filter = try SeccompFilter(allowing: [.read, .write, .exit_group])
        XCTAssertEqual(run(filter, arch: x86_64, nr: Syscall.read.x86_64Number), allow)
        XCTAssertEqual(run(filter, arch: x86_64, nr: Syscall.exit_group.x86_64Number), allow)
        XCTAssertEqual(run(filter, arch: x86_64, nr: Syscall.ptrace.x86_64Number), kill)
        XCTAssertEqual(run(filter, arch: x86_64, nr: 999), kill)
    }

    func testKillsAnyOtherArchitectureAndTheX32ABI() throws {
        let filter = try SeccompFilter(allowing: [.read])
        // i386's read is 3 and its arch value differs; x32's read is 0 | bit 30.
        XCTAssertEqual(run(filter, arch: 0x4000_0003, nr: 3), kill)
        XCTAssertEqual(run(filter, arch: gh_audit_arch_aarch64(), nr: Syscall.read.x86_64Number), kill)
        XCTAssertEqual(run(filter, arch: x86_64, nr: gh_x32_syscall_bit() | Syscall.read.x86_64Number), kill)
    }

    func testEveryCallCanBeListedWithoutAJumpOverflowing() throws {
        let filter = try SeccompFilter(allowing: Syscall.allCases)
        XCTAssertLessThanOrEqual(filter.instructions.count, Int(BPF_MAXINSNS))
        for call in Syscall.allCases {
            XCTAssertEqual(run(filter, arch: x86_64, nr: call.x86_64Number), allow, "\(call)")
        }
    }

    func testListingACallTwiceTestsItOnce() throws {
        let filter = try SeccompFilter(allowing: [.read, .write, .read])
        XCTAssertEqual(filter.allowed, [.read, .write])
        XCTAssertEqual(filter.instructions.count, 6 + 2 * 2 + 1)
    }

    func testRestrictedCallsAreAllowedOnlyWithTheirListedFirstArgument() throws {
        let filter = try SeccompFilter(allowing: [.read], restricting: [.prctl: [15, 16], .clone: [0x3d_0f00]])
        let prctl = Syscall.prctl.x86_64Number, clone = Syscall.clone.x86_64Number
        XCTAssertEqual(run(filter, arch: x86_64, nr: prctl, argument: 15), allow)
        XCTAssertEqual(run(filter, arch: x86_64, nr: prctl, argument: 16), allow)
        XCTAssertEqual(run(filter, arch: x86_64, nr: prctl, argument: UInt64(PR_SET_DUMPABLE)), kill)
        // The same low word with a high word set is another value.
        XCTAssertEqual(run(filter, arch: x86_64, nr: prctl, argument: 1 << 32 | 15), kill)
        XCTAssertEqual(run(filter, arch: x86_64, nr: clone, argument: 0x3d_0f00), allow)
        XCTAssertEqual(run(filter, arch: x86_64, nr: clone, argument: UInt64(SIGCHLD)), kill)
        // The calls after the blocks are still reached.
        XCTAssertEqual(run(filter, arch: x86_64, nr: Syscall.read.x86_64Number), allow)
        XCTAssertEqual(run(filter, arch: x86_64, nr: Syscall.write.x86_64Number), kill)
    }

    func testFailingCallsReturnTheirErrno() throws {
        let filter = try SeccompFilter(allowing: [.clone3, .read], failing: [.clone3: ENOSYS])
        XCTAssertEqual(run(filter, arch: x86_64, nr: Syscall.clone3.x86_64Number), UInt32(SECCOMP_RET_ERRNO) | UInt32(ENOSYS))
        XCTAssertEqual(filter.allowed, [.read])
    }

    func testRulesThatCannotBeExpressedAreRefused() {
        XCTAssertThrowsError(try SeccompFilter(allowing: [], restricting: [.prctl: [1 << 40]]))
        XCTAssertThrowsError(try SeccompFilter(allowing: [], failing: [.clone3: 0]))
        XCTAssertThrowsError(try SeccompFilter(allowing: [], restricting: [.clone3: [0]], failing: [.clone3: ENOSYS]))
        XCTAssertThrowsError(try SeccompFilter(allowing: [], restricting: [.prctl: (0..<200).map(UInt64.init)]))
    }

    /// Spot checks of the generated table against the x86_64 ABI.
    func testTheTableHasTheKernelsNumbers() {
        XCTAssertEqual(Syscall.read.x86_64Number, 0)
        XCTAssertEqual(Syscall.execve.x86_64Number, 59)
        XCTAssertEqual(Syscall.ptrace.x86_64Number, 101)
        XCTAssertEqual(Syscall.seccomp.x86_64Number, 317)
        XCTAssertEqual(Syscall(rawValue: "clone3")?.x86_64Number, 435)
        XCTAssertEqual(Set(Syscall.allCases.map(\.x86_64Number)).count, Syscall.allCases.count)
    }

    /// What a confined process (the network side, the console) must never
    /// do itself, whatever measurement finds: change ids, run programs,
    /// trace or signal others, mount, load modules, reboot, or lift its own
    /// confinement.
    private let forbidden: Set<Syscall> = [
            .execve, .execveat, .ptrace, .process_vm_readv, .process_vm_writev, .mount, .umount2,
            .pivot_root, .chroot, .unshare, .setns, .setuid, .setgid, .setreuid, .setregid,
            .setresuid, .setresgid, .setgroups, .setfsuid, .setfsgid, .capset, .init_module,
            .finit_module, .delete_module, .kexec_load, .reboot, .bpf, .perf_event_open, .seccomp,
            .keyctl, .add_key, .request_key, .personality, .userfaultfd, .kill, .fork, .vfork,
    ]

    func testTheNetworkSideListHoldsNoPrivilegedCall() {
        XCTAssertEqual(Set(NetworkSideSyscalls.allowed).intersection(forbidden), [])
        XCTAssertEqual(Set(NetworkSideSyscalls.restricted.keys).intersection(forbidden), [])
        XCTAssertNoThrow(try NetworkSideSyscalls.filter())
    }

    /// The console process parses HTTP from strangers: the same calls are
    /// forbidden to it, and its sockets are limited to the families it uses.
    func testTheConsoleListHoldsNoPrivilegedCallAndNoRawSocket() throws {
        XCTAssertEqual(Set(WebConsoleSyscalls.allowed).intersection(forbidden), [])
        XCTAssertEqual(Set(WebConsoleSyscalls.restricted.keys).intersection(forbidden), [])
        let filter = try WebConsoleSyscalls.filter()
        let socket = Syscall.socket.x86_64Number
        XCTAssertEqual(run(filter, arch: x86_64, nr: socket, argument: UInt64(AF_INET6)), allow)
        XCTAssertEqual(run(filter, arch: x86_64, nr: socket, argument: UInt64(AF_PACKET)), kill)
        XCTAssertEqual(run(filter, arch: x86_64, nr: Syscall.execve.x86_64Number), kill)
        XCTAssertEqual(run(filter, arch: x86_64, nr: Syscall.accept4.x86_64Number), allow)
    }

    /// Runs the program on one `seccomp_data` (arch, nr and the first
    /// argument; the filter reads nothing else) and returns the `ret` value.
    private func run(_ filter: SeccompFilter, arch: UInt32, nr: UInt32, argument: UInt64 = 0) -> UInt32 {
        let program = filter.instructions
        var accumulator: UInt32 = 0
        var pc = 0
        while pc < program.count {
            let instruction = program[pc]
            switch Int32(instruction.code) {
            case BPF_LD | BPF_W | BPF_ABS:
                switch instruction.k {
                case gh_seccomp_data_nr_offset(): accumulator = nr
                case gh_seccomp_data_arch_offset(): accumulator = arch
                case gh_seccomp_data_args_offset(): accumulator = UInt32(truncatingIfNeeded: argument)
                case gh_seccomp_data_args_offset() + 4: accumulator = UInt32(truncatingIfNeeded: argument >> 32)
                default: XCTFail("load of offset \(instruction.k)"); return 0
                }
                pc += 1
            case BPF_JMP | BPF_JEQ | BPF_K:
                pc += 1 + Int(accumulator == instruction.k ? instruction.jt : instruction.jf)
            case BPF_JMP | BPF_JGE | BPF_K:
                pc += 1 + Int(accumulator >= instruction.k ? instruction.jt : instruction.jf)
            case BPF_RET | BPF_K:
                return instruction.k
            default:
                XCTFail("instruction code \(instruction.code) at \(pc)")
                return 0
            }
        }
        XCTFail("the program ran off its end")
        return 0
    }
}
#endif
