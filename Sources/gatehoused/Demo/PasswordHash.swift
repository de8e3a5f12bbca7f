import Foundation

/// SHA-512 crypt (`$6$`) through the system's libcrypt, loaded at run time:
/// the demo writes pam_pwdfile's file with it. Only the demo needs it, so
/// the daemon does not link libcrypt.
enum PasswordHash {
    private typealias CryptFunction = @convention(c) (UnsafePointer<CChar>, UnsafePointer<CChar>) -> UnsafeMutablePointer<CChar>?

    static func sha512Crypt(_ password: String) throws -> String {
        guard let library = dlopen("libcrypt.so.1", RTLD_NOW) ?? dlopen("libcrypt.so", RTLD_NOW),
              let symbol = dlsym(library, "crypt") else {
            throw DemoError("libcrypt not found: the demo cannot hash the console's passwords")
        }
        let crypt = unsafeBitCast(symbol, to: CryptFunction.self)
        let saltAlphabet = Array("./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        var rng = SystemRandomNumberGenerator()
        let salt = String((0..<16).map { _ in saltAlphabet[Int.random(in: 0..<saltAlphabet.count, using: &rng)] })
        guard let result = crypt(password, "$6$" + salt + "$"), result.pointee != 0x2a /* "*": failure */ else {
            throw DemoError("crypt failed for the console's password")
        }
        return String(cString: result)
    }
}
