#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import GatehouseCore
import Synchronization

/// What to start. `argv[0]` must be the absolute path that is executed.
public struct ExecutionRequest: Sendable, Equatable, Codable {
    public var argv: [String]
    /// Declared variables; PATH and LANG are added by the executor.
    public var environment: [String: String]
    public var workingDirectory: String
    public var timeoutSeconds: Double
    /// Bytes of stdout+stderr relayed before the rest is dropped.
    public var outputLimit: Int
    /// Time between SIGTERM and SIGKILL, and to drain pipes after exit.
    public var killGraceSeconds: Double
    /// The command line the request came from, for a launcher that judges it
    /// again before it starts anything (the monitor).
    public var line: [UInt8]

    public init(argv: [String], environment: [String: String], workingDirectory: String,
                timeoutSeconds: Double, outputLimit: Int, killGraceSeconds: Double = 2, line: [UInt8] = []) {
        self.line = line
        self.argv = argv
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.timeoutSeconds = timeoutSeconds
        self.outputLimit = outputLimit
        self.killGraceSeconds = killGraceSeconds
    }
}

/// How a command ended.
public struct ExecutionResult: Sendable, Equatable {
    /// The exit code, or 128+signal when a signal ended the process.
    public let exitStatus: Int32
    public let timedOut: Bool
    public let cancelled: Bool
    /// Ctrl-C stopped it (SIGINT to its group).
    public let interrupted: Bool
    public let truncated: Bool
    /// Bytes the backend wrote (including any that were dropped past the cap).
    public let stdoutBytes: Int
    public let stderrBytes: Int

    /// Public so other executors (a privilege-separated spawner, test fakes)
    /// can report how their command ended.
    public init(exitStatus: Int32, timedOut: Bool, cancelled: Bool, interrupted: Bool = false, truncated: Bool,
                stdoutBytes: Int, stderrBytes: Int) {
        self.exitStatus = exitStatus
        self.timedOut = timedOut
        self.cancelled = cancelled
        self.interrupted = interrupted
        self.truncated = truncated
        self.stdoutBytes = stdoutBytes
        self.stderrBytes = stderrBytes
    }
}

/// The backend could not be started; nothing ran.
public struct ExecutorError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public let errno: Int32

    /// Public for launchers outside this module (the monitor's).
    public init(message: String, errno: Int32) {
        self.message = message
        self.errno = errno
    }

    public var description: String { message }
}

/// Lets another thread end a running command (for example when the grant
/// that allowed it expires). A cancel wakes the executor's `poll()` at once
/// through the write end of its wake pipe; nothing polls the flag on a timer.
public final class CancellationFlag: Sendable {
    private let state = Mutex((cancelled: false, interrupted: false, why: String?.none, wake: Int32(-1)))

    public init() {}

    /// Ctrl-C: the backend's process group gets SIGINT (a cancel sends
    /// SIGTERM), then SIGKILL after the kill grace if it is still there.
    public func interrupt() {
        state.withLock {
            $0.interrupted = true
            if $0.wake >= 0 {
                var byte: UInt8 = 1
                _ = write($0.wake, &byte, 1)
            }
        }
    }

    public var isInterrupted: Bool { state.withLock { $0.interrupted } }

    /// `reason` is shown to the user ("<cmdlet> was stopped: <reason>."); the first one wins.
    public func cancel(reason: String? = nil) {
        state.withLock {
            if !$0.cancelled { $0.why = reason }
            $0.cancelled = true
            // Under the lock, so the executor cannot close the pipe between
            // the check and the write. The pipe is non-blocking: a full pipe
            // already holds a wake-up.
            if $0.wake >= 0 {
                var byte: UInt8 = 1
                _ = write($0.wake, &byte, 1)
            }
        }
    }

    /// The executor's wake pipe while a backend runs; -1 detaches it (under
    /// the same lock as `cancel`, before the executor closes it).
    func attachWake(_ fd: Int32) { state.withLock { $0.wake = fd } }

    public var isCancelled: Bool { state.withLock { $0.cancelled } }

    /// Why the command was stopped, if the canceller said.
    public var reason: String? { state.withLock { $0.why } }
}

/// Where a backend starts: in this process (`LocalBackendLauncher`), or in
/// the monitor, which alone may start processes as other accounts.
public protocol BackendLauncher: Sendable {
    func launch(_ request: ExecutionRequest) throws -> any LaunchedBackend
}

