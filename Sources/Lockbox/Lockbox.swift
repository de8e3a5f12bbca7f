import Foundation
import GatehouseCore
import Logging
import PolicyFormat

/// The access-claim authority and the elevation workflow.
///
/// `claim(user:session:now:)` is the baseline roles plus the grants redeemed
/// in that very session and not yet ended; the gateway calls it per command,
/// so an expiry or revocation takes effect at the next command.
///
/// The workflow (submit → manager → Customer Lockbox approver → one-time
/// secret → redeem in a session → expiry/revocation/exit) is checked here,
/// not by roles: "is this the requester's manager" is a relation, not a role.
/// Every transition goes through `RequestStateMachine` and a compare-and-set
/// on the store, and is recorded as one audit event with actor, request id
/// and reason.
public final class Lockbox: Sendable {
    // The rules (directory, lockbox.yaml, notifier) come from `rulesSource`,
    // read once per operation (a reload swaps them there, whole).
    private let rulesSource: LockboxRulesSource
    public let store: LockboxStore
    private let audit: AuditSink
    let clock: Clock
    let logger: Logger?
    /// This gateway node's name, recorded on each grant it redeems; nil in
    /// tools and tests that serve no sessions.
    public let node: String?
    /// Wakes `runSweeper()` when a change sets a deadline, or to stop it.
    let sweeperWake = SweeperWake()

    /// Baseline-only authority (no elevation can be requested): the offline
    /// policy tester and older callers.
    public convenience init(directory: BaselineRoleSource) {
        self.init(directory: directory, policy: .none, store: InMemoryLockboxStore(), audit: DiscardingAuditSink(),
                  clock: SystemClock())
    }

    /// - Parameters:
    ///   - directory: baseline roles; for elevation it must also be a `LockboxDirectory`.
    ///   - logger: the caller's logger (libraries never create one); store and
    ///     audit failures go there.
    public convenience init(directory: BaselineRoleSource, policy: LockboxPolicy, store: LockboxStore, audit: AuditSink,
                            clock: Clock, notifier: LockboxNotifier? = nil, logger: Logger? = nil) {
        self.init(rules: ReplaceableLockboxRules(LockboxRules(directory: directory, policy: policy, notifier: notifier)),
                  store: store, audit: audit, clock: clock, logger: logger)
    }

    /// A Lockbox that follows `rules` (the Gateway's policy snapshot).
    public init(rules: LockboxRulesSource, store: LockboxStore, audit: AuditSink, clock: Clock, logger: Logger? = nil,
                node: String? = nil) {
        self.node = node
        self.rulesSource = rules
        self.store = store
        self.audit = audit
        self.clock = clock
        self.logger = logger
    }

    /// The rules in force: who may request what, for how long, with which
    /// approvals.
    public var policy: LockboxPolicy { rulesSource.currentRules().policy }
    private var notifier: LockboxNotifier? { rulesSource.currentRules().notifier }

    // MARK: - Claim

    /// The caller's claim at `now`. A user missing from the directory gets an
    /// empty claim: default deny. If the store cannot be read, the claim is
    /// baseline only (fail closed for elevation).
    /// `rules` is the snapshot the caller's command runs under; without it,
    /// the rules in force now.
    public func claim(user: UserName, session: SessionID, now: Date, rules: LockboxRules? = nil) -> AccessClaim {
        Self.claim(user: user, session: session, now: now, rules: rules ?? rulesSource.currentRules(),
                   elevations: { elevationGrants(session: session, now: now) })
    }

    /// A claim from `rules`' directory (the baseline roles) and the
    /// session's elevations, asked for only when the user is in that
    /// directory. Under privilege separation the session's side holds the
    /// rules and the monitor answers `elevations`.
    public static func claim(user: UserName, session: SessionID, now: Date, rules: LockboxRules,
                             elevations: () throws -> [RoleGrant]) rethrows -> AccessClaim {
        guard let baseline = rules.directory.baselineRoles(of: user) else {
            return AccessClaim(user: user, session: session, issuedAt: now, grants: [])
        }
        let grants = baseline.map { RoleGrant(role: $0, scope: nil, expires: nil, source: .baseline) }
        return AccessClaim(user: user, session: session, issuedAt: now, grants: grants + (try elevations()))
    }

