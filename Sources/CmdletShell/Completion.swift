import CmdletPolicy
import GatehouseCore

/// Tab completion for the interactive shell: command names, parameter names
/// and `Get-Help` targets, computed from the same visibility rule as
/// `Get-Command`, so a hidden cmdlet is never offered (nor its parameters).
public enum Completion {
    static let builtinNames = ["Get-Command", "Get-Help", "Get-AccessClaim", "Enter-Elevation", "Exit-Session"]

    /// The text to append to `line` (the bytes typed so far): the rest of
    /// the only candidate plus a space, or the candidates' longest common
    /// continuation; empty when there is nothing to add.
    /// - Parameter extraCommands: command names the embedding application
    ///   answers itself (the gateway's Lockbox commands), offered to everyone.
    public static func complete(line: [UInt8], claim: AccessClaim, snapshot: PolicySnapshot,
                                extraCommands: [String] = []) -> [UInt8] {
        candidates(line: line, claim: claim, snapshot: snapshot, extraCommands: extraCommands).addition
    }

    /// The addition (as `complete`) and every candidate that matches what
    /// is typed, for a second Tab to list when there is no unique one.
    public static func candidates(line: [UInt8], claim: AccessClaim, snapshot: PolicySnapshot,
                                  extraCommands: [String] = []) -> (addition: [UInt8], candidates: [String]) {
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
        var candidates: [String] = []
        if previous.isEmpty {
            candidates = afterPipe ? Pipeline.formatterNames : visible.map(\.name) + builtinNames + extraCommands
        } else if current.hasPrefix("-") {
            let command = previous[0]
            if let cmdlet = visible.first(where: { $0.isNamed(command) }) {
                candidates = cmdlet.parameters.map { "-" + $0.name }
            } else if afterPipe, let name = Pipeline.formatterNames.first(where: { ASCII.equalsIgnoringCase($0, command) }) {
                candidates = Pipeline.parameterNames(of: name).map { "-" + $0 }
            } else if ASCII.equalsIgnoringCase(command, "Get-Help") {
                candidates = ["-Name", "-Examples", "-Full"]
            }
        } else if ASCII.equalsIgnoringCase(previous[0], "Get-Help") {
            candidates = visible.map(\.name)
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
