import CmdletPolicy
import Foundation
import GatehouseCore
import PolicyFormat

/// One built-in formatter after a `|`. Formatters only reshape the objects a
/// `output: json` backend printed: their arguments are data (property names,
/// numbers, a literal to compare with, a bounded regex), never code, so there
/// are no calculated properties and no script blocks to smuggle anything in.
public enum FormatterStage: Sendable {
    case select(properties: [String], first: Int?)
    case whereObject(property: String, test: WhereTest)
    case sort(properties: [String], descending: Bool)
    case measure(property: String?, sum: Bool, average: Bool, minimum: Bool, maximum: Bool)
    case formatTable(properties: [String]?)
    case formatList(properties: [String]?)
    case convertToJson

    /// Format-* and ConvertTo-Json produce text, so they must come last.
    var isTerminal: Bool {
        switch self {
        case .formatTable, .formatList, .convertToJson: return true
        default: return false
        }
    }
}

/// The comparison of `Where-Object -Property P -EQ|-NE|-Like|-Match V`.
public enum WhereTest: Sendable {
    case equal(String)
    case notEqual(String)
    /// PowerShell wildcards: `*` and `?`, ASCII case-insensitive.
    case like(String)
    case match(BoundedRegex)
}

/// A `-Match` pattern that is bounded in length and in time.
///
/// - at most `maxLength` scalars;
/// - no backreferences and no `(?…)` constructs other than `(?:`, which
///   keeps out look-around, atomic groups and inline flags;
/// - evaluated with a deadline: ICU reports progress during a search and the
///   search is stopped once the stage's time budget is spent, so even a
///   catastrophic pattern such as `(a+)+$` costs at most the budget.
public struct BoundedRegex: Sendable {
    public let source: String
    let regex: NSRegularExpression

    public static let maxLength = 128
    /// Scalars of one value that a match looks at.
    public static let maxSubjectLength = 4096

    public init?(_ source: String) {
        let scalars = Array(source.unicodeScalars)
        guard !scalars.isEmpty, scalars.count <= BoundedRegex.maxLength else { return nil }
        for (i, s) in scalars.enumerated() {
            let next = i + 1 < scalars.count ? scalars[i + 1] : nil
            if s == "\\", let next, next == "k" || ("1"..."9").contains(next) { return nil }
            if s == "(", next == "?", !(i + 2 < scalars.count && scalars[i + 2] == ":") { return nil }
        }
        guard let regex = try? NSRegularExpression(pattern: source, options: [.caseInsensitive]) else { return nil }
        self.source = source
        self.regex = regex
    }

    /// nil when the deadline passed before an answer.
    func matches(_ text: String, deadline: Double) -> Bool? {
        let subject = String(String.UnicodeScalarView(text.unicodeScalars.prefix(BoundedRegex.maxSubjectLength)))
        var found = false
        var expired = false
        let range = NSRange(subject.startIndex..<subject.endIndex, in: subject)
        regex.enumerateMatches(in: subject, options: [.reportProgress], range: range) { match, _, stop in
            if match != nil { found = true; stop.pointee = true; return }
            if Monotonic.now() > deadline { expired = true; stop.pointee = true }
        }
        if found { return true }
        return expired || Monotonic.now() > deadline ? nil : false
    }
}

/// Why a pipeline could not be formatted; shown to the user.
public struct FormatterError: Error, Sendable, Equatable {
    public let message: String
}

/// Binds the formatter stages of a line, and renders backend JSON through them.
public enum Pipeline {
    /// The most formatter stages one line may have.
    public static let maxStages = 8
    /// Time budget for evaluating all `-Match` tests of one line.
    public static let matchBudgetSeconds = 0.25
    /// Width when the client has no terminal (exec without pty).
    public static let defaultColumns = 120

    static let formatterNames = ["Select-Object", "Where-Object", "Sort-Object", "Format-Table", "Format-List",
                                 "ConvertTo-Json", "Measure-Object"]

    /// True when `word` names a built-in formatter (ASCII case-insensitive).
    public static func isFormatter(_ word: String) -> Bool {
        formatterNames.contains { ASCII.equalsIgnoringCase($0, word) }
    }