    /// The grants the session's redeemed elevations give at `now`. If the
    /// store cannot be read, none (fail closed for elevation).
    public func elevationGrants(session: SessionID, now: Date) -> [RoleGrant] {
        do {
            return try store.activeGrants(session: session, now: now).map { g in
                RoleGrant(role: g.role, scope: g.scope, expires: g.expiresAt, source: .elevation(requestID: g.requestID))
            }
        } catch {
            logger?.error("Lockbox store unreadable; claim is baseline only: \(error)")
            return []
        }
    }

    // MARK: - Requests


    /// Files a request after checking every rule; a refusal names the limit.
    /// The duration is never shortened: too long is refused.
    @discardableResult
    public func submit(requester: UserName, role: String, scope: String, durationSeconds: Int, reason: String,
                       ticket: String?, session: SessionID? = nil) throws -> LockboxRequest {
        let now = clock.now()
        let rules = rulesSource.currentRules()
        do {
            guard let dir = rules.lockboxDirectory else { throw LockboxError.invalidRequest("Elevation is not configured.") }
            guard let rule = rules.policy.rule(for: role) else {
                throw LockboxError.invalidRequest("Role '\(Self.clip(role))' cannot be requested through the Lockbox.")
            }
            let groups = dir.groups(of: requester)
            guard groups.contains(where: rule.requestableBy.contains) else {
                throw LockboxError.notAuthorized("Your groups (\(groups.isEmpty ? "none" : groups.joined(separator: ", "))) "
                    + "may not request \(rule.role); it may be requested by members of: "
                    + rule.requestableBy.joined(separator: ", ") + ".")
            }
            guard durationSeconds > 0 else { throw LockboxError.invalidRequest("The duration must be longer than zero.") }
            guard durationSeconds <= rule.maxDurationSeconds else {
                throw LockboxError.invalidRequest("The requested duration \(PolicyDuration.format(durationSeconds)) "
                    + "exceeds the maximum for \(rule.role) of \(PolicyDuration.format(rule.maxDurationSeconds)). "
                    + "Nothing was filed; request \(PolicyDuration.format(rule.maxDurationSeconds)) or less.")
            }
            guard let tenant = dir.tenant(named: scope) else {
                throw LockboxError.invalidRequest("Unknown scope '\(Self.clip(scope))'. Known tenants: "
                                                  + dir.tenantNames.joined(separator: ", ") + ".")
            }
            let trimmedReason = reason.trimmingCharacters(in: .whitespaces)
            guard !trimmedReason.isEmpty else { throw LockboxError.invalidRequest("A reason is required (-Reason).") }
            guard trimmedReason.count <= 500, !Self.hasControl(trimmedReason) else {
                throw LockboxError.invalidRequest("The reason must be one line of at most 500 characters.")
            }
            if let ticket {
                guard rule.ticketMatches(ticket), !Self.hasControl(ticket) else {
                    throw LockboxError.invalidRequest("Ticket '\(Self.clip(ticket))' does not match the ticket pattern "
                                                      + "for \(rule.role): \(rule.ticketPattern ?? "").")
                }
            } else if rule.ticketRequired {
                throw LockboxError.invalidRequest("\(rule.role) requires a ticket (-Ticket) matching \(rule.ticketPattern ?? "any text").")
            }
            guard let manager = dir.manager(of: requester), manager != requester else {
                throw LockboxError.invalidRequest("You have no manager in the directory, so nobody could approve this request.")
            }
            _ = manager
            let needsCustomer = rule.customerStage && tenant.customerLockbox
            var written: [AuditEvent] = []
            let request = try store.insert(NewRequest(
                requester: requester, role: rule.role, scope: scope, durationSeconds: durationSeconds,
                reason: trimmedReason, ticket: ticket, needsCustomerApproval: needsCustomer, createdAt: now,
                pendingDeadline: now.addingTimeInterval(TimeInterval(rule.pendingTTLSeconds)))) { request in
                var fields = describe(request)
                fields["actor"] = requester.rawValue
                written.append(try write(.lockboxRequested, user: requester, session: session, fields))
            }
            notify(written)
            sweeperWake.signal()
            return request
        } catch let error as LockboxError {
            record(.lockboxRefused, user: requester, session: session, [
                "action": "request", "actor": requester.rawValue, "role": Self.clip(role), "scope": Self.clip(scope),
                "durationSeconds": String(durationSeconds), "refusal": error.message,
            ])
            throw error
        }
    }

