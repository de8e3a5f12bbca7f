import GatehouseCore
import Lockbox
import TestSupport

extension Lockbox {
    /// `redeem` with the secret as the tests write it (see `typedSecret`).
    @discardableResult
    func redeem(id: Int64, secret typed: [UInt8], by actor: UserName, session: SessionID) throws -> LockboxRequest {
        let secret = typedSecret(typed)
        return try redeem(id: id, secret: secret, by: actor, session: session)
    }
}