    private static func parameter(_ name: String, _ type: ParameterType, list: Bool = false, position: Int? = nil,
                                  pattern: AnchoredPattern? = nil, maxLength: Int = 256) -> ParameterDefinition {
        ParameterDefinition(name: name, type: type, mandatory: false, position: position, description: nil,
                            pattern: pattern, allowedValues: nil, minimum: type == .int ? 1 : nil,
                            maximum: type == .int ? 100_000 : nil, maxLength: maxLength, isList: list)
    }

    /// `[A-Za-z_][A-Za-z0-9_]{0,63}`, checked by hand: no wildcards, no
    /// dots (no reaching into nested objects), nothing to evaluate.
    static func isPropertyName(_ name: String) -> Bool {
        let s = Array(name.unicodeScalars)
        guard let first = s.first, s.count <= 64, ASCII.isLetter(first) || first == "_" else { return false }
        return s.allSatisfy { ASCII.isLetter($0) || ASCII.isDigit($0) || $0 == "_" }
    }

    private static func spec(_ name: String) -> [ParameterDefinition] {
        let property: AnchoredPattern? = nil // names are checked by isPropertyName after binding
        switch name {
        case "Select-Object":
            return [parameter("Property", .string, list: true, position: 0, pattern: property),
                    parameter("First", .int)]
        case "Where-Object":
            return [parameter("Property", .string, position: 0, pattern: property),
                    parameter("EQ", .string), parameter("NE", .string), parameter("Like", .string),
                    parameter("Match", .string, maxLength: BoundedRegex.maxLength * 4)]
        case "Sort-Object":
            return [parameter("Property", .string, list: true, position: 0, pattern: property),
                    parameter("Descending", .switch)]
        case "Format-Table", "Format-List":
            return [parameter("Property", .string, list: true, position: 0, pattern: property)]
        case "Measure-Object":
            return [parameter("Property", .string, position: 0, pattern: property), parameter("Sum", .switch),
                    parameter("Average", .switch), parameter("Minimum", .switch), parameter("Maximum", .switch)]
        default:
            return []
        }
    }

    /// The parameter names of a formatter (for completion and help).
    public static func parameterNames(of formatter: String) -> [String] { spec(formatter).map(\.name) }

    /// Binds one stage (its tokens start with the formatter's name).
    static func bindStage(_ tokens: ArraySlice<Token>) -> Result<FormatterStage, BindError> {
        guard let head = tokens.first else { return .failure(BindError("empty pipeline element", column: nil)) }
        guard head.kind == .bare, let name = formatterNames.first(where: { ASCII.equalsIgnoringCase($0, head.text) })
        else {
            return .failure(BindError("only the built-in formatters may follow '|' (\(formatterNames.joined(separator: ", ")))",
                                      column: head.column))
        }
        let bound: [BoundParameter]
        switch Binder.bind(tokens.dropFirst(), parameters: spec(name), command: name) {
        case .success(let b): bound = b
        case .failure(let e): return .failure(e)
        }
        func value(_ n: String) -> ParameterValue? { bound.first { $0.name == n }?.value }
        func text(_ n: String) -> String? { value(n)?.argumentText }
        func names(_ n: String) -> [String]? { value(n).map { $0.items.map(\.argumentText) } }
        func flag(_ n: String) -> Bool { value(n) != nil }
        for p in ["Property"] {
            for item in value(p)?.items ?? [] where !isPropertyName(item.argumentText) {
                return .failure(BindError("'\(Display.clip(item.argumentText))' is not a property name "
                                          + "(letters, digits and '_'; no wildcards or expressions)", column: head.column))
            }
        }
        switch name {
        case "Select-Object":
            guard let properties = names("Property") else {
                return .failure(BindError("Select-Object needs -Property NAME[,NAME...]", column: head.column))
            }
            var first: Int?
            if case .int(let n)? = value("First") { first = n }
            return .success(.select(properties: properties, first: first))
        case "Where-Object":
            guard let property = text("Property") else {
                return .failure(BindError("Where-Object needs -Property NAME", column: head.column))
            }
            let tests = ["EQ", "NE", "Like", "Match"].filter { value($0) != nil }
            guard tests.count == 1, let op = tests.first, let operand = text(op) else {
                return .failure(BindError("Where-Object needs exactly one of -EQ, -NE, -Like, -Match VALUE",
                                          column: head.column))
            }
            switch op {
            case "EQ": return .success(.whereObject(property: property, test: .equal(operand)))
            case "NE": return .success(.whereObject(property: property, test: .notEqual(operand)))
            case "Like": return .success(.whereObject(property: property, test: .like(operand)))
            default:
                guard let regex = BoundedRegex(operand) else {
                    return .failure(BindError("-Match needs a valid regular expression of at most "
                                              + "\(BoundedRegex.maxLength) characters, without backreferences "
                                              + "or (?...) groups other than (?:",
                                              column: valueColumn("Match", in: tokens) ?? head.column))
                }
                return .success(.whereObject(property: property, test: .match(regex)))
            }
        case "Sort-Object":
            return .success(.sort(properties: names("Property") ?? [], descending: flag("Descending")))
        case "Format-Table":
            return .success(.formatTable(properties: names("Property")))
        case "Format-List":
            return .success(.formatList(properties: names("Property")))
        case "Measure-Object":
            return .success(.measure(property: text("Property"), sum: flag("Sum"), average: flag("Average"),
                                     minimum: flag("Minimum"), maximum: flag("Maximum")))
        default: // ConvertTo-Json
            return .success(.convertToJson)
        }
    }

