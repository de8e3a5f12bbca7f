@testable import CmdletShell
import Foundation
import GatehouseCore
import XCTest

final class ExecutorTests: XCTestCase {
    func testCancellationEndsARunningBackend() throws {
        let flag = CancellationFlag()
        let output = BufferOutput()
        let request = ExecutionRequest(argv: ["/bin/sleep", "30"], environment: [:], workingDirectory: "/",
                                       timeoutSeconds: 60, outputLimit: 1024)
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) { flag.cancel() }
        let started = Date()
        let result = try ProcessExecutor().run(request, output: output, cancellation: flag)
        XCTAssertTrue(result.cancelled)
        XCTAssertFalse(result.timedOut)
        XCTAssertEqual(result.exitStatus, 128 + 15)
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
    }

    final class TickingOutput: CommandOutput {
        var ticks = 0
        var threads = Set<String>()
        let interval: Double?
        init(interval: Double?) { self.interval = interval }
        func stdout(_ bytes: [UInt8]) {}
        func stderr(_ bytes: [UInt8]) {}
        func tick() {
            ticks += 1
            threads.insert("\(Thread.current)")
        }
        var secondsUntilNextTick: Double? { interval }
    }

    func testTickIsCalledOnTheCommandThreadWhenItAsks() throws {
        let output = TickingOutput(interval: 0.1)
        let request = ExecutionRequest(argv: ["/bin/sleep", "0.5"], environment: [:], workingDirectory: "/",
                                       timeoutSeconds: 10, outputLimit: 1024)
        let result = try ProcessExecutor().run(request, output: output, cancellation: nil)
        XCTAssertEqual(result.exitStatus, 0)
        // Asked every 100 ms, a 500 ms backend gives several ticks.
        XCTAssertGreaterThanOrEqual(output.ticks, 4)
        XCTAssertEqual(output.threads, ["\(Thread.current)"], "ticks run on the caller's thread only")
    }

    func testASilentBackendIsWaitedForWithoutAPollInterval() throws {
        // Nothing asks for a tick and the backend says nothing: the executor
        // wakes for the exit (pidfd) alone, not every few milliseconds. The
        // old loop woke every 50 ms (about 10 ticks here).
        let output = TickingOutput(interval: nil)
        let request = ExecutionRequest(argv: ["/bin/sleep", "0.5"], environment: [:], workingDirectory: "/",
                                       timeoutSeconds: 10, outputLimit: 1024)
        let cancellation = CancellationFlag()
        let result = try ProcessExecutor().run(request, output: output, cancellation: cancellation)
        XCTAssertEqual(result.exitStatus, 0)
        // The first turn, the exit, and the two pipes' ends (which may come in
        // the same poll as the exit or in one or two more): at most 5, never
        // the ten an interval gives. (It was 3, which the kernel's order of
        // the pidfd and the pipes' hang-ups broke now and then.)
        XCTAssertLessThanOrEqual(output.ticks, 5, "woke \(output.ticks) times for one exit")
    }

    func testACancelWakesTheExecutorAtOnce() throws {
        // A cancel from another thread is an event in the executor's poll set:
        // the backend (60 s) is stopped although nothing else happens.
        let output = TickingOutput(interval: nil)
        let request = ExecutionRequest(argv: ["/bin/sleep", "60"], environment: [:], workingDirectory: "/",
                                       timeoutSeconds: 120, outputLimit: 1024)
        let cancellation = CancellationFlag()
        DispatchQueue.global().asyncAfter(deadline: .now() + 1) { cancellation.cancel(reason: "test") }
        let result = try ProcessExecutor().run(request, output: output, cancellation: cancellation)
        XCTAssertTrue(result.cancelled)
        XCTAssertEqual(result.exitStatus, 128 + 15)
        // Start, the cancel, the exit and the two pipes' ends: a handful of
        // wake-ups, where a 50 ms poll interval would have made about twenty.
        XCTAssertLessThanOrEqual(output.ticks, 6, "woke \(output.ticks) times")
    }

    /// Input typed while a backend runs: a pipe stands in for the SSH
    /// socket, and a Ctrl-C in it interrupts the command, as the session does.
    final class TypingOutput: CommandOutput {
        let pipe: (read: Int32, write: Int32)
        let flag: CancellationFlag
        var seen: [UInt8] = []
        init(flag: CancellationFlag) throws {
            var fds: [Int32] = [-1, -1]
            guard Glibc.pipe(&fds) == 0 else { throw POSIXError(.EMFILE) }
            pipe = (fds[0], fds[1])
            self.flag = flag
        }
        deinit { close(pipe.read); close(pipe.write) }
        func stdout(_ bytes: [UInt8]) {}
        func stderr(_ bytes: [UInt8]) {}
        var inputDescriptor: Int32 { pipe.read }
        func inputReady() {
            var byte: UInt8 = 0
            while read(pipe.read, &byte, 1) == 1 {
                seen.append(byte)
                if byte == 0x03 { flag.interrupt(); return }
            }
        }
        static func type(_ bytes: [UInt8], into fd: Int32) { _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } }
    }

    func testCtrlCSendsSIGINTToTheBackendsGroup() throws {
        let flag = CancellationFlag()
        let output = try TypingOutput(flag: flag)
        // The backend reports the signal it got, as a shell script would clean up.
        let request = ExecutionRequest(argv: ["/bin/sh", "-c", "trap 'echo got-INT >&2; exit 42' INT; sleep 30 & wait"],
                                       environment: [:], workingDirectory: "/", timeoutSeconds: 60, outputLimit: 1024)
        let typist = output.pipe.write
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.5) { TypingOutput.type([UInt8(ascii: "x"), 0x03], into: typist) }
        let result = try ProcessExecutor().run(request, output: output, cancellation: flag)
        XCTAssertTrue(result.interrupted)
        XCTAssertFalse(result.cancelled)
        XCTAssertEqual(result.exitStatus, 42, "the backend's own handler ran: it got SIGINT, not SIGTERM or SIGKILL")
        XCTAssertEqual(output.seen, [UInt8(ascii: "x"), 0x03], "the input was read while the backend ran")
    }

    func testABackendThatIgnoresCtrlCIsKilledAfterTheGrace() throws {
        let flag = CancellationFlag()
        let output = try TypingOutput(flag: flag)
        let request = ExecutionRequest(argv: ["/bin/sh", "-c", "trap '' INT; sleep 30"], environment: [:],
                                       workingDirectory: "/", timeoutSeconds: 60, outputLimit: 1024, killGraceSeconds: 0.5)
        let typist = output.pipe.write
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.5) { TypingOutput.type([0x03], into: typist) }
        let result = try ProcessExecutor().run(request, output: output, cancellation: flag)
        XCTAssertTrue(result.interrupted)
        XCTAssertEqual(result.exitStatus, 128 + 9)
    }

    func testStdinIsDevNullAndNoExtraDescriptorsLeak() throws {
        let output = BufferOutput()
        // `cat` sees EOF at once; /proc/self/fd shows only 0, 1, 2 (and the one ls opens).
        let request = ExecutionRequest(argv: ["/bin/sh", "-c", "cat; ls /proc/self/fd"], environment: [:],
                                       workingDirectory: "/", timeoutSeconds: 10, outputLimit: 4096)
        let leaked = open("/dev/null", O_RDONLY) // without O_CLOEXEC on purpose
        defer { close(leaked) }
        let result = try ProcessExecutor().run(request, output: output, cancellation: nil)
        XCTAssertEqual(result.exitStatus, 0)
        let fds = output.outText.split(separator: "\n").compactMap { Int($0) }
        XCTAssertEqual(fds.filter { $0 > 3 }, [], "inherited descriptors: \(fds)")
    }

    func testOutputIsSanitisedForTheTerminal() throws {
        let output = BufferOutput()
        let request = ExecutionRequest(argv: ["/usr/bin/printf", "a\\033[2Jb\\tc\\n"], environment: [:],
                                       workingDirectory: "/", timeoutSeconds: 10, outputLimit: 4096)
        _ = try ProcessExecutor().run(request, output: output, cancellation: nil)
        XCTAssertEqual(output.outText, "a\\x1b[2Jb\tc\n")
    }

    func testRelativePathIsRefused() {
        let request = ExecutionRequest(argv: ["printf", "x"], environment: [:], workingDirectory: "/",
                                       timeoutSeconds: 10, outputLimit: 10)
        XCTAssertThrowsError(try ProcessExecutor().run(request, output: BufferOutput(), cancellation: nil))
    }

    func testUTF8SplitAcrossReadsIsReassembled() {
        var sanitizer = TerminalText.Stream()
        let text = Array("é€😀".utf8) // 2 + 3 + 4 bytes
        var out: [UInt8] = []
        for byte in text { [byte].withUnsafeBufferPointer { sanitizer.feed($0, into: &out) } }
        sanitizer.finish(into: &out)
        XCTAssertEqual(String(decoding: out, as: UTF8.self), "é€😀")

        var truncated = TerminalText.Stream()
        var partial: [UInt8] = []
        Array(text.prefix(3)).withUnsafeBufferPointer { truncated.feed($0, into: &partial) }
        XCTAssertEqual(String(decoding: partial, as: UTF8.self), "é")
        partial = []
        truncated.finish(into: &partial)
        XCTAssertEqual(String(decoding: partial, as: UTF8.self), "\u{FFFD}")
    }
}
