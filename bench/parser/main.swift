// gatehouse-bench-parser: how long the gate takes to decide one line.
//
// Measures evaluate() — lex, parse, bind (cmdlet and formatters), authorize
// and template expansion, exactly what the daemon does before it audits and
// spawns — for typical lines against the shipped policy (policies/).
//
//   make bench-parser            (release build; prints median and p99 per line)
//
// Each line is evaluated in many rounds; every single call is timed with
// CLOCK_MONOTONIC, and the median of all calls is the headline figure.
#if canImport(Glibc)
import Glibc
#endif
import CmdletPolicy
import CmdletShell
import Foundation
import GatehouseCore

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

let arguments = CommandLine.arguments
let policyDirectory = arguments.count > 1 ? arguments[1] : "policies"
let rounds = arguments.count > 2 ? Int(arguments[2]) ?? 20000 : 20000

let snapshot: PolicySnapshot
do {
    snapshot = try PolicyLoader.load(directory: policyDirectory, libexecDirectory: "/usr/libexec/gatehouse",
                                     reservedNames: ShellBuiltins.reservedNames, host: SystemHostInspector())
} catch {
    FileHandle.standardError.write(Data("cannot load \(policyDirectory): \(error)\n".utf8))
    exit(1)
}
guard let user = UserName("alice") else { exit(1) }
let claim = AccessClaim(user: user, session: SessionID(rawValue: "bench"), issuedAt: Date(),
                        grants: [RoleGrant(role: "MailboxReader"),
                                 RoleGrant(role: "MailboxAdmin", scope: "contoso",
                                           expires: Date().addingTimeInterval(3600), source: .elevation(requestID: 1))])
let context = ExecutionContext(node: "bench", stateDir: "/var/lib/gatehouse", workingDirectory: "/")

let lines: [(String, Bool)] = [
    ("Get-Mailbox -Identity alice", true),
    ("get-mailbox alice -ResultSize 10", true),
    ("Get-MailboxStatistics -Identity:'bob'", true),
    ("Set-Mailbox -Identity alice -ProhibitSendQuota 10GB", true),
    ("New-Mailbox -Identity eve -DisplayName 'Eve Example'", true),
    ("Get-MailboxReport -Identity alice,bob,carol | Where-Object -Property ItemCount -NE 0 | Sort-Object ItemCount -Descending | Select-Object -Property Identity,ItemCount -First 5", true),
    ("Get-Mailbox -Identity alice; Remove-Mailbox bob", false),
    ("Get-Mailbox \u{2013}Identity alice", false),
]

var all: [Double] = []
func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
print(pad("line", 60) + "    median        p99")
for (line, shouldAllow) in lines {
    let bytes = Array(line.utf8)
    // Check once that the line does what the benchmark claims it does.
    let first = evaluate(line: bytes, claim: claim, snapshot: snapshot, context: context)
    if case .allowed = first { guard shouldAllow else { fatalError("unexpectedly allowed: \(line)") } }
    else if shouldAllow { fatalError("unexpectedly refused: \(line): \(first)") }
    for _ in 0..<1000 { _ = evaluate(line: bytes, claim: claim, snapshot: snapshot, context: context) }
    var samples: [Double] = []
    samples.reserveCapacity(rounds)
    for _ in 0..<rounds {
        let t0 = now()
        let result = evaluate(line: bytes, claim: claim, snapshot: snapshot, context: context)
        let t1 = now()
        withExtendedLifetime(result) {}
        samples.append((t1 - t0) * 1e6)
    }
    samples.sort()
    all += samples
    let shown = line.count > 58 ? String(line.prefix(57)) + "…" : line
    print(pad(shown, 60) + String(format: " %8.2f µs %8.2f µs", samples[samples.count / 2],
                                  samples[samples.count * 99 / 100]))
}
all.sort()
print(String(format: "all %d evaluations: median %.2f µs, p99 %.2f µs (parse+bind+authorize+expand, release build)",
             all.count, all[all.count / 2], all[all.count * 99 / 100]))