    /// Approves at the request's current stage: the requester's manager first,
    /// then (Customer Lockbox on) one of the tenant's approvers who is not the
    /// manager who already approved. Nobody approves their own request.
    @discardableResult
    public func approve(id: Int64, by actor: UserName, comment: String? = nil,
                        session: SessionID? = nil) throws -> LockboxRequest {
        try refusingAudited("approve", id: id, actor: actor, session: session) {
            let rules = rulesSource.currentRules()
            let request = try current(id)
            try checkApprover(actor, for: request, action: "approve", rules)
            let now = clock.now()
            var changes = RequestChanges()
            let event: RequestEvent
            if request.state == .pendingManager {
                event = .managerApprove(customerLockbox: request.needsCustomerApproval)
                changes.managerApprover = actor
                changes.managerComment = comment.map(Self.clip)
            } else {
                event = .customerApprove
                changes.customerApprover = actor
                changes.customerComment = comment.map(Self.clip)
            }
            let next = try RequestStateMachine.next(request.state, on: event)
            if next == .approved {
                changes.approvedAt = now
                let window = rules.policy.rule(for: request.role)?.redeemWindowSeconds ?? LockboxPolicy.defaultRedeemWindow
                changes.deadline = now.addingTimeInterval(TimeInterval(window))
            }
            var written: [AuditEvent] = []
            guard let updated = try store.transition(id: id, from: request.state, to: next, changes: changes,
                                                     onlyInSession: nil, beforeCommit: { updated in
                var fields = describe(updated)
                fields["actor"] = actor.rawValue
                fields["stage"] = request.state == .pendingManager ? "manager" : "customer"
                if let comment { fields["comment"] = Self.clip(comment) }
                written.append(try write(.lockboxApproved, user: actor, session: session, fields))
            }) else {
                throw LockboxError.conflict(id: id)
            }
            notify(written)
            if next == .approved { sweeperWake.signal() }  // the redeem window's deadline
            return updated
        }
    }

    /// Denies at the current stage (same approver rules as approving). Final.
    @discardableResult
    public func deny(id: Int64, by actor: UserName, reason: String, session: SessionID? = nil) throws -> LockboxRequest {
        try refusingAudited("deny", id: id, actor: actor, session: session) {
            let trimmed = reason.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else { throw LockboxError.invalidRequest("A reason is required to deny (-Reason).") }
            let request = try current(id)
            try checkApprover(actor, for: request, action: "deny", rulesSource.currentRules())
            return try end(request, event: .deny, kind: .lockboxDenied, actor: actor, reason: Self.clip(trimmed),
                           session: session)
        }
    }

    /// Withdraws a request or ends a running grant, whatever its state: the
    /// requester's manager, an approver of the tenant, or a Lockbox admin may.
    /// Deleting never stands in for revoking: the row stays, the state says revoked.
    @discardableResult
    public func revoke(id: Int64, by actor: UserName, reason: String? = nil,
                       session: SessionID? = nil) throws -> LockboxRequest {
        try refusingAudited("revoke", id: id, actor: actor, session: session) {
            var request = try current(id)
            guard mayRevoke(actor, request, rulesSource.currentRules()) else {
                throw LockboxError.notAuthorized("Only the requester's manager, the tenant's approvers or a Lockbox "
                                                 + "admin may revoke request \(id).")
            }
            // The state may move under us (approved → active); retry a few times.
            for _ in 0..<3 {
                do {
                    return try end(request, event: .revoke, kind: .lockboxRevoked, actor: actor,
                                   reason: reason.map(Self.clip) ?? "revoked by \(actor)", session: session)
                } catch LockboxError.conflict {
                    request = try current(id)
                }
            }
            throw LockboxError.conflict(id: id)
        }
    }

