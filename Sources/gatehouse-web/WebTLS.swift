import Foundation
import HummingbirdTLS

/// The certificate chain and key the monitor read (PEM, one parcel): the
/// CERTIFICATE blocks are the chain, the PRIVATE KEY block the key.
enum WebTLS {
    struct Problem: Error, CustomStringConvertible { let description: String }

    static func configuration(pem: [UInt8]) throws -> TLSConfiguration {
        let text = String(decoding: pem, as: UTF8.self)
        var certificates: [String] = []
        var key: String?
        var current: [Substring] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("-----BEGIN ") { current = [line] ; continue }
            if !current.isEmpty { current.append(line) }
            if trimmed.hasPrefix("-----END ") {
                let block = current.joined(separator: "\n") + "\n"
                if trimmed.contains("CERTIFICATE") { certificates.append(block) }
                else if trimmed.contains("PRIVATE KEY") { key = block }
                current = []
            }
        }
        guard !certificates.isEmpty else { throw Problem(description: "no CERTIFICATE block in webCertificate") }
        guard let key else { throw Problem(description: "no PRIVATE KEY block in webPrivateKey") }
        let chain = try certificates.map { try NIOSSLCertificate(bytes: Array($0.utf8), format: .pem) }
        let privateKey = try NIOSSLPrivateKey(bytes: Array(key.utf8), format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) },
                                                                     privateKey: .privateKey(privateKey))
        configuration.minimumTLSVersion = .tlsv12
        return configuration
    }
}
