import CmdletPolicy
import Foundation
import GatehouseCore
import PolicyFormat

/// One built-in formatter after a `|`. Formatters only reshape the objects a
/// `output: json` backend printed: their arguments are data (property names,
/// numbers, a literal to compare with, a bounded regex), never code, so there
/// are no calculated properties and no script blocks to smuggle anything in.
public enum FormatterStage: Sendable {
    case select(Selection)
    case whereObject(property: String, test: WhereTest)
    case sort(properties: [String], descending: Bool, unique: Bool)
    case group(properties: [String], noElement: Bool)
    case measure(property: String?, sum: Bool, average: Bool, minimum: Bool, maximum: Bool)
    case formatTable(properties: [String]?, layout: TableLayout)
    case formatList(properties: [String]?)
    case convertToJson
    case convertToCsv

    /// Format-*, ConvertTo-* produce text, so they must come last.
    var isTerminal: Bool {
        switch self {
        case .formatTable, .formatList, .convertToJson, .convertToCsv: return true
        default: return false
        }
    }
}

/// `Select-Object`: `-Skip N`, then `-First N` or `-Last N` of what is left,
/// then the properties (or one property's values), then `-Unique`.
public struct Selection: Sendable, Equatable {
    public var properties: [String]?
    public var expand: String?
    public var first: Int?
    public var last: Int?
    public var skip = 0
    public var unique = false
}

/// `Format-Table -AutoSize -Wrap`: without `-AutoSize` no column is wider
/// than `Pipeline.maxColumnWidth`; with `-Wrap` a cell too long for its
/// column continues on the next lines instead of being cut with '…'.
public struct TableLayout: Sendable, Equatable {
    public var autoSize = false
    public var wrap = false
    public init(autoSize: Bool = false, wrap: Bool = false) {
        self.autoSize = autoSize
        self.wrap = wrap
    }
}

/// The comparison of `Where-Object -Property P -OP V`: PowerShell's operators,
/// ASCII case-insensitive unless written with a `C` (`-CEQ`, `-CLike`...).
///
/// Numbers compare as numbers: a JSON number, or a size written with a unit
/// (`12MB`), against an operand that is a number or a size (`-GT 1GB`).
/// Everything else compares ordinally, scalar by scalar, never by locale. On
/// a list property a test keeps the object when any item passes, as in
/// PowerShell; `-Contains` and `-NotContains` ask whether the list holds
/// the operand, `-In` and `-NotIn` whether the value is one of the operands.
public struct WhereTest: Sendable {
    public enum Operator: String, CaseIterable, Sendable {
        case eq = "EQ", ne = "NE", gt = "GT", ge = "GE", lt = "LT", le = "LE"
        case like = "Like", notLike = "NotLike", match = "Match", notMatch = "NotMatch"
        case `in` = "In", notIn = "NotIn", contains = "Contains", notContains = "NotContains"

        var takesList: Bool { self == .in || self == .notIn }
    }

    public let op: Operator
    public let caseSensitive: Bool
    /// One operand, or the list of `-In`/`-NotIn`.
    public let operands: [String]
    let regex: BoundedRegex?

    /// The parameter as written in a line: `-CEQ`, `-NotLike`...
    public var parameterName: String { (caseSensitive ? "C" : "") + op.rawValue }
    /// Every operator's parameter name, case-insensitive ones first.
    static let parameterNames = Operator.allCases.map(\.rawValue) + Operator.allCases.map { "C" + $0.rawValue }
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