    /// The requester withdraws their own request (or its grant).
    @discardableResult
    public func cancel(id: Int64, by actor: UserName, session: SessionID? = nil) throws -> LockboxRequest {
        try refusingAudited("cancel", id: id, actor: actor, session: session) {
            let request = try current(id)
            guard request.requester == actor else { throw LockboxError.notFound(id: id) }
            return try end(request, event: .cancel, kind: .lockboxCancelled, actor: actor, reason: "withdrawn by requester",
                           session: session)
        }
    }

    /// Issues the one-time secret to the requester, exactly once. The secret
    /// is generated here, at its only showing, and the store receives only its
    /// salted hash, so the plain text never rests anywhere.
    /// How many requests are in each state, for the metrics.
    public func requestCounts() throws -> [RequestState: Int] { try store.countsByState() }

    public func issueCredential(id: Int64, to actor: UserName, session: SessionID? = nil) throws -> OneTimeSecret {
        try refusingAudited("credential", id: id, actor: actor, session: session) {
            let request = try current(id)
            guard request.requester == actor else { throw LockboxError.notFound(id: id) }
            guard request.state == .approved else {
                throw LockboxError.secretRejected(Self.notRedeemable(request))
            }
            guard request.secretHash == nil else {
                throw LockboxError.secretRejected("The credential for request \(id) was already shown; it is shown only once.")
            }
            let secret = OneTimeSecret.generate()
            let salt = OneTimeSecret.makeSalt()
            var written: [AuditEvent] = []
            guard try store.setSecret(id: id, salt: salt, hash: secret.hash(salt: salt), issuedAt: clock.now(),
                                      beforeCommit: {
                written.append(try write(.lockboxCredentialIssued, user: actor, session: session, [
                    "requestID": String(id), "actor": actor.rawValue, "reason": "credential shown to requester"]))
            }) else {
                throw LockboxError.secretRejected("The credential for request \(id) was already shown; it is shown only once.")
            }
            notify(written)
            return secret
        }
    }

    /// Redeems the secret in `session`: single use, bound to that session,
    /// the grant's clock starts now.
    @discardableResult
    public func redeem(id: Int64, secret typed: borrowing SecretBytes, by actor: UserName,
                       session: SessionID) throws -> LockboxRequest {
        let now = clock.now()
        do {
            let request = try current(id)
            guard request.requester == actor else { throw LockboxError.notFound(id: id) }
            guard request.state == .approved else { throw LockboxError.secretRejected(Self.notRedeemable(request)) }
            guard let salt = request.secretSalt, let hash = request.secretHash else {
                throw LockboxError.secretRejected("Fetch the credential first: Get-LockboxCredential -Id \(id).")
            }
            guard OneTimeSecret.matches(typed: typed, salt: salt, hash: hash) else {
                throw LockboxError.secretRejected("The secret does not match request \(id).")
            }
            let next = try RequestStateMachine.next(request.state, on: .redeem)
            var changes = RequestChanges()
            changes.session = session
            changes.node = node
            changes.activatedAt = now
            let expires = now.addingTimeInterval(TimeInterval(request.durationSeconds))
            changes.expiresAt = expires
            changes.deadline = expires
            var written: [AuditEvent] = []
            guard let updated = try store.transition(id: id, from: .approved, to: next, changes: changes,
                                                     onlyInSession: nil, beforeCommit: { updated in
                var fields = describe(updated)
                fields["actor"] = actor.rawValue
                written.append(try write(.elevationStart, user: actor, session: session, fields))
            }) else {
                throw LockboxError.secretRejected("Request \(id) was already redeemed; its secret cannot be used again.")
            }
            notify(written)
            sweeperWake.signal()  // the grant's expiry
            return updated
        } catch let error as LockboxError {
            record(.elevationFailed, user: actor, session: session,
                   ["requestID": String(id), "actor": actor.rawValue, "refusal": error.message])
            throw error
        }
    }

