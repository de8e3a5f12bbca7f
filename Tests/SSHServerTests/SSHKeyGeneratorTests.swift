import Foundation
import GatehouseCore
@testable import SSHServer
import XCTest

/// Generated private keys, written from `SecretBytes` by the openssh-key-v1
/// encoder, must still be keys that OpenSSH and libssh read.
final class SSHKeyGeneratorTests: TemporaryDirectoryTestCase {

    /// `ssh-keygen -y -f path`: the public key OpenSSH derives from the private file.
    func opensshPublicKey(of path: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/ssh-keygen")
        p.arguments = ["-y", "-f", path]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "ssh-keygen -y: \(errText)")
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func testEveryKeyTypeIsReadByOpenSSHAndLibssh() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/ssh-keygen") else {
            throw XCTSkip("ssh-keygen is not installed at /usr/bin/ssh-keygen")
        }
        for type in SSHKeyType.allCases {
            let path = dir + "/sub/\(type.rawValue)"
            let pub = try SSHKeyGenerator.generate(type: type, privateKeyPath: path)
            XCTAssertEqual(pub.type, type.openSSHName)

            var st = stat()
            XCTAssertEqual(stat(path, &st), 0)
            XCTAssertEqual(st.st_mode & 0o777, 0o600, "\(type)")
            XCTAssertEqual(stat(dir + "/sub", &st), 0)
            XCTAssertEqual(st.st_mode & 0o777, 0o700)

            let text = try String(contentsOfFile: path, encoding: .utf8)
            XCTAssertTrue(text.hasPrefix("-----BEGIN OPENSSH PRIVATE KEY-----\n"), "\(type)")
            XCTAssertTrue(text.hasSuffix("-----END OPENSSH PRIVATE KEY-----\n"), "\(type)")

            XCTAssertEqual(try opensshPublicKey(of: path).split(separator: " ").prefix(2).joined(separator: " "),
                           pub.openSSHLine, "\(type)")
            XCTAssertEqual(try SSHKey.importPrivateKeyFile(path).publicKey, pub, "\(type)")
        }
    }

    func testRegeneratingReplacesTheKeyAndLeavesNoTemporaryFiles() throws {
        let path = dir + "/hostkey"
        let first = try SSHKeyGenerator.generate(type: .ecdsaP256, privateKeyPath: path)
        let second = try SSHKeyGenerator.generate(type: .ecdsaP256, privateKeyPath: path)
        XCTAssertNotEqual(first, second)
        XCTAssertEqual(try SSHKey.importPrivateKeyFile(path).publicKey, second)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["hostkey"])
    }

    func testEncoderRefusesWhatIsNotAPrivateKey() throws {
        let pub = UserAuthenticationStateMachineTests.key("ecdsa-sha2-nistp256")
        for text in ["hello", "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
                     "-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n"] {
            var secret = SecretBytes(capacity: text.utf8.count)
            _ = Array(text.utf8).withUnsafeBytes { secret.append(contentsOf: $0) }
            do {
                _ = try OpenSSHPrivateKeyFormat.encode(libsshPEM: secret, publicKey: pub)
                XCTFail("encoded \(text)")
            } catch {}
        }
    }
}