    public init?(_ source: String, caseSensitive: Bool = false) {
        let scalars = Array(source.unicodeScalars)
        guard !scalars.isEmpty, scalars.count <= BoundedRegex.maxLength else { return nil }
        for (i, s) in scalars.enumerated() {
            let next = i + 1 < scalars.count ? scalars[i + 1] : nil
            if s == "\\", let next, next == "k" || ("1"..."9").contains(next) { return nil }
            if s == "(", next == "?", !(i + 2 < scalars.count && scalars[i + 2] == ":") { return nil }
        }
        guard let regex = try? NSRegularExpression(pattern: source, options: caseSensitive ? [] : [.caseInsensitive])
        else { return nil }
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
    /// The widest a table column grows without `Format-Table -AutoSize`.
    public static let maxColumnWidth = 80

    static let formatterNames = ["Select-Object", "Where-Object", "Sort-Object", "Group-Object", "Measure-Object",
                                 "Format-Table", "Format-List", "ConvertTo-Json", "ConvertTo-Csv"]

    /// True when `word` names a built-in formatter (ASCII case-insensitive).
    public static func isFormatter(_ word: String) -> Bool {
        formatterNames.contains { ASCII.equalsIgnoringCase($0, word) }
    }

    private static func parameter(_ name: String, _ type: ParameterType, list: Bool = false, position: Int? = nil,
                                  minimum: Int = 1, maxLength: Int = 256) -> ParameterDefinition {
        ParameterDefinition(name: name, type: type, mandatory: false, position: position, description: nil,
                            pattern: nil, allowedValues: nil, minimum: type == .int ? minimum : nil,
                            maximum: type == .int ? 100_000 : nil, maxLength: maxLength, isList: list)
    }

    /// `[A-Za-z_][A-Za-z0-9_]{0,63}`, checked by hand: no wildcards, no
    /// dots (no reaching into nested objects), nothing to evaluate.
    static func isPropertyName(_ name: String) -> Bool {
        let s = Array(name.unicodeScalars)
        guard let first = s.first, s.count <= 64, ASCII.isLetter(first) || first == "_" else { return false }
        return s.allSatisfy { ASCII.isLetter($0) || ASCII.isDigit($0) || $0 == "_" }
    }

    /// Parameters whose values are property names (checked after binding).
    private static let propertyParameters = ["Property", "ExpandProperty"]

    private static func spec(_ name: String) -> [ParameterDefinition] {
        switch name {
        case "Select-Object":
            return [parameter("Property", .string, list: true, position: 0), parameter("ExpandProperty", .string),
                    parameter("First", .int), parameter("Last", .int), parameter("Skip", .int, minimum: 0),
                    parameter("Unique", .switch)]
        case "Where-Object":
            return [parameter("Property", .string, position: 0)] + WhereTest.parameterNames.map { op in
                let list = op.hasSuffix("In") // In, NotIn, CIn, CNotIn
                return parameter(op, .string, list: list,
                                 maxLength: op.hasSuffix("Match") ? BoundedRegex.maxLength * 4 : 256)
            }
        case "Sort-Object":
            return [parameter("Property", .string, list: true, position: 0), parameter("Descending", .switch),
                    parameter("Unique", .switch)]
        case "Group-Object":
            return [parameter("Property", .string, list: true, position: 0), parameter("NoElement", .switch)]
        case "Format-Table":
            return [parameter("Property", .string, list: true, position: 0), parameter("AutoSize", .switch),
                    parameter("Wrap", .switch)]
        case "Format-List":
            return [parameter("Property", .string, list: true, position: 0)]
        case "Measure-Object":
            return [parameter("Property", .string, position: 0), parameter("Sum", .switch),
                    parameter("Average", .switch), parameter("Minimum", .switch), parameter("Maximum", .switch)]
        default: // ConvertTo-Json, ConvertTo-Csv
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
        func int(_ n: String) -> Int? { if case .int(let i)? = value(n) { return i } else { return nil } }
        func flag(_ n: String) -> Bool { value(n) != nil }
        func failure(_ message: String, at parameter: String? = nil) -> Result<FormatterStage, BindError> {
            .failure(BindError(message, column: parameter.flatMap { valueColumn($0, in: tokens) } ?? head.column))
        }
        for p in propertyParameters {
            for item in value(p)?.items ?? [] where !isPropertyName(item.argumentText) {
                return failure("'\(Display.clip(item.argumentText))' is not a property name "
                               + "(letters, digits and '_'; no wildcards or expressions)", at: p)
            }
        }
        switch name {
        case "Select-Object":
            let selection = Selection(properties: names("Property"), expand: text("ExpandProperty"), first: int("First"),
                                      last: int("Last"), skip: int("Skip") ?? 0, unique: flag("Unique"))
            if selection.properties != nil && selection.expand != nil {
                return failure("use -Property or -ExpandProperty, not both", at: "ExpandProperty")
            }
            if selection.first != nil && selection.last != nil {
                return failure("use -First or -Last, not both", at: "Last")
            }
            if selection == Selection() {
                return failure("Select-Object needs -Property NAME[,NAME...], -ExpandProperty NAME, -First N, "
                               + "-Last N, -Skip N or -Unique")
            }
            return .success(.select(selection))
        case "Where-Object":
            guard let property = text("Property") else { return failure("Where-Object needs -Property NAME") }
            let given = WhereTest.parameterNames.filter { value($0) != nil }
            guard given.count == 1, let written = given.first, let operands = names(written) else {
                return failure("Where-Object needs exactly one comparison: "
                               + WhereTest.Operator.allCases.map { "-" + $0.rawValue }.joined(separator: " ")
                               + " VALUE (or -CEQ and the like, case-sensitive)")
            }
            let caseSensitive = written.count > 1 && written.hasPrefix("C")
                && WhereTest.Operator(rawValue: String(written.dropFirst())) != nil
            guard let op = WhereTest.Operator(rawValue: caseSensitive ? String(written.dropFirst()) : written) else {
                return failure("Where-Object: unknown comparison -\(written)")
            }
            var regex: BoundedRegex?
            if op == .match || op == .notMatch {
                regex = BoundedRegex(operands[0], caseSensitive: caseSensitive)
                if regex == nil {
                    return failure("-\(written) needs a valid regular expression of at most "
                                   + "\(BoundedRegex.maxLength) characters, without backreferences "
                                   + "or (?...) groups other than (?:", at: written)
                }
            }
            return .success(.whereObject(property: property, test: WhereTest(op: op, caseSensitive: caseSensitive,
                                                                              operands: operands, regex: regex)))
        case "Sort-Object":
            return .success(.sort(properties: names("Property") ?? [], descending: flag("Descending"),
                                  unique: flag("Unique")))
        case "Group-Object":
            guard let properties = names("Property") else { return failure("Group-Object needs -Property NAME[,NAME...]") }
            return .success(.group(properties: properties, noElement: flag("NoElement")))
        case "Format-Table":
            return .success(.formatTable(properties: names("Property"),
                                         layout: TableLayout(autoSize: flag("AutoSize"), wrap: flag("Wrap"))))
        case "Format-List":
            return .success(.formatList(properties: names("Property")))
        case "Measure-Object":
            return .success(.measure(property: text("Property"), sum: flag("Sum"), average: flag("Average"),
                                     minimum: flag("Minimum"), maximum: flag("Maximum")))
        case "ConvertTo-Csv":
            return .success(.convertToCsv)
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
                return .failure(BindError("Format-Table, Format-List, ConvertTo-Json and ConvertTo-Csv must be the "
                                          + "last element", column: segment.first?.column))
            }
            switch bindStage(segment) {
            case .success(let s): stages.append(s)
            case .failure(let e): return .failure(e)
            }
        }
        return .success(stages)
    }
}