/// A started backend: the read ends of its stdout and stderr pipes and a
/// descriptor that becomes readable when it exits (a pidfd, or -1), all
/// three the caller's to close; and how to signal its process group and
/// collect its exit status.
public protocol LaunchedBackend {
    var stdout: Int32 { get }
    var stderr: Int32 { get }
    var exit: Int32 { get }
    /// True once it has exited (its status not yet collected).
    func hasExited() -> Bool
    func signalGroup(_ signal: Int32)
    /// Its exit code, or 128+signal; once, after it has exited or been killed.
    func reap() -> Int32
}

/// Starts backends as children of this process, with `posix_spawn`.
public struct LocalBackendLauncher: BackendLauncher {
    public init() {}

    public func launch(_ request: ExecutionRequest) throws -> any LaunchedBackend {
        guard let path = request.argv.first, path.hasPrefix("/") else {
            throw ExecutorError(message: "backend path must be absolute", errno: EINVAL)
        }
        var environment = request.environment
        for (k, v) in ProcessExecutor.baseEnvironment { environment[k] = v }
        let envStrings = environment.keys.sorted().map { "\($0)=\(environment[$0] ?? "")" }
        let all = request.argv + envStrings + [request.workingDirectory]
        if all.contains(where: { $0.utf8.contains(0) }) {
            throw ExecutorError(message: "argument contains a NUL byte", errno: EINVAL)
        }
        let stdoutPipe = try Pipe2.make()
        let stderrPipe: (read: Int32, write: Int32)
        do { stderrPipe = try Pipe2.make() } catch {
            close(stdoutPipe.read); close(stdoutPipe.write)
            throw error
        }
        let pid: pid_t
        do {
            pid = try ProcessExecutor.spawn(path: path, argv: request.argv, env: envStrings,
                                            cwd: request.workingDirectory,
                                            stdoutWrite: stdoutPipe.write, stderrWrite: stderrPipe.write)
        } catch {
            for fd in [stdoutPipe.read, stdoutPipe.write, stderrPipe.read, stderrPipe.write] { close(fd) }
            throw error
        }
        close(stdoutPipe.write)
        close(stderrPipe.write)
        return LocalBackend(pid: pid, stdout: stdoutPipe.read, stderr: stderrPipe.read,
                            exit: SpawnExtensions.pidfdOpen.map { $0(pid, 0) } ?? -1)
    }
}

/// A backend this process started: its child.
public struct LocalBackend: LaunchedBackend, Sendable {
    public let pid: pid_t
    public let stdout: Int32
    public let stderr: Int32
    public let exit: Int32

    public func hasExited() -> Bool { ChildStatus.hasExited(pid) }
    public func signalGroup(_ signal: Int32) { _ = kill(-pid, signal) }
    public func reap() -> Int32 { ChildStatus.reap(pid) }
}

/// Starts backends. A protocol so the interpreter can be tested with fakes
/// and so a later privilege-separated spawner can replace it.
public protocol CommandExecutor: Sendable {
    func run(_ request: ExecutionRequest, output: CommandOutput, cancellation: CancellationFlag?) throws -> ExecutionResult
}

/// Runs a backend with `posix_spawn`: no shell, no PATH search, a clean
/// environment, a fixed working directory, stdin from /dev/null, its own
/// process group, default signal dispositions and an empty signal mask, and
/// no inherited file descriptor beyond 0–2.
///
/// Blocking: call it from a dedicated thread, never from Swift's cooperative
/// pool (see DESIGN.md, Concurrency).
///
/// Limits: a process that leaves the process group (setsid) escapes the
/// group kill; the executor then stops draining after the grace period.
/// Containing that needs a cgroup, which is out of scope for this layer.
public struct ProcessExecutor: CommandExecutor {
    /// The base environment every backend gets, before declared variables.
    public static let baseEnvironment = ["PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"]

    private let launcher: BackendLauncher

    /// `launcher` starts the backend: here by default, or through the
    /// monitor, which alone may start processes as other accounts.
    public init(launcher: BackendLauncher = LocalBackendLauncher()) {
        self.launcher = launcher
    }

    /// The read buffer, and the pipe's default size.
    static let readSize = 1 << 16
    /// The read buffer and the pipe's size once a read filled the buffer
    /// (`F_SETPIPE_SZ`: within the unprivileged 1 MiB maximum; if the
    /// per-user pipe allowance is spent it fails and the pipe stays as is).
    static let bulkReadSize = 1 << 18
    /// `F_SETPIPE_SZ` (Linux; the Glibc module leaves it out).
    static let setPipeSize: Int32 = 1031