    /// Ends every grant bound to `session` (Exit-Elevation, or the session
    /// ended). Returns the requests that were ended.
    @discardableResult
    public func endElevations(session: SessionID, user: UserName, reason: String) -> [LockboxRequest] {
        let active: [LockboxRequest]
        do {
            active = try store.requests(RequestQuery(requester: user, states: [.active])).filter { $0.session == session }
        } catch {
            logger?.error("Lockbox store unreadable while ending elevations: \(error)")
            return []
        }
        return endGrants(active, actor: user, reason: reason)
    }

    /// Ends every active grant of this node bound to a session not in `live`:
    /// at daemon start (nothing is live yet) these are grants whose session
    /// died with this node's previous daemon. Grants redeemed on another node
    /// (a shared store) are that node's, and stay; a grant with no node
    /// recorded (redeemed before nodes were recorded, or by a Lockbox without
    /// one) is ended by any node, as before.
    @discardableResult
    public func endElevations(ofSessionsOtherThan live: Set<SessionID>, reason: String) -> [LockboxRequest] {
        let active: [LockboxRequest]
        do {
            active = try store.requests(RequestQuery(states: [.active], limit: 10_000))
        } catch {
            logger?.error("Lockbox store unreadable while ending orphaned elevations: \(error)")
            return []
        }
        let mine = active.filter { $0.node == nil || $0.node == node }
        return endGrants(mine.filter { $0.session.map { !live.contains($0) } ?? false }, actor: nil, reason: reason)
    }

    /// Ends active grants, each in its own session. A grant whose time already
    /// ran out is recorded as expired, not as ended.
    private func endGrants(_ active: [LockboxRequest], actor: UserName?, reason: String) -> [LockboxRequest] {
        let now = clock.now()
        return active.compactMap { request in
            if let deadline = request.deadline, deadline <= now { return try? expire(request) }
            return try? end(request, event: .cancel, kind: .elevationEnd, actor: actor, reason: reason,
                            session: request.session, onlyInSession: request.session)
        }
    }

    /// Expires every request whose deadline passed (pending TTL, redeem
    /// window, grant expiry). Safe to call from many threads and processes:
    /// each expiry is a compare-and-set, and only the winner records it.
    @discardableResult
    public func sweep() -> [LockboxRequest] {
        sweep(at: clock.now()).expired
    }

    /// One sweep at `now`. `settled` is false when a due request is still
    /// due afterwards because its expiry failed (the audit log or the store
    /// refused it); one that another thread moved on first counts as settled.
    func sweep(at now: Date) -> (expired: [LockboxRequest], settled: Bool) {
        let due: [LockboxRequest]
        do {
            due = try store.due(now: now, limit: 500)
        } catch {
            logger?.error("Lockbox sweep failed: \(error)")
            return ([], false)
        }
        var expired: [LockboxRequest] = [], settled = true
        for request in due {
            do {
                expired.append(try expire(request))
            } catch LockboxError.conflict {
                continue
            } catch {
                settled = false
            }
        }
        return (expired, settled)
    }

    // MARK: - Queries

    /// Requests the user filed, newest first.
    public func requests(of user: UserName, limit: Int = 50) throws -> [LockboxRequest] {
        try store.requests(RequestQuery(requester: user, limit: limit))
    }

    /// Requests waiting for this user's approval at their current stage.
    public func pending(for approver: UserName) throws -> [LockboxRequest] {
        let rules = rulesSource.currentRules()
        return try store.requests(RequestQuery(states: [.pendingManager, .pendingCustomer], limit: 1000))
            .filter { (try? checkApprover(approver, for: $0, action: "approve", rules)) != nil }
            .filter { $0.deadline.map { $0 > clock.now() } ?? true }
    }

