// sandbox-helper: each scenario of SandboxTests in a process of its own,
// because a privilege drop and a seccomp filter cannot be undone. Run as root.
//
//   sandbox-helper drop ACCOUNT            drop, then try setuid(0): prints `setuid(0) rc R errno E`
//   sandbox-helper drop-after-thread ACCOUNT
//                                          a thread first, then the drop: prints `refused: …` or `dropped`
//   sandbox-helper confine ACCOUNT         drop, enter the network side's sandbox, print the
//                                          /proc/self/status fields (`Field: value`)
//   sandbox-helper allowed ACCOUNT         confined, then allowed calls (a named thread, a pipe round
//                                          trip, getpid, a file read): prints `allowed ok`
//   sandbox-helper forbidden CALL ACCOUNT  confined, then CALL (mount, setuid, execve, fork, dumpable):
//                                          the filter kills the process with SIGSYS
//   sandbox-helper tsync ACCOUNT           a thread started before `enter` prints its own
//                                          Seccomp and NoNewPrivs, then calls mount: SIGSYS
//   sandbox-helper not-dumpable            enter (as root, no drop) with PR_GET_DUMPABLE also allowed:
//                                          prints `dumpable 1 then 0`
//   sandbox-helper activation              socket activation on real sockets passed as 3 and 4:
//                                          prints each listener, its CLOEXEC flag, what is left of
//                                          the environment, and a connection accepted on the TCP one
import CSandbox
import Glibc
import GatehouseCore
import Sandbox

/// Prints a line and flushes it at once: a scenario may end with SIGSYS.
func say(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
}

func fail(_ message: String) -> Never {
    say("error: \(message)")
    exit(2)
}

func account(_ arguments: ArraySlice<String>) -> SandboxAccount {
    guard let name = arguments.first else { fail("no account given") }
    do { return try SandboxAccount(named: name) } catch { fail("\(error)") }
}

func drop(to account: SandboxAccount) {
    do { try PrivilegeDrop.drop(to: account) } catch { fail("drop: \(error)") }
}

func confine() {
    do {
        try Sandbox.enter(filter: NetworkSideSyscalls.filter())
    } catch {
        fail("enter: \(error)")
    }
}

/// The lines of a `/proc/.../status` file whose field is in `fields`, as `Field: value`.
func statusLines(_ path: String, _ fields: Set<String>) -> [String] {
    var text: [UInt8] = []
    do throws(Errno) {
        let file = try OwnedFileDescriptor(opening: path, flags: O_RDONLY | O_CLOEXEC)
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
        defer { chunk.deallocate() }
        while case let n = try file.read(into: chunk), n > 0 {
            text += chunk.prefix(n)
        }
    } catch {
        fail("reading \(path): \(error)")
    }
    return String(decoding: text, as: UTF8.self).split(separator: "\n").compactMap { line in
        let words = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
        guard let field = words.first, field.hasSuffix(":"), fields.contains(String(field.dropLast())) else { return nil }
        return words.joined(separator: " ")
    }
}

/// Makes the named forbidden call; only returns if the filter let it through.
func forbiddenCall(_ name: String) {
    switch name {
    case "mount":
        _ = mount("none", "/mnt", "tmpfs", 0, nil)
    case "setuid":
        _ = setuid(0)
    case "fork":
        // glibc's fork is clone(SIGCHLD | CLONE_CHILD_*): not thread flags.
        _ = fork()
    case "dumpable":
        _ = gh_prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
    case "execve":
        var argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/true"), nil]
        _ = execve("/bin/true", &argv, nil)
    default:
        fail("unknown call \(name)")
    }
    say("\(name) returned errno \(errno)")
}

let arguments = CommandLine.arguments.dropFirst()
switch arguments.first {
case "drop":
    drop(to: account(arguments.dropFirst()))
    let rc = setuid(0)
    say("setuid(0) rc \(rc) errno \(errno)")
case "drop-after-thread":
    let target = account(arguments.dropFirst())
    var thread = pthread_t()
    let started = pthread_create(&thread, nil, sleepingThread, nil)
    guard started == 0 else { fail("pthread_create: \(started)") }
    do {
        try PrivilegeDrop.drop(to: target)
        say("dropped")
    } catch {
        say("refused: \(error)")
    }
case "confine":
    drop(to: account(arguments.dropFirst()))
    confine()
    let fields: Set = ["Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
                       "NoNewPrivs", "Seccomp", "Seccomp_filters"]
    statusLines("/proc/self/status", fields).forEach(say)
case "allowed":
    drop(to: account(arguments.dropFirst()))
    confine()
    var pair: [Int32] = [-1, -1]
    guard pipe(&pair) == 0 else { fail("pipe: \(errno)") }
    let receiver = OwnedFileDescriptor(adopting: pair[0])
    let sender = OwnedFileDescriptor(adopting: pair[1])
    // A thread started inside the sandbox: clone3 fails with ENOSYS, glibc
    // falls back to clone with thread flags, which the filter allows.
    var thread = pthread_t()
    guard pthread_create(&thread, nil, namingThread, nil) == 0, pthread_join(thread, nil) == 0 else {
        fail("thread in the sandbox")
    }
    do {
        try sender.writeAll(Array("ping".utf8))
        var buffer = [UInt8](repeating: 0, count: 4)
        let n = try buffer.withUnsafeMutableBytes { raw throws(Errno) in try receiver.read(into: raw) }
        guard n == 4, buffer == Array("ping".utf8), getpid() > 0,
              !statusLines("/proc/self/status", ["Seccomp"]).isEmpty else { fail("round trip") }
        say("allowed ok")
    } catch {
        fail("\(error)")
    }
case "forbidden":
    let rest = arguments.dropFirst()
    guard let call = rest.first else { fail("no call given") }
    drop(to: account(rest.dropFirst()))
    confine()
    say("confined")
    forbiddenCall(call)
case "tsync":
    drop(to: account(arguments.dropFirst()))
    var go: [Int32] = [-1, -1]
    guard pipe(&go) == 0 else { fail("pipe: \(errno)") }
    var thread = pthread_t()
    // The thread waits on the pipe: started before `enter`, running after it.
    let started = pthread_create(&thread, nil, waitingThread, UnsafeMutableRawPointer(bitPattern: Int(go[0])))
    guard started == 0 else { fail("pthread_create: \(started)") }
    confine()
    say("confined")
    var byte: UInt8 = 1
    _ = write(go[1], &byte, 1)
    pthread_join(thread, nil)
case "not-dumpable":
    // No drop: a uid change would reset the flag itself (fs.suid_dumpable),
    // and only `enter` must be seen clearing it.
    let before = gh_prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)
    var restricted = NetworkSideSyscalls.restricted
    restricted[.prctl, default: []].append(UInt64(PR_GET_DUMPABLE))
    do {
        try Sandbox.enter(filter: SeccompFilter(allowing: NetworkSideSyscalls.allowed, restricting: restricted,
                                                failing: NetworkSideSyscalls.failing))
    } catch {
        fail("enter: \(error)")
    }
    say("dumpable \(before) then \(gh_prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))")
case "activation":
    activation()
default:
    fail("unknown scenario \(arguments.first ?? "")")
}