    public func run(_ request: ExecutionRequest, output: CommandOutput,
                    cancellation: CancellationFlag? = nil) throws -> ExecutionResult {
        let backend = try launcher.launch(request)
        var readEnds = [backend.stdout, backend.stderr]
        defer { for fd in readEnds where fd >= 0 { close(fd) } }
        for fd in readEnds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        // The backend's exit and a cancel are events in the same poll() as its
        // output, so nothing waits on an interval: a pidfd (readable once
        // the child exits) and a wake pipe the cancellation writes to.
        let exitFD = backend.exit
        defer { if exitFD >= 0 { close(exitFD) } }
        var wake: (read: Int32, write: Int32)? = nil
        if let cancellation {
            wake = try? Pipe2.make()
            if let wake {
                _ = fcntl(wake.read, F_SETFL, fcntl(wake.read, F_GETFL) | O_NONBLOCK)
                _ = fcntl(wake.write, F_SETFL, fcntl(wake.write, F_GETFL) | O_NONBLOCK)
                cancellation.attachWake(wake.write)
            }
        }
        defer {
            if let wake {
                cancellation?.attachWake(-1)
                close(wake.read)
                close(wake.write)
            }
        }

        var relay = Relay(output: output, limit: request.outputLimit)
        let start = Monotonic.now()
        let deadline = start + request.timeoutSeconds
        var termSentAt: Double?
        var killSent = false
        var exitedAt: Double?
        var timedOut = false
        var cancelled = false
        var interrupted = false
        var buffer = [UInt8](repeating: 0, count: Self.readSize)
        let input = output.inputDescriptor

        while true {
            output.tick()
            let now = Monotonic.now()
            if exitedAt == nil && backend.hasExited() {
                exitedAt = now
                // Anything the backend left behind in its group goes with it.
                backend.signalGroup(SIGKILL)
            }
            if let exitedAt, readEnds.allSatisfy({ $0 < 0 }) || now - exitedAt > request.killGraceSeconds {
                break
            }
            if exitedAt == nil {
                if termSentAt == nil {
                    if now >= deadline { timedOut = true }
                    if cancellation?.isCancelled == true { cancelled = true }
                    if cancellation?.isInterrupted == true { interrupted = true }
                    if timedOut || cancelled {
                        backend.signalGroup(SIGTERM)
                        termSentAt = now
                    } else if interrupted {
                        backend.signalGroup(SIGINT)
                        termSentAt = now
                    }
                } else if let sent = termSentAt, !killSent, now - sent >= request.killGraceSeconds {
                    backend.signalGroup(SIGKILL)
                    killSent = true
                }
            }

            // Sleep until an event, or until the next thing that falls due
            // by time alone: the timeout, the kill grace, the session's tick.
            // Without a pidfd (Linux before 5.3) the exit is only seen by
            // looking, so the wait is capped at 50 ms there.
            var due: [Double] = []
            if exitedAt == nil && termSentAt == nil { due.append(deadline) }
            if let sent = termSentAt, !killSent { due.append(sent + request.killGraceSeconds) }
            if let exitedAt { due.append(exitedAt + request.killGraceSeconds) }
            if let tick = output.secondsUntilNextTick { due.append(now + max(0, tick)) }
            if exitFD < 0 || (cancellation != nil && wake == nil) { due.append(now + 0.05) }
            let waitMs = due.min().map { Int32(min(max(0, ($0 - now) * 1000).rounded(.up), 3_600_000)) } ?? -1
            var fds = readEnds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            fds.append(pollfd(fd: exitedAt == nil ? exitFD : -1, events: Int16(POLLIN), revents: 0))
            fds.append(pollfd(fd: wake?.read ?? -1, events: Int16(POLLIN), revents: 0))
            fds.append(pollfd(fd: exitedAt == nil && termSentAt == nil ? input : -1, events: Int16(POLLIN), revents: 0))
            let ready = poll(&fds, nfds_t(fds.count), waitMs)
            if ready < 0 && errno != EINTR { break }
            if fds[readEnds.count + 2].revents != 0 { output.inputReady() }
            if let wake, fds[readEnds.count + 1].revents != 0 {
                var drain = [UInt8](repeating: 0, count: 64)
                while read(wake.read, &drain, drain.count) > 0 {}
            }
            for (index, entry) in fds.prefix(readEnds.count).enumerated() where entry.fd >= 0 && entry.revents != 0 {
                let n = buffer.withUnsafeMutableBytes { read(entry.fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    relay.receive(buffer[0..<n], isStdout: index == 0)
                    if n == buffer.count && buffer.count < Self.bulkReadSize {
                        // A full read: the backend writes faster than this
                        // loop drains. Larger reads (and a pipe to match) then
                        // take fewer wake-ups, polls and writes per byte.
                        // Only such a backend pays for the larger buffers.
                        buffer = [UInt8](repeating: 0, count: Self.bulkReadSize)
                        _ = fcntl(entry.fd, Self.setPipeSize, Int32(Self.bulkReadSize))
                    }
                } else if n == 0 || (errno != EAGAIN && errno != EINTR && errno != EWOULDBLOCK) {
                    close(entry.fd)
                    readEnds[index] = -1
                }
            }
        }
        relay.finish()
        let status = backend.reap()
        return ExecutionResult(exitStatus: timedOut ? 124 : status, timedOut: timedOut, cancelled: cancelled,
                               interrupted: interrupted && !timedOut && !cancelled, truncated: relay.truncated, stdoutBytes: relay.stdoutBytes,
                               stderrBytes: relay.stderrBytes)
    }

    fileprivate static func spawn(path: String, argv: [String], env: [String], cwd: String,
                       stdoutWrite: Int32, stderrWrite: Int32) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }

