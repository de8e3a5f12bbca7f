import CmdletPolicy
import GatehouseCore
import PolicyFormat

/// Tab completion for the interactive shell: command names, parameter names
/// and `Get-Help` targets, computed from the same visibility rule as
/// `Get-Command`, so a hidden cmdlet is never offered (nor its parameters).
public enum Completion {
    /// The built-ins by their cmdlet-style names (`exit` is typed in full anyway).
    static let builtinNames = ShellBuiltins.names.filter { $0 != "exit" }

    /// The text to append to `line` (the bytes typed so far): the rest of
    /// the only candidate plus a space, or the candidates' longest common
    /// continuation; empty when there is nothing to add.
    /// - Parameter provided: the commands the embedding application
    ///   answers itself (`ShellCommandProvider.definitions`), offered to everyone.
    public static func complete(line: [UInt8], claim: AccessClaim, snapshot: PolicySnapshot,
                                provided: [CmdletDefinition] = []) -> [UInt8] {
        candidates(line: line, claim: claim, snapshot: snapshot, provided: provided).addition
    }

    /// The addition (as `complete`) and every candidate that matches what
    /// is typed, for a second Tab to list when there is no unique one.
    public static func candidates(line: [UInt8], claim: AccessClaim, snapshot: PolicySnapshot,
                                  provided: [CmdletDefinition] = []) -> (addition: [UInt8], candidates: [String]) {
        let none: (addition: [UInt8], candidates: [String]) = ([], [])
        guard line.count <= Lexer.maxLineBytes, case .success(let scalars) = UTF8Validation.decode(line),
              !scalars.contains(where: { $0.isControlCharacter && $0 != "\t" }) else { return none }
        let text = String(String.UnicodeScalarView(scalars))
        // Words of the current pipeline element, and the one being typed.
        let element = text.split(separator: "|", omittingEmptySubsequences: false).last.map(String.init) ?? ""
        let afterPipe = text.contains("|")
        let words = element.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        let endsWithSpace = element.last == " " || element.last == "\t"
        let current = endsWithSpace ? "" : (words.last ?? "")
        let previous = endsWithSpace ? words : Array(words.dropLast())
        if current.contains("'") || current.contains("\"") { return none }

        let visible = Authorizer.visibleCmdlets(claim: claim, snapshot: snapshot)
        // Everything with a declaration whose parameters can be offered.
        let declared = visible + provided + [Builtins.enterElevation]
        var candidates: [String] = []
        if previous.isEmpty {
            candidates = afterPipe ? Pipeline.formatterNames : visible.map(\.name) + builtinNames + provided.map(\.name)
        } else if current.hasPrefix("-") {
            let command = previous[0]
            if let cmdlet = declared.first(where: { $0.isNamed(command) }) {
                candidates = cmdlet.parameters.map { "-" + $0.name }
            } else if afterPipe, let name = Pipeline.formatterNames.first(where: { ASCII.equalsIgnoringCase($0, command) }) {
                candidates = Pipeline.parameterNames(of: name).map { "-" + $0 }
            } else if ASCII.equalsIgnoringCase(command, "Get-Help") {
                candidates = Builtins.helpParameters.map { "-" + $0.name }
            }
        } else if ASCII.equalsIgnoringCase(previous[0], "Get-Help") {
            candidates = declared.map(\.name)
        }
        var seen = Set<String>()
        let matching = candidates.filter { ASCII.hasPrefixIgnoringCase($0, current) && seen.insert($0).inserted }
        guard let first = matching.first else { return none }
        if matching.count == 1 {
            return (Array((String(first.unicodeScalars.dropFirst(current.unicodeScalars.count)) + " ").utf8), matching)
        }
        // Longest common continuation, ASCII case-insensitively.
        let lowered = matching.map { Array(ASCII.lowercased($0).unicodeScalars) }
        var length = current.unicodeScalars.count
        while lowered.allSatisfy({ $0.count > length && $0[length] == lowered[0][length] }) { length += 1 }
        let spelled = Array(first.unicodeScalars)
        return (Array(String(String.UnicodeScalarView(spelled[current.unicodeScalars.count..<length])).utf8), matching)
    }
}
