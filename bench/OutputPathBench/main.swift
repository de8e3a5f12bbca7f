// make bench-output: server-side CPU for 100 MB of backend output through the
// real path a command's stdout takes (ProcessExecutor's pipe reads, the
// terminal sanitiser, the asciicast recorder), without SSH. The backend is
// /bin/cat of a generated file, so its CPU is not ours: we count only this
// process (getrusage RUSAGE_SELF), which is what the gateway pays per byte.
#if canImport(Glibc)
import Glibc
#endif
import CmdletShell
import Foundation
import GatehouseCore
import Transcript

/// Records what the session would send, as the gateway's channel output does.
final class RecordingOutput: CommandOutput {
    let writer: AsciicastWriter
    var bytes = 0
    init(writer: AsciicastWriter) { self.writer = writer }
    func stdout(_ bytes: [UInt8]) { self.bytes += bytes.count; writer.recordOutput(bytes) }
    func stderr(_ bytes: [UInt8]) { self.bytes += bytes.count; writer.recordOutput(bytes) }
}

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
        + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

/// `size` bytes of 80-column lines made by repeating `line`.
func makeInput(size: Int, line: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(size)
    while out.count < size { out.append(contentsOf: line.prefix(size - out.count)) }
    return out
}

let size = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 100_000_000 : 100_000_000
let directory = FileManager.default.temporaryDirectory.appendingPathComponent("output-path-bench-\(getpid())").path
try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: directory) }

let ascii = Array((String(repeating: "The quick brown fox jumps over the lazy dog 0123456789. ", count: 2).prefix(79) + "\n").utf8)
let mixed = Array(("Grüße, 東京 — naïve café \u{1b}[31mred\u{1b}[0m\ttab\r end \u{2028} ok ünïcödé text " + "\n").utf8)
let workloads: [(String, [UInt8])] = [("plain ASCII", ascii), ("UTF-8 + escapes", mixed)]

print("output path: \(size) bytes per run through ProcessExecutor -> sanitiser -> AsciicastWriter.recordOutput")
print(String(repeating: "-", count: 78))
for (name, line) in workloads {
    let input = directory + "/input-\(name.filter(\.isLetter))"
    guard FileManager.default.createFile(atPath: input, contents: Data(makeInput(size: size, line: line))) else {
        fatalError("cannot write \(input)")
    }
    var results: [(cpu: Double, wall: Double, out: Int)] = []
    for run in 0..<3 {
        let header = AsciicastWriter.Header(width: 80, height: 24, start: Date(), term: "xterm", title: nil, gatehouse: [:])
        let writer = try AsciicastWriter(path: directory + "/\(name.filter(\.isLetter))-\(run).cast", header: header)
        let output = RecordingOutput(writer: writer)
        let request = ExecutionRequest(argv: ["/bin/cat", input], environment: [:], workingDirectory: "/",
                                       timeoutSeconds: 600, outputLimit: Int.max / 2)
        let cpu0 = cpuSeconds()
        let wall0 = Date()
        let result = try ProcessExecutor().run(request, output: output, cancellation: nil)
        writer.close(reason: "bench")
        let cpu = cpuSeconds() - cpu0
        let wall = Date().timeIntervalSince(wall0)
        precondition(result.exitStatus == 0 && result.stdoutBytes == size, "cat failed: \(result)")
        results.append((cpu, wall, output.bytes))
        try? FileManager.default.removeItem(atPath: directory + "/\(name.filter(\.isLetter))-\(run).cast")
    }
    let best = results.min { $0.cpu < $1.cpu }!
    let nsPerByte = best.cpu * 1e9 / Double(size)
    print(String(format: "%@ CPU %6.3f ns/byte  %7.1f MB/s of CPU  %7.1f MB/s wall  %5.2f s/GB  (best of 3; %d bytes out)",
                 name.padding(toLength: 16, withPad: " ", startingAt: 0), nsPerByte, Double(size) / best.cpu / 1e6, Double(size) / best.wall / 1e6,
                 best.cpu * 1e9 / Double(size), best.out))
}

// In memory: the sanitiser and the recorder's JSON escaping alone, in 64 KiB
// pieces as the pipe delivers them, without system calls or the backend.
print(String(repeating: "-", count: 78))
print("in memory: \(size) bytes in 64 KiB pieces through TerminalText.Stream, then JSONValue.writeEscaped")
for (name, line) in workloads {
    let data = makeInput(size: size, line: line)
    var best = (sanitize: Double.infinity, both: Double.infinity)
    for _ in 0..<3 {
        var stream = TerminalText.Stream()
        var clean: [UInt8] = []
        var json: [UInt8] = []
        var sanitizeSeconds = 0.0
        let t0 = cpuSeconds()
        data.withUnsafeBufferPointer { all in
            var offset = 0
            while offset < all.count {
                let piece = UnsafeBufferPointer(rebasing: all[offset..<min(all.count, offset + 65536)])
                let s0 = cpuSeconds()
                clean.removeAll(keepingCapacity: true)
                stream.feed(piece, into: &clean)
                sanitizeSeconds += cpuSeconds() - s0
                json.removeAll(keepingCapacity: true)
                clean.withUnsafeBufferPointer { JSONValue.writeEscaped($0, to: &json) }
                offset += piece.count
            }
        }
        stream.finish(into: &clean)
        best = (min(best.sanitize, sanitizeSeconds), min(best.both, cpuSeconds() - t0))
    }
    print(String(format: "%@ sanitise %6.3f ns/byte %7.0f MB/s; sanitise + JSON-escape %6.3f ns/byte %7.0f MB/s (best of 3)",
                 name.padding(toLength: 16, withPad: " ", startingAt: 0), best.sanitize * 1e9 / Double(size),
                 Double(size) / best.sanitize / 1e6, best.both * 1e9 / Double(size), Double(size) / best.both / 1e6))
}