        func check(_ rc: Int32, _ what: String) throws {
            if rc != 0 { throw ExecutorError(message: "\(what) failed: \(String(cString: strerror(rc)))", errno: rc) }
        }
        try check(posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0), "posix_spawn_file_actions_addopen")
        try check(posix_spawn_file_actions_adddup2(&actions, stdoutWrite, 1), "posix_spawn_file_actions_adddup2")
        try check(posix_spawn_file_actions_adddup2(&actions, stderrWrite, 2), "posix_spawn_file_actions_adddup2")
        // Fail closed: without chdir support the backend would inherit the
        // gateway's working directory.
        guard let addchdir = SpawnExtensions.addchdir else {
            throw ExecutorError(message: "posix_spawn_file_actions_addchdir_np is unavailable", errno: ENOSYS)
        }
        try check(addchdir(&actions, cwd), "posix_spawn_file_actions_addchdir_np")
        // Belt and braces: pipes are O_CLOEXEC already, but a descriptor some
        // other library opened without it must not reach the backend either.
        if let closefrom = SpawnExtensions.addclosefrom {
            try check(closefrom(&actions, 3), "posix_spawn_file_actions_addclosefrom_np")
        }

        try check(posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK
                                                              | POSIX_SPAWN_SETSIGDEF)), "posix_spawnattr_setflags")
        try check(posix_spawnattr_setpgroup(&attributes, 0), "posix_spawnattr_setpgroup")
        var empty = sigset_t()
        sigemptyset(&empty)
        try check(posix_spawnattr_setsigmask(&attributes, &empty), "posix_spawnattr_setsigmask")
        var all = sigset_t()
        sigfillset(&all)
        sigdelset(&all, SIGKILL)
        sigdelset(&all, SIGSTOP)
        try check(posix_spawnattr_setsigdefault(&attributes, &all), "posix_spawnattr_setsigdefault")

        var cArgv: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        var cEnv: [UnsafeMutablePointer<CChar>?] = env.map { strdup($0) } + [nil]
        defer {
            for p in cArgv { free(p) }
            for p in cEnv { free(p) }
        }
        if cArgv.dropLast().contains(where: { $0 == nil }) || cEnv.dropLast().contains(where: { $0 == nil }) {
            throw ExecutorError(message: "out of memory", errno: ENOMEM)
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attributes, &cArgv, &cEnv)
        if rc != 0 {
            throw ExecutorError(message: "cannot start \(path): \(String(cString: strerror(rc)))", errno: rc)
        }
        return pid
    }
}

/// Caps, counts and sanitises what the backend writes.
struct Relay {
    let output: CommandOutput
    let limit: Int
    var relayed = 0
    var truncated = false
    var stdoutBytes = 0
    var stderrBytes = 0
    var out = TerminalText.Stream(keepLineBreaks: true)
    var err = TerminalText.Stream(keepLineBreaks: true)

    init(output: CommandOutput, limit: Int) {
        self.output = output
        self.limit = max(0, limit)
    }