    /// One request, if the user may see it (requester, approver or admin).
    public func request(id: Int64, visibleTo user: UserName) throws -> LockboxRequest {
        let rules = rulesSource.currentRules()
        guard let r = try store.request(id: id),
              r.requester == user || isApprover(user, of: r, rules) || isAdmin(user, rules) else {
            throw LockboxError.notFound(id: id)
        }
        return r
    }

    // MARK: - Internals

    /// Loads a request, expiring it first if its deadline has passed, so no
    /// action ever applies to a request that should already have lapsed.
    private func current(_ id: Int64) throws -> LockboxRequest {
        guard let request = try store.request(id: id) else { throw LockboxError.notFound(id: id) }
        if !request.state.isTerminal, let deadline = request.deadline, deadline <= clock.now() {
            if let expired = try? expire(request) { return expired }
            return try store.request(id: id) ?? request
        }
        return request
    }

    private func expire(_ request: LockboxRequest) throws -> LockboxRequest {
        let why: String
        switch request.state {
        case .pendingManager, .pendingCustomer: why = "not approved within the pending TTL"
        case .approved: why = "not redeemed within the redeem window"
        default: why = "the grant's duration ended"
        }
        let kind: AuditEventKind = request.state == .active ? .elevationEnd : .lockboxExpired
        return try end(request, event: .expire, kind: kind, actor: nil, reason: why, session: request.session)
    }

    /// One terminal transition: state machine, compare-and-set, audit.
    private func end(_ request: LockboxRequest, event: RequestEvent, kind: AuditEventKind, actor: UserName?,
                     reason: String, session: SessionID?, onlyInSession: SessionID? = nil) throws -> LockboxRequest {
        let next = try RequestStateMachine.next(request.state, on: event)
        var changes = RequestChanges()
        changes.clearDeadline = true
        changes.endedAt = clock.now()
        changes.endedBy = actor
        changes.endReason = reason
        var written: [AuditEvent] = []
        guard let updated = try store.transition(id: request.id, from: request.state, to: next, changes: changes,
                                                 onlyInSession: onlyInSession, beforeCommit: { updated in
            var fields = describe(updated)
            fields["actor"] = actor?.rawValue ?? "lockbox"
            fields["reason"] = reason
            fields["previousState"] = request.state.rawValue
            if request.state == .active && kind != .elevationEnd {
                // A revoked or cancelled grant also ends the elevation: say so once more for the session's record.
                written.append(try write(kind, user: actor ?? request.requester, session: session, fields))
                written.append(try write(.elevationEnd, user: request.requester, session: request.session, fields))
            } else {
                written.append(try write(kind, user: actor ?? request.requester, session: session ?? request.session, fields))
            }
        }) else {
            throw LockboxError.conflict(id: request.id)
        }
        notify(written)
        return updated
    }

    private func checkApprover(_ actor: UserName, for request: LockboxRequest, action: String,
                               _ rules: LockboxRules) throws {
        if actor == request.requester {
            throw LockboxError.notAuthorized("Nobody may \(action) their own request.")
        }
        switch request.state {
        case .pendingManager:
            guard rules.lockboxDirectory?.manager(of: request.requester) == actor else {
                throw LockboxError.notAuthorized("Request \(request.id) is waiting for \(request.requester)'s manager; "
                                                 + "you are not an approver at this stage.")
            }
        case .pendingCustomer:
            if request.managerApprover == actor {
                throw LockboxError.notAuthorized("You already approved request \(request.id); nobody approves twice. "
                                                 + "It is waiting for the approver of tenant \(request.scope).")
            }
            guard rules.lockboxDirectory?.tenant(named: request.scope)?.approvers.contains(actor) == true else {
                throw LockboxError.notAuthorized("Request \(request.id) is waiting for the Customer Lockbox approver of "
                                                 + "tenant \(request.scope); you are not one.")
            }
        default:
            _ = try RequestStateMachine.next(request.state, on: action == "deny" ? .deny : .customerApprove)
        }
    }

