import Foundation
import GatehouseCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A local account, as `runAs` needs it.
public struct HostAccount: Sendable, Equatable {
    public let uid: UInt32
    public let gid: UInt32
    public init(uid: UInt32, gid: UInt32) {
        self.uid = uid
        self.gid = gid
    }
}

/// What `stat(2)` says about one path, as the ownership lint needs it.
public struct HostFileStatus: Sendable, Equatable {
    /// Permission bits including set-id and sticky (`st_mode & 07777`).
    public let mode: Int
    public let owner: Int
    public let isDirectory: Bool
    public init(mode: Int, owner: Int, isDirectory: Bool) {
        self.mode = mode
        self.owner = owner
        self.isDirectory = isDirectory
    }
}

/// Every question the policy loader asks about the machine it runs on:
/// accounts for `runAs`, and whether backends exist and who could replace
/// them. The loader itself reads only the policy text, so the same policy
/// gives the same verdict under a test's fake host as on a server;
/// `gatehouse policy check` and the daemon (start-up and reload) pass
/// `SystemHostInspector`.
public protocol HostInspector: Sendable {
    /// The account named `name`, or nil when the host has none.
    func account(named name: String) -> HostAccount?
    /// True for an existing file this process may execute.
    func isExecutableFile(_ path: String) -> Bool
    /// `path` with every symbolic link resolved: what is really executed.
    func resolvingSymlinks(_ path: String) -> String
    /// Mode and owner of `path` (links followed), or nil when it cannot be read.
    func status(of path: String) -> HostFileStatus?
    /// The account running the check, which may own a developer's backends.
    var effectiveUserID: Int { get }
}

/// The real host: the account database through `getpwnam_r(3)` and the
/// file system through `stat(2)` and `access(2)`.
public struct SystemHostInspector: HostInspector {
    public init() {}

    /// `AccountDatabase` (`getpwnam_r(3)`); a failed lookup is no account.
    public func account(named name: String) -> HostAccount? {
        guard let found = try? AccountDatabase.account(named: name) else { return nil }
        return HostAccount(uid: found.uid, gid: found.gid)
    }

    public func isExecutableFile(_ path: String) -> Bool {
        FileManager.default.isExecutableFile(atPath: path)
    }

    public func resolvingSymlinks(_ path: String) -> String {
        URL(fileURLWithPath: path).resolvingSymlinksInPath().path
    }

    /// `stat(2)`.
    public func status(of path: String) -> HostFileStatus? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return HostFileStatus(mode: Int(info.st_mode & 0o7777), owner: Int(info.st_uid),
                              isDirectory: info.st_mode & S_IFMT == S_IFDIR)
    }

    public var effectiveUserID: Int { Int(geteuid()) }
}
