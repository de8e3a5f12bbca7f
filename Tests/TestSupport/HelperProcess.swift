import Foundation

/// Runs one of the helper executables that `swift build --build-tests`
/// puts beside the test bundle, for what a test cannot do in its own
/// process: preload pam_wrapper, lower a resource limit, interpose a libc
/// call, or survive a crash of the code under test.
public struct HelperProcess {
    /// How the helper ended and what it printed.
    public struct Run: CustomStringConvertible {
        /// The exit status, or the signal number when `crashed`.
        public let status: Int32
        /// True when a signal ended it (an abort on a double free, say).
        public let crashed: Bool
        public let stdout: String
        public let stderr: String

        /// Standard output, line by line.
        public var lines: [String] { stdout.split(separator: "\n").map(String.init) }

        public var description: String {
            "\(crashed ? "signal" : "exit") \(status)\nstdout:\n\(stdout)\nstderr:\n\(stderr)"
        }
    }

    /// The helper was not built beside the test bundle.
    public struct Missing: Error, CustomStringConvertible {
        public let path: String
        public var description: String { "\(path) is missing: run `swift build --build-tests` first" }
    }

    public let path: String

    /// The helper executable `name` (its product name in Package.swift).
    public init(_ name: String) throws {
        path = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent(name).path
        guard FileManager.default.isExecutableFile(atPath: path) else { throw Missing(path: path) }
    }

    /// Runs the helper to completion; `environment` is added to this process's.
    public func run(_ arguments: [String], environment: [String: String] = [:]) throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe()
        // Standard error goes to a file, so that neither stream can fill a
        // pipe and stall the helper while the other is read.
        let errPath = NSTemporaryDirectory() + "gatehouse-helper-\(UUID().uuidString).err"
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: errPath) }
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        process.standardOutput = out
        process.standardError = err
        try process.run()
        try err.close()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let errData = FileManager.default.contents(atPath: errPath) ?? Data()
        return Run(status: process.terminationStatus, crashed: process.terminationReason == .uncaughtSignal,
                   stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
    }
}