    /// Where the value of `-name` (or a prefix of it) starts, for messages.
    static func valueColumn(_ name: String, in tokens: ArraySlice<Token>) -> Int? {
        var i = tokens.startIndex
        while i < tokens.endIndex {
            if case .parameter(let inline) = tokens[i].kind, !tokens[i].text.isEmpty,
               ASCII.hasPrefixIgnoringCase(name, tokens[i].text) {
                if let inline { return inline.column }
                return i + 1 < tokens.endIndex ? tokens[i + 1].column : nil
            }
            i += 1
        }
        return nil
    }

    /// Binds every stage after the first `|`; `segments` are the token runs
    /// between pipes. Terminal stages must come last.
    static func bind(_ segments: [ArraySlice<Token>]) -> Result<[FormatterStage], BindError> {
        if segments.count > maxStages {
            return .failure(BindError("at most \(maxStages) formatters may follow a cmdlet", column: segments[maxStages].first?.column))
        }
        var stages: [FormatterStage] = []
        for segment in segments {
            if let last = stages.last, last.isTerminal {
                return .failure(BindError("Format-Table, Format-List and ConvertTo-Json must be the last element",
                                          column: segment.first?.column))
            }
            switch bindStage(segment) {
            case .success(let s): stages.append(s)
            case .failure(let e): return .failure(e)
            }
        }
        return .success(stages)
    }

    // MARK: Rendering

    /// Renders backend stdout (JSON) through the stages into terminal-safe text.
    public static func render(json bytes: [UInt8], stages: [FormatterStage], columns: Int?) -> Result<String, FormatterError> {
        guard let document = JSONValue.parse(bytes) else {
            return .failure(FormatterError(message: "the backend did not write valid JSON; nothing is shown"))
        }
        var items: [JSONValue]
        if case .array(let a) = document { items = a } else { items = [document] }
        let deadline = Monotonic.now() + matchBudgetSeconds
        var terminal: FormatterStage?
        for stage in stages {
            switch stage {
            case .select(let properties, let first):
                items = items.map { project($0, properties) }
                if let first { items = Array(items.prefix(first)) }
            case .whereObject(let property, let test):
                var kept: [JSONValue] = []
                for item in items {
                    switch evaluate(test, item.property(property) ?? .null, deadline: deadline) {
                    case .some(true): kept.append(item)
                    case .some(false): break
                    case .none:
                        return .failure(FormatterError(message: "the -Match pattern took too long and was stopped"))
                    }
                }
                items = kept
            case .sort(let properties, let descending):
                items = sorted(items, by: properties, descending: descending)
            case .measure(let property, let sum, let average, let minimum, let maximum):
                items = [measure(items, property, sum, average, minimum, maximum)]
                terminal = .formatList(properties: nil)
            case .formatTable, .formatList, .convertToJson:
                terminal = stage
            }
        }
        let width = max(20, min(columns ?? defaultColumns, 1000))
        switch terminal ?? .formatTable(properties: nil) {
        case .formatList(let properties):
            return .success(list(properties.map { p in items.map { project($0, p) } } ?? items))
        case .convertToJson:
            return .success(TerminalText.sanitize(JSONValue.array(items).serialized(pretty: true) + "\n"))
        case .formatTable(let properties):
            return .success(table(properties.map { p in items.map { project($0, p) } } ?? items, width: width))
        default:
            return .success(table(items, width: width))
        }
    }

