import Foundation
@testable import SSHServer
import XCTest

/// The authentication policy without a network: every path through the
/// machine, and event orders a hostile client (or a buggy translator) can produce.
final class UserAuthenticationStateMachineTests: XCTestCase {
    typealias Machine = UserAuthenticationStateMachine
    typealias Action = Machine.Action

    /// A well-formed public key blob: string(type) string(32 bytes).
    static func key(_ type: String = "ssh-ed25519", seed: UInt8 = 1) -> SSHPublicKey {
        func string(_ b: [UInt8]) -> [UInt8] {
            let n = UInt32(b.count)
            return [UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + b
        }
        let blob = string(Array(type.utf8)) + string([UInt8](repeating: seed, count: 32))
        return SSHPublicKey(type: type, base64: Data(blob).base64EncodedString())!
    }

    let alicesKey = key()

    func machine(maxAuthTries: Int = 6, algorithms: SSHAlgorithms = .modern) -> Machine {
        Machine(maxAuthTries: maxAuthTries, algorithms: algorithms)
    }

    func offer(_ key: SSHPublicKey, _ signature: Machine.Signature) -> Machine.Request {
        .publicKey(.init(key: key, fingerprint: "SHA256:test", signature: signature))
    }

    func refusal(_ user: String, _ method: String, _ reason: String) -> Action {
        .audit(.init(user: user, method: method, success: false, partial: false, reason: reason))
    }

    /// Probe, signature and an authorized key: alice is one factor in.
    func passPublicKey(_ m: inout Machine, user: String = "alice") throws {
        XCTAssertEqual(try m.handle(.request(user: user, offer(alicesKey, .absent))),
                       [.checkAuthorization(user: user, key: alicesKey)])
        XCTAssertEqual(try m.handle(.authorizationDecided(true)), [.replyPublicKeyOK])
        XCTAssertEqual(try m.handle(.request(user: user, offer(alicesKey, .valid))),
                       [.checkAuthorization(user: user, key: alicesKey)])
        XCTAssertEqual(try m.handle(.authorizationDecided(true)), [
            .offer(.keyboardInteractive), .replyPartialSuccess,
            .audit(.init(user: user, method: "publickey", success: true, partial: true,
                         reason: "key accepted (ssh-ed25519 SHA256:test); keyboard-interactive required")),
        ])
    }

    func testPublicKeyThenKeyboardInteractiveAuthenticates() throws {
        var m = machine()
        try passPublicKey(&m)
        XCTAssertNil(m.authenticatedUser)
        XCTAssertEqual(try m.handle(.request(user: "alice", .keyboardInteractive(isResponse: false))),
                       [.runKeyboardInteractive(user: "alice")])
        XCTAssertEqual(try m.handle(.keyboardInteractiveEnded(.succeeded)), [
            .replySuccess(user: "alice"),
            .audit(.init(user: "alice", method: "keyboard-interactive", success: true, partial: false,
                         reason: "authenticated")),
        ])
        XCTAssertEqual(m.authenticatedUser, "alice")
        XCTAssertTrue(m.isFinished)
        XCTAssertEqual(m.failures, 0)
    }

    func testSignatureWithoutProbeIsEnoughForTheFirstFactor() throws {
        var m = machine()
        XCTAssertEqual(try m.handle(.request(user: "alice", offer(alicesKey, .valid))),
                       [.checkAuthorization(user: "alice", key: alicesKey)])
        XCTAssertEqual(try m.handle(.authorizationDecided(true)).first, .offer(.keyboardInteractive))
    }

    func testProbeForAnUnauthorizedKeyIsRefusedAndCounted() throws {
        var m = machine()
        XCTAssertEqual(try m.handle(.request(user: "alice", offer(alicesKey, .absent))),
                       [.checkAuthorization(user: "alice", key: alicesKey)])
        XCTAssertEqual(try m.handle(.authorizationDecided(false)),
                       [refusal("alice", "publickey", "key not authorized (ssh-ed25519 SHA256:test)"), .replyFailure])
        XCTAssertEqual(m.failures, 1)
    }

    func testValidSignatureForAnUnauthorizedKeyIsRefused() throws {
        var m = machine()
        _ = try m.handle(.request(user: "alice", offer(alicesKey, .valid)))
        XCTAssertEqual(try m.handle(.authorizationDecided(false)),
                       [refusal("alice", "publickey", "key not authorized (ssh-ed25519 SHA256:test)"), .replyFailure])
        // Still at the first factor: keyboard-interactive is not open.
        XCTAssertEqual(try m.handle(.request(user: "alice", .keyboardInteractive(isResponse: false))),
                       [refusal("alice", "keyboard-interactive", "publickey required first"), .replyFailure])
    }

    func testInvalidSignatureIsRefusedEvenForAnAuthorizedKey() throws {
        var m = machine()
        _ = try m.handle(.request(user: "alice", offer(alicesKey, .invalid)))
        XCTAssertEqual(try m.handle(.authorizationDecided(true)),
                       [refusal("alice", "publickey", "invalid signature (ssh-ed25519 SHA256:test)"), .replyFailure])
        XCTAssertNil(m.authenticatedUser)
    }

    func testKeyTypeOutsideTheAcceptedListIsRefusedAtTheProbeWithoutAskingTheDelegate() throws {
        var m = machine(algorithms: .fips)
        XCTAssertEqual(try m.handle(.request(user: "alice", offer(alicesKey, .absent))),
                       [refusal("alice", "publickey", "key type ssh-ed25519 not accepted (SHA256:test)"), .replyFailure])
        XCTAssertThrowsError(try m.handle(.authorizationDecided(true)))
    }

    func testUnreadableKeyIsRefusedAndCounted() throws {
        var m = machine()
        XCTAssertEqual(try m.handle(.request(user: "alice", .publicKey(nil))),
                       [refusal("alice", "publickey", "unreadable public key"), .replyFailure])
        XCTAssertEqual(m.failures, 1)
    }

    func testNoneIsRefusedAndNeverCounted() throws {
        var m = machine(maxAuthTries: 2)
        for _ in 0..<50 {
            XCTAssertEqual(try m.handle(.request(user: "alice", .none)),
                           [refusal("alice", "none", "method none is not allowed"), .replyFailure])
        }
        XCTAssertEqual(m.failures, 0)
        XCTAssertFalse(m.isFinished)
    }

    func testOtherMethodsAreRefusedAndCounted() throws {
        var m = machine()
        for method in ["password", "hostbased", "gssapi-with-mic", "unknown"] {
            XCTAssertEqual(try m.handle(.request(user: "alice", .other(method: method))),
                           [refusal("alice", method, "method \(method) is not allowed"), .replyFailure])
        }
        XCTAssertEqual(m.failures, 4)
    }

    func testKeyboardInteractiveBeforePublicKeyIsRefused() throws {
        var m = machine()
        XCTAssertEqual(try m.handle(.request(user: "alice", .keyboardInteractive(isResponse: false))),
                       [refusal("alice", "keyboard-interactive", "publickey required first"), .replyFailure])
    }

    func testResponseOutsideARoundIsRefused() throws {
        var m = machine()
        try passPublicKey(&m)
        XCTAssertEqual(try m.handle(.request(user: "alice", .keyboardInteractive(isResponse: true))),
                       [refusal("alice", "keyboard-interactive", "unexpected response"), .replyFailure])
        // The second factor is still open.
        XCTAssertEqual(try m.handle(.request(user: "alice", .keyboardInteractive(isResponse: false))),
                       [.runKeyboardInteractive(user: "alice")])
    }

    func testPublicKeyAgainAfterPartialSuccessIsRefused() throws {
        var m = machine()
        try passPublicKey(&m)
        XCTAssertEqual(try m.handle(.request(user: "alice", offer(alicesKey, .valid))),
                       [refusal("alice", "publickey", "publickey already done; keyboard-interactive required"),
                        .replyFailure])
    }

    func testAnotherUserNameStartsOverAtPublicKey() throws {
        var m = machine()
        try passPublicKey(&m)
        // bob cannot ride on alice's key.
        XCTAssertEqual(try m.handle(.request(user: "bob", .keyboardInteractive(isResponse: false))),
                       [.offer(.publicKey), refusal("bob", "keyboard-interactive", "publickey required first"),
                        .replyFailure])
        // And alice's progress is gone too.
        XCTAssertEqual(try m.handle(.request(user: "alice", .keyboardInteractive(isResponse: false))),
                       [refusal("alice", "keyboard-interactive", "publickey required first"), .replyFailure])
    }

    func testUserSwitchWithAKeyIsCheckedForTheNewUser() throws {
        var m = machine()
        try passPublicKey(&m)
        XCTAssertEqual(try m.handle(.request(user: "bob", offer(alicesKey, .absent))),
                       [.offer(.publicKey), .checkAuthorization(user: "bob", key: alicesKey)])
    }

    func testRefusedRoundIsCountedAndTheRoundMayBeRetried() throws {
        var m = machine()
        try passPublicKey(&m)
        _ = try m.handle(.request(user: "alice", .keyboardInteractive(isResponse: false)))
        XCTAssertEqual(try m.handle(.keyboardInteractiveEnded(.refused(reason: "wrong code"))),
                       [refusal("alice", "keyboard-interactive", "wrong code"), .replyFailure])
        XCTAssertEqual(m.failures, 1)
        XCTAssertEqual(try m.handle(.request(user: "alice", .keyboardInteractive(isResponse: false))),
                       [.runKeyboardInteractive(user: "alice")])
        XCTAssertEqual(try m.handle(.keyboardInteractiveEnded(.succeeded)).first, .replySuccess(user: "alice"))
    }

    func testAbandonedRoundIsCountedWithoutAReply() throws {
        var m = machine()
        try passPublicKey(&m)
        _ = try m.handle(.request(user: "alice", .keyboardInteractive(isResponse: false)))
        XCTAssertEqual(try m.handle(.keyboardInteractiveEnded(.abandoned)),
                       [refusal("alice", "keyboard-interactive", "client abandoned the round")])
        // The interrupting request is handled next, still at the second factor.
        XCTAssertEqual(try m.handle(.request(user: "alice", .none)),
                       [refusal("alice", "none", "method none is not allowed"), .replyFailure])
    }

    func testClientGoneMidRoundEndsWithoutCounting() throws {
        var m = machine()
        try passPublicKey(&m)
        _ = try m.handle(.request(user: "alice", .keyboardInteractive(isResponse: false)))
        XCTAssertEqual(try m.handle(.keyboardInteractiveEnded(.gone)),
                       [refusal("alice", "keyboard-interactive", "client disconnected or timed out"), .connectionLost])
        XCTAssertEqual(m.failures, 0)
        XCTAssertTrue(m.isFinished)
        XCTAssertNil(m.authenticatedUser)
    }

    func testTheFailureThatReachesMaxAuthTriesDisconnectsInsteadOfReplying() throws {
        var m = machine(maxAuthTries: 3)
        XCTAssertEqual(try m.handle(.request(user: "eve", .other(method: "password"))).last, .replyFailure)
        XCTAssertEqual(try m.handle(.request(user: "eve", .publicKey(nil))).last, .replyFailure)
        XCTAssertEqual(try m.handle(.request(user: "eve", .keyboardInteractive(isResponse: true))),
                       [refusal("eve", "keyboard-interactive", "unexpected response"),
                        .disconnect(user: "eve", failures: 3)])
        XCTAssertTrue(m.isFinished)
        XCTAssertThrowsError(try m.handle(.request(user: "eve", .none)))
    }

    func testRefusedRoundsCountTowardsMaxAuthTries() throws {
        var m = machine(maxAuthTries: 2)
        try passPublicKey(&m)
        _ = try m.handle(.request(user: "alice", .keyboardInteractive(isResponse: false)))
        _ = try m.handle(.keyboardInteractiveEnded(.refused(reason: "wrong code")))
        _ = try m.handle(.request(user: "alice", .keyboardInteractive(isResponse: false)))
        XCTAssertEqual(try m.handle(.keyboardInteractiveEnded(.abandoned)),
                       [refusal("alice", "keyboard-interactive", "client abandoned the round"),
                        .disconnect(user: "alice", failures: 2)])
    }

    func testEventsOutOfOrderAreMisuse() throws {
        var fresh = machine()
        XCTAssertThrowsError(try fresh.handle(.authorizationDecided(true)))
        XCTAssertThrowsError(try fresh.handle(.keyboardInteractiveEnded(.succeeded)))
        XCTAssertNil(fresh.authenticatedUser)

        var checking = machine()
        _ = try checking.handle(.request(user: "alice", offer(alicesKey, .valid)))
        XCTAssertThrowsError(try checking.handle(.request(user: "alice", .none)))
        XCTAssertThrowsError(try checking.handle(.keyboardInteractiveEnded(.succeeded)))

        var running = machine()
        try passPublicKey(&running)
        XCTAssertThrowsError(try running.handle(.authorizationDecided(true)))
        XCTAssertThrowsError(try running.handle(.keyboardInteractiveEnded(.succeeded)))
        _ = try running.handle(.request(user: "alice", .keyboardInteractive(isResponse: false)))
        XCTAssertThrowsError(try running.handle(.request(user: "alice", .none)))
        XCTAssertThrowsError(try running.handle(.authorizationDecided(true)))
        XCTAssertNil(running.authenticatedUser)

        var done = machine()
        try passPublicKey(&done)
        _ = try done.handle(.request(user: "alice", .keyboardInteractive(isResponse: false)))
        _ = try done.handle(.keyboardInteractiveEnded(.succeeded))
        XCTAssertThrowsError(try done.handle(.request(user: "alice", .keyboardInteractive(isResponse: false))))
        XCTAssertEqual(done.authenticatedUser, "alice")
    }

    /// Random client requests, with the delegate answering at random: no
    /// sequence authenticates without an authorized valid signature followed
    /// by a successful round for the same user, and every run ends by
    /// `maxAuthTries` counted failures at the latest.
    func testRandomHostileSequencesNeverAuthenticateWithoutBothFactors() throws {
        var rng = SystemRandomNumberGenerator()
        let users = ["alice", "bob", ""]
        for _ in 0..<2000 {
            var m = machine(maxAuthTries: 4)
            var keyPassed: String?
            var steps = 0
            while !m.isFinished && steps < 200 {
                steps += 1
                let user = users.randomElement(using: &rng)!
                let request: Machine.Request
                switch Int.random(in: 0..<6, using: &rng) {
                case 0: request = .none
                case 1: request = .publicKey(nil)
                case 2: request = offer(alicesKey, [.absent, .valid, .invalid].randomElement(using: &rng)!)
                case 3: request = .keyboardInteractive(isResponse: Bool.random(using: &rng))
                case 4: request = .other(method: "password")
                default: request = offer(Self.key("ecdsa-sha2-nistp256", seed: 2), .valid)
                }
                var actions = try m.handle(.request(user: user, request))
                while let action = actions.first {
                    actions.removeFirst()
                    switch action {
                    case .checkAuthorization:
                        let ok = Bool.random(using: &rng)
                        let next = try m.handle(.authorizationDecided(ok))
                        if next.contains(.replyPartialSuccess) {
                            XCTAssertTrue(ok)
                            if case .publicKey(let o?) = request { XCTAssertEqual(o.signature, .valid) }
                            keyPassed = user
                        }
                        actions += next
                    case .runKeyboardInteractive(let who):
                        XCTAssertEqual(who, keyPassed)
                        let outcome: Machine.KeyboardInteractiveOutcome =
                            [.succeeded, .refused(reason: "no"), .abandoned, .gone].randomElement(using: &rng)!
                        actions += try m.handle(.keyboardInteractiveEnded(outcome))
                    case .replySuccess(let who):
                        XCTAssertEqual(who, keyPassed)
                    case .offer(.publicKey):
                        keyPassed = nil
                    default:
                        break
                    }
                }
                XCTAssertLessThanOrEqual(m.failures, 4)
            }
            XCTAssertTrue(m.isFinished || steps == 200)
        }
    }
}
