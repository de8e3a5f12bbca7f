#if os(Linux)
import CSandbox
import Glibc

/// A seccomp BPF program that lets through only the listed system calls of
/// the native 64-bit ABI and kills the whole process on anything else.
///
/// The program, in order:
/// 1. `seccomp_data.arch` must be `AUDIT_ARCH_X86_64`, else kill: a 32-bit
///    `int 0x80` call has other numbers, and the list below would mean
///    other calls there.
/// 2. `seccomp_data.nr` must be below `__X32_SYSCALL_BIT`, else kill: x32
///    calls report x86_64's arch value.
/// 3. One `jeq nr` / `ret ALLOW` pair per allowed call, each jumping at most
///    one instruction, so no jump offset (8 bits in classic BPF) can
///    overflow however long the list grows.
/// 4. `ret SECCOMP_RET_KILL_PROCESS`: the default. Kill the process, not the
///    thread, so no half-dead process goes on serving other sessions.
public struct SeccompFilter: Sendable {
    /// The allowed calls, in the order the program tests them.
    public let allowed: [Syscall]
    /// The classic BPF instructions `Sandbox.enter` hands to seccomp(2).
    let instructions: [sock_filter]

    /// Builds the program for this machine's architecture; refuses on any
    /// architecture it has no number table for.
    public init(allowing syscalls: some Sequence<Syscall>) throws(SandboxError) {
        #if arch(x86_64)
        let arch = gh_audit_arch_x86_64()
        let number: (Syscall) -> UInt32 = { $0.x86_64Number }
        #else
        throw .unsupportedArchitecture(Self.machineName())
        #endif
        var seen = Set<Syscall>()
        allowed = syscalls.filter { seen.insert($0).inserted }

        let kill = UInt32(SECCOMP_RET_KILL_PROCESS)
        var program: [sock_filter] = [
            Self.statement(UInt16(BPF_LD | BPF_W | BPF_ABS), gh_seccomp_data_arch_offset()),
            Self.jump(UInt16(BPF_JMP | BPF_JEQ | BPF_K), arch, ifTrue: 1, ifFalse: 0),
            Self.statement(UInt16(BPF_RET | BPF_K), kill),
            Self.statement(UInt16(BPF_LD | BPF_W | BPF_ABS), gh_seccomp_data_nr_offset()),
            Self.jump(UInt16(BPF_JMP | BPF_JGE | BPF_K), gh_x32_syscall_bit(), ifTrue: 0, ifFalse: 1),
            Self.statement(UInt16(BPF_RET | BPF_K), kill),
        ]
        for call in allowed {
            program.append(Self.jump(UInt16(BPF_JMP | BPF_JEQ | BPF_K), number(call), ifTrue: 0, ifFalse: 1))
            program.append(Self.statement(UInt16(BPF_RET | BPF_K), UInt32(SECCOMP_RET_ALLOW)))
        }
        program.append(Self.statement(UInt16(BPF_RET | BPF_K), kill))
        guard program.count <= Int(BPF_MAXINSNS) else { throw .filterTooLong(instructions: program.count) }
        instructions = program
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
