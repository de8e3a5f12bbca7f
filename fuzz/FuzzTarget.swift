// libFuzzer entry point over the gate: lexer, parser, binder, authorizer,
// template expansion, tab completion, and the JSON parser + formatters that
// render backend output. Built by fuzz/run with -sanitize=fuzzer,address; not part of
// `make test`.
//
// Besides "no crash, no sanitizer report", it checks invariants that must
// hold for every input:
// - an allowed line's argv elements hold no control character (nothing can
//   smuggle a newline or escape into a backend argument);
// - a value taken from the line never starts with '-' or '@' in argv
//   (the fuzz policy's templates put every value in its own element);
// - rendered formatter output holds no raw control character but '\n'.
import CmdletPolicy
import CmdletShell
import Foundation
import GatehouseCore

let fuzzCmdlets = """
cmdlets:
  Get-Thing:
    synopsis: Fuzz target with every parameter type.
    aliases: [gth, Show-Th1ng]
    parameters:
      Identity: {type: string, pattern: '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$', position: 0}
      Names: {type: 'string[]', pattern: '^[a-z]{1,8}$', maxItems: 4}
      Limit: {type: int, min: 1, max: 1000}
      Quota: {type: size, min: 1MB, max: 100GB}
      Window: {type: duration, min: 1m, max: 7d}
      Since: {type: datetime}
      Mode: {type: enum, set: [Normal, Strict]}
      Label: {type: string, set: [red, green]}
      Force: {type: switch}
    backend:
      executable: /usr/bin/true
      argv:
        - get
        - "{scope}"
        - when: Identity
          argv: ["{Identity}"]
        - when: Names
          argv: ["{Names}"]
        - when: Limit
          argv: ["{Limit}"]
        - when: Quota
          argv: ["{Quota}"]
        - when: Window
          argv: ["{Window}"]
        - when: Since
          argv: ["{Since}"]
        - when: Mode
          argv: ["{Mode}"]
        - when: Label
          argv: ["{Label}"]
        - when: Force
          argv: ["force"]
    output: json
  Set-Thing:
    synopsis: Needs a role the claim holds with restrictions.
    parameters:
      Identity: {type: string, pattern: '^[a-z]{1,16}$', mandatory: true, position: 0}
      Limit: {type: int, min: 1, max: 100}
    backend:
      executable: /usr/bin/true
      argv: [set, "{Identity}", {when: Limit, argv: ["{Limit}"]}]
"""

let fuzzRoles = """
roles:
  Reader:
    cmdlets: [Get-Thing]
  Writer:
    cmdlets:
      - Set-Thing:
          parameters:
            Identity: {pattern: '^[a-m]+$'}
            Limit: {max: 10}
deny:
  - cmdlet: Set-Thing
    parameters:
      Identity: {pattern: '^adm.*$'}
"""

let fuzzSnapshot: PolicySnapshot = {
    do {
        return try PolicyLoader.load(sources: [.init(kind: .cmdlets, file: "fuzz/cmdlets.yaml", text: fuzzCmdlets),
                                               .init(kind: .roles, file: "fuzz/roles.yaml", text: fuzzRoles)],
                                     libexecDirectory: "/usr/libexec/gatehouse",
                                     reservedNames: ShellBuiltins.reservedNames, host: SystemHostInspector())
    } catch {
        fatalError("fuzz policy does not load: \(error)")
    }
}()

let fuzzClaim = AccessClaim(user: UserName("alice")!, session: SessionID(rawValue: "fuzz"),
                            issuedAt: Date(timeIntervalSince1970: 1_767_225_600),
                            grants: [RoleGrant(role: "Reader", scope: "contoso",
                                               expires: Date(timeIntervalSince1970: 1_767_229_200),
                                               source: .elevation(requestID: 1)),
                                     RoleGrant(role: "Writer", scope: "contoso",
                                               expires: Date(timeIntervalSince1970: 1_767_229_200),
                                               source: .elevation(requestID: 2))])
let fuzzContext = ExecutionContext(node: "fuzz", stateDir: "/var/lib/gatehouse", workingDirectory: "/")

let fuzzStages: [String] = [
    "Get-Thing | Select-Object -Property a,b -First 3",
    "Get-Thing | Where-Object -Property a -Like 'x*y?'",
    "Get-Thing | Where-Object -Property a -Match '^[a-c]+(x|y)*$' | Sort-Object a -Descending",
    "Get-Thing | Measure-Object -Property n -Sum -Average -Minimum -Maximum",
    "Get-Thing | Format-List",
    "Get-Thing | ConvertTo-Json",
    "Get-Thing",
    "Get-Thing | Where-Object n -GT 1KB | Select-Object -Skip 1 -Last 2 -Unique | Format-Table -AutoSize -Wrap",
    "Get-Thing | Where-Object a -CNotMatch 'x+' | Where-Object b -In 1,2,x | Sort-Object b,a -Unique",
    "Get-Thing | Where-Object a -Contains x | Group-Object a,b | ConvertTo-Csv",
    "Get-Thing | Select-Object -ExpandProperty a | Group-Object -Property a -NoElement",
]

func checkClean(_ text: String, _ what: String) {
    for s in text.unicodeScalars where (s.isControlCharacter && s != "\n" && s != "\t") || s.isBidiControl {
        fatalError("\(what) holds control character U+\(String(s.value, radix: 16))")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))

    // 1. The input as a command line.
    if case .allowed(let command) = evaluate(line: bytes, claim: fuzzClaim, snapshot: fuzzSnapshot,
                                             context: fuzzContext) {
        for element in command.argv {
            checkClean(element, "argv element")
            if element != command.argv[0], element.hasPrefix("-") || element.hasPrefix("@") {
                fatalError("a value reached argv as an option or response file: \(command.argv)")
            }
        }
        if command.argv.contains(where: { $0.unicodeScalars.contains("\n") }) { fatalError("newline in argv") }
    }

    // 2. The input as a half-typed line for tab completion.
    let (completion, candidates) = Completion.candidates(line: bytes, claim: fuzzClaim, snapshot: fuzzSnapshot)
    if let text = String(validating: completion, as: UTF8.self) { checkClean(text, "completion") }
    else if !completion.isEmpty { fatalError("completion is not valid UTF-8") }
    for candidate in candidates { checkClean(candidate, "completion candidate") }

    // 3. The input as backend JSON, rendered through a fixed set of stages.
    for (i, line) in fuzzStages.enumerated() where size % fuzzStages.count == i || size < 64 {
        guard case .allowed(let command) = evaluate(line: Array(line.utf8), claim: fuzzClaim, snapshot: fuzzSnapshot,
                                                    context: fuzzContext) else { fatalError("stage line refused: \(line)") }
        if case .success(let text) = Pipeline.render(json: bytes, stages: command.formatters, columns: 80) {
            checkClean(text, "rendered output")
        }
    }
    return 0
}
