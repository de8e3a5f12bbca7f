import Foundation
import XCTest

/// Real PAM stacks in a private service directory for pam_wrapper, shared by
/// the transaction tests (one helper process per transaction) and the
/// worker pool tests (the real `gatehouse-pam-worker`). pam_wrapper must be
/// preloaded when a process starts, so PAM runs in a child with
/// `environment`. Nothing under /etc/pam.d is read or changed.
final class PAMTestStacks {
    static let wrapper = "/usr/lib/x86_64-linux-gnu/libpam_wrapper.so"
    static let matrix = "/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_matrix.so"
    static let chatty = "/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_chatty.so"
    static let oath = "/lib/x86_64-linux-gnu/security/pam_oath.so"
    static let oathSecret = "3132333435363738393031323334353637383930"

    let dir: String
    var serviceDir: String { dir + "/services" }
    /// What a PAM process needs on top of its parent's environment.
    var environment: [String: String] {
        ["LD_PRELOAD": Self.wrapper, "PAM_WRAPPER": "1", "PAM_WRAPPER_SERVICE_DIR": serviceDir]
    }

    /// Services `gh-password` (pam_matrix, password "secret" for alice),
    /// `gh-chatty` (notices first), `gh-echo` (an echo-on prompt) and
    /// `gh-totp` (password, then a pam_oath code).
    init() throws {
        for file in [Self.wrapper, Self.matrix, Self.chatty, Self.oath, "/usr/bin/oathtool"]
        where !FileManager.default.fileExists(atPath: file) {
            throw XCTSkip("\(file) is missing (scripts/install-deps installs libpam-wrapper, libpam-oath, oathtool)")
        }
        dir = NSTemporaryDirectory() + "gatehouse-pam-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/services", withIntermediateDirectories: true)
        // pam_oath rewrites its users file (to refuse a reused code), so the file is per test.
        try "HOTP/T30 alice - \(Self.oathSecret)\n".write(toFile: dir + "/users.oath", atomically: true, encoding: .utf8)
        try service("gh-password", auth: ["\(Self.matrix) passdb=\(dir)/passdb-gh-password"])
        // pam_chatty sends PAM_TEXT_INFO and PAM_ERROR_MSG notices, then succeeds.
        try service("gh-chatty", auth: ["\(Self.chatty) num_lines=1 info error",
                                        "\(Self.matrix) passdb=\(dir)/passdb-gh-chatty"])
        try service("gh-echo", auth: ["\(Self.matrix) passdb=\(dir)/passdb-gh-echo echo"])
        try service("gh-totp", auth: ["\(Self.matrix) passdb=\(dir)/passdb-gh-totp",
                                      "\(Self.oath) usersfile=\(dir)/users.oath window=2 digits=6"])
    }

    func remove() { try? FileManager.default.removeItem(atPath: dir) }

    /// One service file; pam_matrix's first passdb line for a user wins, so each service has its own.
    func service(_ name: String, auth: [String]) throws {
        try "alice:secret:\(name)\n".write(toFile: "\(dir)/passdb-\(name)", atomically: true, encoding: .utf8)
        let lines = auth.map { "auth required \($0)" }
            + ["account required \(Self.matrix) passdb=\(dir)/passdb-\(name)"]
        try (lines.joined(separator: "\n") + "\n").write(toFile: "\(serviceDir)/\(name)", atomically: true,
                                                         encoding: .utf8)
    }

    /// The TOTP code of now (`oathtool --totp`).
    func totp() throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/oathtool")
        process.arguments = ["--totp", Self.oathSecret]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
