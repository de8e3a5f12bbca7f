import Lockbox
import XCTest

/// Every (state, event) pair: the legal ones lead where the design says,
/// every other one throws.
final class StateMachineTests: XCTestCase {
    static let events: [RequestEvent] = [
        .managerApprove(customerLockbox: true), .managerApprove(customerLockbox: false), .customerApprove,
        .deny, .redeem, .expire, .revoke, .cancel,
    ]

    static let legal: [RequestState: [RequestEvent: RequestState]] = [
        .pendingManager: [
            .managerApprove(customerLockbox: true): .pendingCustomer,
            .managerApprove(customerLockbox: false): .approved,
            .deny: .denied, .expire: .expired, .revoke: .revoked, .cancel: .cancelled,
        ],
        .pendingCustomer: [
            .customerApprove: .approved, .deny: .denied, .expire: .expired, .revoke: .revoked, .cancel: .cancelled,
        ],
        .approved: [.redeem: .active, .expire: .expired, .revoke: .revoked, .cancel: .cancelled],
        .active: [.expire: .expired, .revoke: .revoked, .cancel: .cancelled],
    ]

    func testEveryPairOfStateAndEvent() throws {
        var legalCount = 0
        var illegalCount = 0
        for state in RequestState.allCases {
            for event in Self.events {
                if let expected = Self.legal[state]?[event] {
                    XCTAssertEqual(try RequestStateMachine.next(state, on: event), expected, "\(state) + \(event)")
                    legalCount += 1
                } else {
                    XCTAssertThrowsError(try RequestStateMachine.next(state, on: event), "\(state) + \(event)") { error in
                        guard case LockboxError.illegalTransition(let from, _) = error else {
                            return XCTFail("wrong error \(error)")
                        }
                        XCTAssertEqual(from, state)
                    }
                    illegalCount += 1
                }
            }
        }
        XCTAssertEqual(legalCount, 18)
        XCTAssertEqual(illegalCount, RequestState.allCases.count * Self.events.count - 18)
    }

    func testTerminalStatesAreExactlyTheFourEnds() {
        XCTAssertEqual(Set(RequestState.allCases.filter(\.isTerminal)), [.denied, .expired, .revoked, .cancelled])
    }
}

extension RequestEvent: Hashable {
    public func hash(into hasher: inout Hasher) {
        switch self {
        case .managerApprove(let c): hasher.combine(0); hasher.combine(c)
        case .customerApprove: hasher.combine(1)
        case .deny: hasher.combine(2)
        case .redeem: hasher.combine(3)
        case .expire: hasher.combine(4)
        case .revoke: hasher.combine(5)
        case .cancel: hasher.combine(6)
        }
    }
}
