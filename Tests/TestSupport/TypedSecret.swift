import GatehouseCore

/// A secret as a test types it. The daemon reads typed secrets byte by byte
/// into `SecretBytes`; tests start from text, which is not secret there.
public func typedSecret(_ bytes: [UInt8]) -> SecretBytes {
    var secret = SecretBytes(capacity: bytes.count)
    bytes.withUnsafeBytes { _ = secret.append(contentsOf: $0) }
    return secret
}