    static func project(_ item: JSONValue, _ properties: [String]) -> JSONValue {
        var pairs: [(key: String, value: JSONValue)] = []
        for p in properties {
            var key = p
            if case .object(let existing) = item, let match = existing.first(where: { ASCII.equalsIgnoringCase($0.key, p) }) {
                key = match.key
            }
            if !pairs.contains(where: { ASCII.equalsIgnoringCase($0.key, key) }) {
                pairs.append((key, item.property(p) ?? .null))
            }
        }
        return .object(pairs)
    }

    static func evaluate(_ test: WhereTest, _ value: JSONValue, deadline: Double) -> Bool? {
        switch test {
        case .equal(let operand): return equals(value, operand)
        case .notEqual(let operand): return !equals(value, operand)
        case .like(let pattern): return wildcard(pattern, value.displayText)
        case .match(let regex): return regex.matches(value.displayText, deadline: deadline)
        }
    }

    static func equals(_ value: JSONValue, _ operand: String) -> Bool {
        if let n = value.numericValue, let m = Double(operand), operand.unicodeScalars.allSatisfy({ $0.isASCII }) {
            return n == m
        }
        return ASCII.equalsIgnoringCase(value.displayText, operand)
    }

    /// `*` and `?` wildcards, ASCII case-insensitive; linear backtracking
    /// over the last `*` only, so it is O(pattern × text) at worst.
    static func wildcard(_ pattern: String, _ text: String) -> Bool {
        let p = Array(ASCII.lowercased(pattern).unicodeScalars), t = Array(ASCII.lowercased(text).unicodeScalars)
        var i = 0, j = 0, star = -1, mark = 0
        while j < t.count {
            if i < p.count, p[i] == "?" || p[i] == t[j] { i += 1; j += 1 }
            else if i < p.count, p[i] == "*" { star = i; mark = j; i += 1 }
            else if star >= 0 { i = star + 1; mark += 1; j = mark }
            else { return false }
        }
        while i < p.count, p[i] == "*" { i += 1 }
        return i == p.count
    }

    static func sorted(_ items: [JSONValue], by properties: [String], descending: Bool) -> [JSONValue] {
        func key(_ item: JSONValue) -> [JSONValue] {
            if properties.isEmpty { return [item] }
            return properties.map { item.property($0) ?? .null }
        }
        func less(_ a: JSONValue, _ b: JSONValue) -> Bool? {
            if let x = a.numericValue, let y = b.numericValue { return x == y ? nil : x < y }
            let x = ASCII.lowercased(a.displayText), y = ASCII.lowercased(b.displayText)
            return x == y ? nil : x < y
        }
        let indexed = Array(items.enumerated())
        return indexed.sorted { l, r in
            for (a, b) in zip(key(l.element), key(r.element)) {
                if let order = less(a, b) { return descending ? !order : order }
            }
            return l.offset < r.offset // stable
        }.map(\.element)
    }