    mutating func receive(_ chunk: ArraySlice<UInt8>, isStdout: Bool) {
        if isStdout { stdoutBytes += chunk.count } else { stderrBytes += chunk.count }
        guard !truncated else { return }
        let room = limit - relayed
        let part = chunk.prefix(room)
        relayed += part.count
        emit(part, isStdout: isStdout)
        if part.count < chunk.count {
            truncated = true
            flush()
            output.stderr(Array("\n[output truncated after \(limit) bytes]\n".utf8))
        }
    }

    mutating func emit(_ part: ArraySlice<UInt8>, isStdout: Bool) {
        guard !part.isEmpty else { return }
        if isStdout && output.receivesRawStdout {
            output.stdout(Array(part)) // parsed, then sanitised when rendered
            return
        }
        var clean: [UInt8] = []
        clean.reserveCapacity(part.count + part.count / 8)
        part.withUnsafeBufferPointer { isStdout ? out.feed($0, into: &clean) : err.feed($0, into: &clean) }
        if !clean.isEmpty { isStdout ? output.stdout(clean) : output.stderr(clean) }
    }

    mutating func flush() {
        var o: [UInt8] = []
        out.finish(into: &o)
        if !o.isEmpty { output.stdout(o) }
        var e: [UInt8] = []
        err.finish(into: &e)
        if !e.isEmpty { output.stderr(e) }
    }

    mutating func finish() { flush() }
}

/// glibc extensions Swift's Glibc module does not import (they sit behind
/// _GNU_SOURCE), looked up once with dlsym.
enum SpawnExtensions {
    typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    typealias AddClosefrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    typealias Pipe2Function = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32

    private static func symbol(_ name: String) -> UnsafeMutableRawPointer? {
        let handle = dlopen(nil, RTLD_NOW)
        return dlsym(handle, name)
    }

    /// `posix_spawn_file_actions_addchdir_np` (glibc ≥ 2.29).
    static let addchdir: AddChdir? = symbol("posix_spawn_file_actions_addchdir_np")
        .map { unsafeBitCast($0, to: AddChdir.self) }
    /// `posix_spawn_file_actions_addclosefrom_np` (glibc ≥ 2.34).
    static let addclosefrom: AddClosefrom? = symbol("posix_spawn_file_actions_addclosefrom_np")
        .map { unsafeBitCast($0, to: AddClosefrom.self) }
    /// `pipe2`.
    static let pipe2: Pipe2Function? = symbol("pipe2").map { unsafeBitCast($0, to: Pipe2Function.self) }
    typealias PidfdOpen = @convention(c) (pid_t, UInt32) -> Int32
    /// `pidfd_open` (glibc ≥ 2.36, Linux ≥ 5.3): a descriptor that becomes
    /// readable when the process exits, so poll() sees the exit as an event.
    /// Swift's Glibc module does not export it, hence the lookup.
    static let pidfdOpen: PidfdOpen? = symbol("pidfd_open").map { unsafeBitCast($0, to: PidfdOpen.self) }
}

enum Pipe2 {
    /// A pipe whose both ends are close-on-exec from birth (`pipe2(O_CLOEXEC)`),
    /// so a concurrent spawn on another thread cannot inherit it.
    static func make() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard let pipe2 = SpawnExtensions.pipe2 else {
            throw ExecutorError(message: "pipe2 is unavailable", errno: ENOSYS)
        }
        let rc = fds.withUnsafeMutableBufferPointer { buf -> Int32 in
            guard let base = buf.baseAddress else { return -1 }
            return pipe2(base, O_CLOEXEC)
        }
        if rc != 0 {
            let e = errno
            throw ExecutorError(message: "pipe2 failed: \(String(cString: strerror(e)))", errno: e)
        }
        return (fds[0], fds[1])
    }
}

enum ChildStatus {
    /// True once the child has exited, without reaping it (`waitid` with
    /// WNOWAIT): its pid, and so its process group id, stay reserved until
    /// the group kill that follows cannot hit a recycled id.
    static func hasExited(_ pid: pid_t) -> Bool {
        var info = siginfo_t()
        while true {
            let rc = waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT)
            if rc == 0 { return info._sifields._sigchld.si_pid == pid }
            if errno == EINTR { continue }
            return true // ECHILD: nothing left to wait for
        }
    }

    /// Reaps the child (`waitpid`, retrying on EINTR) and maps its status:
    /// the exit code, or 128+signal.
    static func reap(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return 128 + SIGKILL }
        }
        let signal = status & 0x7f
        if signal == 0 { return (status >> 8) & 0xff }
        return 128 + signal
    }
}

enum Monotonic {
    /// Seconds on CLOCK_MONOTONIC: timeouts must not follow wall-clock jumps.
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
