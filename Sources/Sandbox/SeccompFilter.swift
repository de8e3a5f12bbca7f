#if os(Linux)
import CSandbox
import Glibc

/// A seccomp BPF program that lets through only the listed system calls of
/// the native 64-bit ABI and kills the whole process on anything else.
///
/// The program, in order:
/// 1. `seccomp_data.arch` must be `AUDIT_ARCH_X86_64`, else kill: a 32-bit
///    `int 0x80` call has other numbers, and the list would mean other
///    calls there.
/// 2. `seccomp_data.nr` must be below `__X32_SYSCALL_BIT`, else kill: x32
///    calls report x86_64's arch value.
/// 3. Calls that fail with an errno instead of running (`failing`): glibc
///    falls back from `clone3` to `clone` on `ENOSYS`, and only `clone`'s
///    flags are registers a filter can read.
/// 4. Calls allowed only with certain first arguments (`restricted`): one
///    block per call that tests both 32-bit words of `args[0]` and ends in
///    its own kill.
/// 5. One `jeq nr` / `ret ALLOW` pair per allowed call.
/// 6. `ret SECCOMP_RET_KILL_PROCESS`: the default. Kill the process, not the
///    thread, so no half-dead process goes on serving other sessions.
///
/// Every jump goes forward at most a block's length, so no 8-bit jump
/// offset of classic BPF can overflow however long the lists grow.
public struct SeccompFilter: Sendable {
    /// The calls allowed whatever their arguments, in the order the program tests them.
    public let allowed: [Syscall]
    /// The classic BPF instructions `Sandbox.enter` hands to seccomp(2).
    let instructions: [sock_filter]

    /// Builds the program for this machine's architecture; refuses on any
    /// architecture it has no number table for.
    /// - Parameters:
    ///   - syscalls: allowed with any arguments.
    ///   - restricted: allowed only when the first argument is one of the
    ///     values (prctl's option, clone's flags).
    ///   - failing: not run; the caller sees -1 with this errno.
    public init(allowing syscalls: some Sequence<Syscall>,
                restricting restricted: [Syscall: [UInt64]] = [:],
                failing: [Syscall: Int32] = [:]) throws(SandboxError) {
        guard let (arch, number) = Self.nativeTable() else { throw .unsupportedArchitecture(Self.machineName()) }
        if let both = restricted.keys.first(where: { failing[$0] != nil }) {
            throw .invalidRule("\(both) is both restricted and failing")
        }
        var seen = Set<Syscall>()
        allowed = syscalls.filter { restricted[$0] == nil && failing[$0] == nil && seen.insert($0).inserted }

        let kill = UInt32(SECCOMP_RET_KILL_PROCESS)
        let load = UInt16(BPF_LD | BPF_W | BPF_ABS), ret = UInt16(BPF_RET | BPF_K)
        let equal = UInt16(BPF_JMP | BPF_JEQ | BPF_K)
        var program: [sock_filter] = [
            Self.statement(load, gh_seccomp_data_arch_offset()),
            Self.jump(equal, arch, ifTrue: 1, ifFalse: 0),
            Self.statement(ret, kill),
            Self.statement(load, gh_seccomp_data_nr_offset()),
            Self.jump(UInt16(BPF_JMP | BPF_JGE | BPF_K), gh_x32_syscall_bit(), ifTrue: 0, ifFalse: 1),
            Self.statement(ret, kill),
        ]
        for (call, error) in failing.sorted(by: { number($0.key) < number($1.key) }) {
            guard (1...4095).contains(error) else { throw .invalidRule("\(call): errno \(error) is out of range") }
            program.append(Self.jump(equal, number(call), ifTrue: 0, ifFalse: 1))
            program.append(Self.statement(ret, UInt32(SECCOMP_RET_ERRNO) | UInt32(error)))
        }
        let argumentLow = gh_seccomp_data_args_offset(), argumentHigh = gh_seccomp_data_args_offset() + 4
        for (call, values) in restricted.sorted(by: { number($0.key) < number($1.key) }) {
            let distinct = Array(Set(values)).sorted()
            // Whole block: nr test, high-word load and test, low-word load,
            // a pair per value, the block's own kill.
            let afterNumberTest = 3 + 2 * distinct.count + 1
            guard afterNumberTest <= Int(UInt8.max) else { throw .invalidRule("\(call): too many permitted values") }
            guard distinct.allSatisfy({ $0 >> 32 == 0 }) else { throw .invalidRule("\(call): values must fit 32 bits") }
            program.append(Self.jump(equal, number(call), ifTrue: 0, ifFalse: UInt8(afterNumberTest)))
            // Every listed value has a high word of 0, so any other high word
            // goes to the block's kill.
            program.append(Self.statement(load, argumentHigh))
            program.append(Self.jump(equal, 0, ifTrue: 0, ifFalse: UInt8(1 + 2 * distinct.count)))
            program.append(Self.statement(load, argumentLow))
            for value in distinct {
                program.append(Self.jump(equal, UInt32(value), ifTrue: 0, ifFalse: 1))
                program.append(Self.statement(ret, UInt32(SECCOMP_RET_ALLOW)))
            }
            program.append(Self.statement(ret, kill))
        }
        for call in allowed {
            program.append(Self.jump(equal, number(call), ifTrue: 0, ifFalse: 1))
            program.append(Self.statement(ret, UInt32(SECCOMP_RET_ALLOW)))
        }
        program.append(Self.statement(ret, kill))
        guard program.count <= Int(BPF_MAXINSNS) else { throw .filterTooLong(instructions: program.count) }
        instructions = program
    }

    /// This machine's `seccomp_data.arch` and system call numbers, or nil
    /// where there is no table (every architecture but x86_64).
    static func nativeTable() -> (arch: UInt32, number: (Syscall) -> UInt32)? {
        #if arch(x86_64)
        return (gh_audit_arch_x86_64(), { $0.x86_64Number })
        #else
        return nil
        #endif
    }

    /// `BPF_STMT(code, k)`.
    private static func statement(_ code: UInt16, _ k: UInt32) -> sock_filter {
        sock_filter(code: code, jt: 0, jf: 0, k: k)
    }

    /// `BPF_JUMP(code, k, jt, jf)`: offsets count instructions after this one.
    private static func jump(_ code: UInt16, _ k: UInt32, ifTrue: UInt8, ifFalse: UInt8) -> sock_filter {
        sock_filter(code: code, jt: ifTrue, jf: ifFalse, k: k)
    }

    /// `uname(2)`'s machine field, for the refusal's message.
    static func machineName() -> String {
        var names = utsname()
        guard uname(&names) == 0 else { return "this architecture" }
        return withUnsafeBytes(of: names.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
}
#endif