    static func measure(_ items: [JSONValue], _ property: String?, _ sum: Bool, _ average: Bool,
                        _ minimum: Bool, _ maximum: Bool) -> JSONValue {
        var pairs: [(key: String, value: JSONValue)] = [("Count", .number(String(items.count)))]
        guard let property else { return .object(pairs) }
        let numbers = items.compactMap { $0.property(property)?.numericValue }
        func number(_ d: Double?) -> JSONValue {
            guard let d, d.isFinite else { return .null }
            return .number(d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d))
        }
        pairs.append(("Property", .string(property)))
        if sum { pairs.append(("Sum", number(numbers.reduce(0, +)))) }
        if average { pairs.append(("Average", number(numbers.isEmpty ? nil : numbers.reduce(0, +) / Double(numbers.count)))) }
        if maximum { pairs.append(("Maximum", number(numbers.max()))) }
        if minimum { pairs.append(("Minimum", number(numbers.min()))) }
        return .object(pairs)
    }

    static func cell(_ value: JSONValue) -> String {
        TerminalText.sanitize(value.displayText, keepLineBreaks: false)
    }

    /// A width-aware table: columns in first-seen order, fitted to `width`.
    static func table(_ items: [JSONValue], width: Int) -> String {
        guard !items.isEmpty else { return "" }
        var columns: [String] = []
        for item in items {
            guard case .object(let pairs) = item else { continue }
            for pair in pairs where !columns.contains(where: { ASCII.equalsIgnoringCase($0, pair.key) }) && columns.count < 64 {
                columns.append(pair.key)
            }
        }
        if columns.isEmpty { return items.map { cell($0) + "\n" }.joined() }
        let headers = columns.map { TerminalText.sanitize($0, keepLineBreaks: false) }
        let rows = items.map { item in columns.map { cell(item.property($0) ?? .null) } }
        var widths = headers.indices.map { c in
            min(80, max(TerminalText.columns(headers[c]), rows.map { TerminalText.columns($0[c]) }.max() ?? 0))
        }
        // Fit the terminal the way Format-Table does: very wide columns give
        // way first, then columns are dropped from the right (and named in a
        // note), and only then is the last column cut with '…'.
        var shown = Array(headers.indices)
        func total() -> Int { shown.map { widths[$0] }.reduce(0, +) + shown.count - 1 }
        func shrinkWidest(above floor: Int) -> Bool {
            guard let widest = shown.max(by: { widths[$0] < widths[$1] }), widths[widest] > floor else { return false }
            widths[widest] -= 1
            return true
        }
        while total() > width, shrinkWidest(above: 24) {}
        while total() > width, shown.count > 1 { shown.removeLast() }
        while total() > width, shrinkWidest(above: 6) {}
        let hidden = headers.indices.filter { !shown.contains($0) }.map { headers[$0] }
        /// Pads or cuts to exactly `w` terminal columns; a cut ends in '…'.
        func fit(_ text: String, _ w: Int) -> String {
            let used = TerminalText.columns(text)
            if used <= w { return text + String(repeating: " ", count: w - used) }
            var kept = String.UnicodeScalarView()
            var taken = 0
            for scalar in text.unicodeScalars {
                let c = TerminalText.columns(of: scalar)
                if taken + c > w - 1 { break }
                kept.append(scalar)
                taken += c
            }
            return String(kept) + "…" + String(repeating: " ", count: max(0, w - 1 - taken))
        }
        func line(_ cells: [String]) -> String {
            var out = shown.map { fit(cells[$0], widths[$0]) }.joined(separator: " ")
            while out.hasSuffix(" ") { out.removeLast() }
            return out + "\n"
        }
        var out = line(headers)
        out += line(widths.map { String(repeating: "-", count: $0) })
        for row in rows { out += line(row) }
        if !hidden.isEmpty {
            out += "(not shown, too wide: \(hidden.joined(separator: ", ")); use Select-Object or Format-List)\n"
        }
        return out
    }

    /// `Name : value` blocks, one per object, separated by a blank line.
    static func list(_ items: [JSONValue]) -> String {
        var blocks: [String] = []
        for item in items {
            guard case .object(let pairs) = item else { blocks.append(cell(item) + "\n"); continue }
            let keys = pairs.map { TerminalText.sanitize($0.key, keepLineBreaks: false) }
            let pad = keys.map { TerminalText.columns($0) }.max() ?? 0
            var block = ""
            for (key, pair) in zip(keys, pairs) {
                block += key + String(repeating: " ", count: pad - TerminalText.columns(key)) + " : " + cell(pair.value) + "\n"
            }
            blocks.append(block)
        }
        return blocks.joined(separator: "\n")
    }
}