    private func isApprover(_ user: UserName, of request: LockboxRequest, _ rules: LockboxRules) -> Bool {
        rules.lockboxDirectory?.manager(of: request.requester) == user
            || rules.lockboxDirectory?.tenant(named: request.scope)?.approvers.contains(user) == true
    }

    private func isAdmin(_ user: UserName, _ rules: LockboxRules) -> Bool {
        guard let dir = rules.lockboxDirectory else { return false }
        return dir.groups(of: user).contains(where: rules.policy.adminGroups.contains)
    }

    private func mayRevoke(_ user: UserName, _ request: LockboxRequest, _ rules: LockboxRules) -> Bool {
        user != request.requester && (isApprover(user, of: request, rules) || isAdmin(user, rules))
    }

    /// Runs an approver action; a refusal is audited as `lockbox.refused`.
    private func refusingAudited<T>(_ action: String, id: Int64, actor: UserName, session: SessionID?,
                                    _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as LockboxError {
            record(.lockboxRefused, user: actor, session: session,
                   ["action": action, "requestID": String(id), "actor": actor.rawValue, "refusal": error.message])
            throw error
        }
    }

    static func notRedeemable(_ r: LockboxRequest) -> String {
        switch r.state {
        case .pendingManager: return "Request \(r.id) is waiting for \(r.requester)'s manager."
        case .pendingCustomer: return "Request \(r.id) is waiting for the Customer Lockbox approver of \(r.scope)."
        case .approved: return "Request \(r.id) is approved."
        case .active: return "Request \(r.id) was already redeemed; its secret cannot be used again."
        case .denied, .expired, .revoked, .cancelled: return "Request \(r.id) is \(r.state.rawValue)."
        }
    }

    private func describe(_ r: LockboxRequest) -> [String: String] {
        var f = ["requestID": String(r.id), "requester": r.requester.rawValue, "role": r.role, "scope": r.scope,
                 "state": r.state.rawValue, "durationSeconds": String(r.durationSeconds), "requestReason": r.reason]
        if let t = r.ticket { f["ticket"] = t }
        if let e = r.expiresAt { f["expires"] = ISO8601DateFormatter().string(from: e) }
        return f
    }

    /// A refusal (nothing changed): recorded if the audit log can take it,
    /// and logged if not.
    private func record(_ kind: AuditEventKind, user: UserName?, session: SessionID?, _ fields: [String: String]) {
        let event = AuditEvent(time: clock.now(), kind: kind, user: user?.rawValue, session: session, fields: fields)
        do {
            try audit.record(event)
        } catch {
            logger?.error("audit write failed for \(kind.rawValue): \(error)")
        }
        notifier?.notify(event)
    }

    /// A change's event, written from inside the store's transaction
    /// (`beforeCommit`): if the audit log does not take it, this throws and
    /// the store rolls the change back, so nothing changes unrecorded.
    private func write(_ kind: AuditEventKind, user: UserName?, session: SessionID?,
                       _ fields: [String: String]) throws -> AuditEvent {
        let event = AuditEvent(time: clock.now(), kind: kind, user: user?.rawValue, session: session, fields: fields)
        do {
            try audit.record(event)
        } catch {
            logger?.error("audit write failed for \(kind.rawValue); the change was rolled back: \(error)")
            throw LockboxError.auditUnavailable
        }
        return event
    }

    /// Hooks hear about a change only once it is committed.
    private func notify(_ events: [AuditEvent]) {
        for event in events { notifier?.notify(event) }
    }

    static func clip(_ text: String) -> String {
        let clean = TerminalText.sanitize(text, keepLineBreaks: false)
        return clean.count > 200 ? String(clean.prefix(200)) + "…" : clean
    }

    static func hasControl(_ text: String) -> Bool {
        text.unicodeScalars.contains(where: \.isControlCharacter)
    }
}

/// An audit sink that keeps nothing: only for the baseline-only authority,
/// which records no Lockbox events.
struct DiscardingAuditSink: AuditSink {
    func record(_ event: AuditEvent) throws {}
}
