// descriptor-helper: descriptor failure paths that need a process of their
// own, because they set a file-size limit or interpose close(2)
// (CloseInterposer.swift). Run by GatehouseCoreTests and TranscriptTests.
//
//   descriptor-helper write-past-limit FILE   writeAll of 100 bytes with a 60-byte file-size limit:
//                                             prints `error ERRNO size BYTES`
//   descriptor-helper explicit-close          close() of an owned descriptor: prints `reused N open|closed`
//   descriptor-helper scope-close             an owned descriptor dropped unclosed: prints `reused N open|closed`
//   descriptor-helper audit-log-fails DIR     a ChainedAuditLog whose init throws (malformed last line)
//   descriptor-helper asciicast-fails DIR     an AsciicastWriter whose header write fails (file-size limit)
//                                             both print `threw` or `opened`, then `reused N open|closed`
//
// `reused N closed` means a descriptor was closed a second time after its
// number had been handed out again: another session's file, in a daemon.
import Foundation
import GatehouseCore
import Transcript

/// Makes writes past `bytes` fail with EFBIG (not SIGXFSZ): a full disk, as
/// the writer sees it.
func limitFileSize(to bytes: rlim_t) {
    signal(SIGXFSZ, SIG_IGN)
    var limit = rlimit(rlim_cur: bytes, rlim_max: bytes)
    guard setrlimit(Int32(RLIMIT_FSIZE.rawValue), &limit) == 0 else { fatalError("setrlimit: \(errno)") }
}

let args = CommandLine.arguments
switch (args.count, args.count > 1 ? args[1] : "") {
case (3, "write-past-limit"):
    let file = try OwnedFileDescriptor(opening: args[2], flags: O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                                       permissions: 0o600)
    limitFileSize(to: 60)
    do throws(Errno) {
        try file.writeAll([UInt8](repeating: 0x61, count: 100))
        print("written size \(try file.size())")
    } catch {
        print("error \(error.rawValue) size \(try file.size())")
    }
case (2, "explicit-close"):
    let file = try OwnedFileDescriptor(opening: "/dev/null", flags: O_RDONLY | O_CLOEXEC)
    CloseWatch.arm()
    try file.close()
    print(CloseWatch.report())
case (2, "scope-close"):
    do {
        let file = try OwnedFileDescriptor(opening: "/dev/null", flags: O_RDONLY | O_CLOEXEC)
        CloseWatch.arm()
        _ = file.rawValue
    }
    print(CloseWatch.report())
case (3, "audit-log-fails"):
    let path = args[2] + "/audit.log"
    try Data("not a record\n".utf8).write(to: URL(fileURLWithPath: path))
    let key = try AuditSigningKey.loadOrCreate(in: args[2])
    CloseWatch.arm()
    do {
        _ = try ChainedAuditLog(path: path, key: key, checkpointInterval: nil, synchronous: false)
        print("opened")
    } catch {
        print("threw")
    }
    print(CloseWatch.report())
case (3, "asciicast-fails"):
    limitFileSize(to: 0)
    let header = AsciicastWriter.Header(width: 80, height: 24, start: Date(), term: nil, title: nil, gatehouse: [:])
    CloseWatch.arm()
    do {
        _ = try AsciicastWriter(path: args[2] + "/session.cast", header: header)
        print("opened")
    } catch {
        print("threw")
    }
    print(CloseWatch.report())
default:
    print("usage: see the comment at the top of Tests/DescriptorHelper/main.swift")
    exit(2)
}
