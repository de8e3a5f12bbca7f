import CmdletPolicy
import Foundation
import GatehouseCore
import PolicyFormat

/// Rendering: backend JSON through the bound stages into terminal-safe text.
extension Pipeline {
    /// Renders backend stdout (JSON) through the stages. With no Format-* or
    /// ConvertTo-* at the end, one object is shown as a list and several as
    /// a table that fits the terminal, as PowerShell users expect.
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
            case .select(let selection):
                items = select(items, selection)
            case .whereObject(let property, let test):
                var kept: [JSONValue] = []
                for item in items {
                    switch test.evaluate(item.property(property) ?? .null, deadline: deadline) {
                    case .some(true): kept.append(item)
                    case .some(false): break
                    case .none:
                        return .failure(FormatterError(message: "the -\(test.parameterName) pattern took too long and was stopped"))
                    }
                }
                items = kept
            case .sort(let properties, let descending, let unique):
                items = sorted(items, by: properties, descending: descending, unique: unique)
            case .group(let properties, let noElement):
                items = group(items, by: properties, noElement: noElement)
            case .measure(let property, let sum, let average, let minimum, let maximum):
                items = [measure(items, property, sum, average, minimum, maximum)]
            case .formatTable, .formatList, .convertToJson, .convertToCsv:
                terminal = stage
            }
        }
        let width = max(20, min(columns ?? defaultColumns, 1000))
        switch terminal {
        case .formatList(let properties)?:
            return .success(list(properties.map { p in items.map { project($0, p) } } ?? items))
        case .convertToJson?:
            return .success(TerminalText.sanitize(JSONValue.array(items).serialized(pretty: true) + "\n"))
        case .convertToCsv?:
            return .success(csv(items))
        case .formatTable(let properties, let layout)?:
            return .success(table(properties.map { p in items.map { project($0, p) } } ?? items, width: width,
                                  layout: layout))
        default:
            if items.count == 1, case .object = items[0] { return .success(list(items)) }
            return .success(table(items, width: width))
        }
    }

    static func select(_ items: [JSONValue], _ s: Selection) -> [JSONValue] {
        var kept = Array(items.dropFirst(s.skip))
        if let first = s.first { kept = Array(kept.prefix(first)) }
        if let last = s.last { kept = Array(kept.suffix(last)) }
        if let properties = s.properties { kept = kept.map { project($0, properties) } }
        if let expand = s.expand {
            kept = kept.flatMap { item -> [JSONValue] in
                switch item.property(expand) {
                case .array(let values)?: return values
                case let value?: return [value]
                case nil: return []
                }
            }
        }
        guard s.unique else { return kept }
        // Equal values serialise equally (keys in their written order), so one
        // pass with a set, not a comparison of every pair.
        var seen = Set<String>()
        return kept.filter { seen.insert($0.serialized(pretty: false)).inserted }
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

    /// A value as a number: a JSON number, or a string that is a size with
    /// its unit (`12MB`; bare digits in a string stay text).
    static func number(_ value: JSONValue) -> Double? {
        switch value {
        case .number: return value.numericValue
        case .string(let s):
            guard let last = s.unicodeScalars.last, ASCII.isLetter(last), let bytes = ByteSize.parse(s) else { return nil }
            return Double(bytes)
        default: return nil
        }
    }

    /// An operand as a number: ASCII digits (with sign, fraction, exponent) or a size (`1GB`).
    static func number(operand: String) -> Double? {
        guard operand.unicodeScalars.allSatisfy({ $0.isASCII }) else { return nil }
        if let d = Double(operand), d.isFinite { return d }
        return ByteSize.parse(operand).map(Double.init)
    }

    /// Ordinal comparison, scalar by scalar; ASCII case folded unless `caseSensitive`.
    static func ordinal(_ a: String, _ b: String, caseSensitive: Bool) -> Int {
        let x = caseSensitive ? a : ASCII.lowercased(a), y = caseSensitive ? b : ASCII.lowercased(b)
        var i = x.unicodeScalars.makeIterator(), j = y.unicodeScalars.makeIterator()
        while true {
            switch (i.next(), j.next()) {
            case (nil, nil): return 0
            case (nil, _): return -1
            case (_, nil): return 1
            case (let p?, let q?) where p != q: return p.value < q.value ? -1 : 1
            default: continue
            }
        }
    }

    /// -1, 0 or 1: numerically when both sides are numbers, else ordinally.
    static func compare(_ value: JSONValue, _ operand: String, caseSensitive: Bool) -> Int {
        if let n = number(value), let m = number(operand: operand) { return n == m ? 0 : (n < m ? -1 : 1) }
        return ordinal(value.displayText, operand, caseSensitive: caseSensitive)
    }

    /// `*` and `?` wildcards; linear backtracking over the last `*` only, so
    /// it is O(pattern × text) at worst.
    static func wildcard(_ pattern: String, _ text: String, caseSensitive: Bool = false) -> Bool {
        let p = Array((caseSensitive ? pattern : ASCII.lowercased(pattern)).unicodeScalars)
        let t = Array((caseSensitive ? text : ASCII.lowercased(text)).unicodeScalars)
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

    /// Sorted by the properties (the whole value without any), numbers as
    /// numbers, stable; `unique` keeps the first of each run of equal keys.
    static func sorted(_ items: [JSONValue], by properties: [String], descending: Bool, unique: Bool = false) -> [JSONValue] {
        func key(_ item: JSONValue) -> [JSONValue] {
            if properties.isEmpty { return [item] }
            return properties.map { item.property($0) ?? .null }
        }
        func order(_ a: [JSONValue], _ b: [JSONValue]) -> Int {
            for (x, y) in zip(a, b) {
                let c: Int
                if let n = number(x), let m = number(y) { c = n == m ? 0 : (n < m ? -1 : 1) }
                else { c = ordinal(x.displayText, y.displayText, caseSensitive: false) }
                if c != 0 { return c }
            }
            return 0
        }
        let keyed = items.enumerated().map { (offset: $0.offset, key: key($0.element), item: $0.element) }
        let ordered = keyed.sorted { l, r in
            let c = order(l.key, r.key)
            if c != 0 { return descending ? c > 0 : c < 0 }
            return l.offset < r.offset // stable
        }
        var out: [JSONValue] = []
        var previous: [JSONValue]?
        for entry in ordered {
            if unique, let previous, order(previous, entry.key) == 0 { continue }
            previous = entry.key
            out.append(entry.item)
        }
        return out
    }

    /// `Group-Object`: one `Count, Name, Group` object per distinct key (ASCII
    /// case-insensitive), in the order the keys first appear.
    static func group(_ items: [JSONValue], by properties: [String], noElement: Bool) -> [JSONValue] {
        var groups: [(name: String, items: [JSONValue])] = []
        var index: [String: Int] = [:]   // folded name → its group
        for item in items {
            let name = properties.map { (item.property($0) ?? .null).displayText }.joined(separator: ", ")
            let folded = ASCII.lowercased(name)
            if let i = index[folded] { groups[i].items.append(item) } else {
                index[folded] = groups.count
                groups.append((name, [item]))
            }
        }
        return groups.map { g in
            var pairs: [(key: String, value: JSONValue)] = [("Count", .number(String(g.items.count))), ("Name", .string(g.name))]
            if !noElement { pairs.append(("Group", .array(g.items))) }
            return .object(pairs)
        }
    }

    static func measure(_ items: [JSONValue], _ property: String?, _ sum: Bool, _ average: Bool,
                        _ minimum: Bool, _ maximum: Bool) -> JSONValue {
        var pairs: [(key: String, value: JSONValue)] = [("Count", .number(String(items.count)))]
        guard let property else { return .object(pairs) }
        let numbers = items.compactMap { $0.property(property).flatMap(Pipeline.number) }
        func result(_ d: Double?) -> JSONValue {
            guard let d, d.isFinite else { return .null }
            return .number(d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d))
        }
        pairs.append(("Property", .string(property)))
        if sum { pairs.append(("Sum", result(numbers.reduce(0, +)))) }
        if average { pairs.append(("Average", result(numbers.isEmpty ? nil : numbers.reduce(0, +) / Double(numbers.count)))) }
        if maximum { pairs.append(("Maximum", result(numbers.max()))) }
        if minimum { pairs.append(("Minimum", result(numbers.min()))) }
        return .object(pairs)
    }

    static func cell(_ value: JSONValue) -> String {
        TerminalText.sanitize(value.displayText, keepLineBreaks: false)
    }

    /// The column names of `items`, in first-seen order (at most 64).
    static func columnNames(_ items: [JSONValue]) -> [String] {
        var columns: [String] = []
        for item in items {
            guard case .object(let pairs) = item else { continue }
            for pair in pairs where !columns.contains(where: { ASCII.equalsIgnoringCase($0, pair.key) }) && columns.count < 64 {
                columns.append(pair.key)
            }
        }
        return columns
    }

    /// `ConvertTo-Csv`: a header of the column names, then one line per
    /// object, every field quoted (`"` doubled), as PowerShell 7 writes it.
    /// Control characters are shown escaped, so a record is one line.
    static func csv(_ items: [JSONValue]) -> String {
        func field(_ text: String) -> String {
            "\"" + TerminalText.sanitize(text, keepLineBreaks: false).replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        let columns = columnNames(items)
        if columns.isEmpty { return items.map { field($0.displayText) + "\n" }.joined() }
        var out = columns.map(field).joined(separator: ",") + "\n"
        for item in items {
            out += columns.map { field((item.property($0) ?? .null).displayText) }.joined(separator: ",") + "\n"
        }
        return out
    }

    /// A width-aware table: columns in first-seen order, fitted to `width`.
    static func table(_ items: [JSONValue], width: Int, layout: TableLayout = TableLayout()) -> String {
        guard !items.isEmpty else { return "" }
        let columns = columnNames(items)
        if columns.isEmpty { return items.map { cell($0) + "\n" }.joined() }
        let headers = columns.map { TerminalText.sanitize($0, keepLineBreaks: false) }
        let rows = items.map { item in columns.map { cell(item.property($0) ?? .null) } }
        let cap = layout.autoSize ? width : maxColumnWidth
        var widths = headers.indices.map { c in
            min(cap, max(TerminalText.columns(headers[c]), rows.map { TerminalText.columns($0[c]) }.max() ?? 0))
        }
        // Fit the terminal the way Format-Table does: very wide columns give
        // way first, then columns are dropped from the right (and named in a
        // note), and only then is the last column cut with '…' (or wrapped).
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
        func pad(_ text: String, _ w: Int) -> String {
            text + String(repeating: " ", count: max(0, w - TerminalText.columns(text)))
        }
        /// The lines of one row: each cell cut to its width with '…', or
        /// wrapped onto as many lines as it needs (`-Wrap`).
        func lines(_ cells: [String]) -> String {
            let pieces = shown.map { c in layout.wrap ? wrapped(cells[c], widths[c]) : [cut(cells[c], widths[c])] }
            var out = ""
            for l in 0..<(pieces.map(\.count).max() ?? 1) {
                var line = zip(shown, pieces).map { c, p in pad(l < p.count ? p[l] : "", widths[c]) }.joined(separator: " ")
                while line.hasSuffix(" ") { line.removeLast() }
                out += line + "\n"
            }
            return out
        }
        var out = lines(headers)
        out += lines(widths.map { String(repeating: "-", count: $0) })
        for row in rows { out += lines(row) }
        if !hidden.isEmpty {
            out += "(not shown, too wide: \(hidden.joined(separator: ", ")); use Select-Object or Format-List)\n"
        }
        return out
    }

    /// `text` in at most `w` terminal columns; a cut ends in '…', and never
    /// splits a wide character.
    static func cut(_ text: String, _ w: Int) -> String {
        if TerminalText.columns(text) <= w { return text }
        var kept = String.UnicodeScalarView()
        var taken = 0
        for scalar in text.unicodeScalars {
            let c = TerminalText.columns(of: scalar)
            if taken + c > w - 1 { break }
            kept.append(scalar)
            taken += c
        }
        return String(kept) + "…"
    }

    /// `text` in lines of at most `w` terminal columns (at least one line).
    static func wrapped(_ text: String, _ w: Int) -> [String] {
        var lines: [String] = []
        var current = String.UnicodeScalarView()
        var taken = 0
        for scalar in text.unicodeScalars {
            let c = TerminalText.columns(of: scalar)
            if taken + c > w, taken > 0 {
                lines.append(String(current))
                current = String.UnicodeScalarView()
                taken = 0
            }
            current.append(scalar)
            taken += c
        }
        lines.append(String(current))
        return lines
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

extension WhereTest {
    /// Whether `value` passes; nil when a -Match ran out of the line's time budget.
    func evaluate(_ value: JSONValue, deadline: Double) -> Bool? {
        switch op {
        case .contains, .notContains:
            let items: [JSONValue]
            if case .array(let a) = value { items = a } else { items = [value] }
            let found = items.contains { Pipeline.compare($0, operands[0], caseSensitive: caseSensitive) == 0 }
            return op == .contains ? found : !found
        case .in, .notIn:
            let found = operands.contains { Pipeline.compare(value, $0, caseSensitive: caseSensitive) == 0 }
            return op == .in ? found : !found
        default:
            guard case .array(let items) = value else { return test(value, deadline: deadline) }
            for item in items {
                guard let passed = test(item, deadline: deadline) else { return nil }
                if passed { return true }
            }
            return false
        }
    }

    private func test(_ value: JSONValue, deadline: Double) -> Bool? {
        let operand = operands[0]
        func compared() -> Int { Pipeline.compare(value, operand, caseSensitive: caseSensitive) }
        switch op {
        case .eq: return compared() == 0
        case .ne: return compared() != 0
        case .gt: return compared() > 0
        case .ge: return compared() >= 0
        case .lt: return compared() < 0
        case .le: return compared() <= 0
        case .like: return Pipeline.wildcard(operand, value.displayText, caseSensitive: caseSensitive)
        case .notLike: return !Pipeline.wildcard(operand, value.displayText, caseSensitive: caseSensitive)
        case .match: return regex?.matches(value.displayText, deadline: deadline)
        case .notMatch: return regex?.matches(value.displayText, deadline: deadline).map { !$0 }
        case .in, .notIn, .contains, .notContains: return false // answered by evaluate, never here
        }
    }
}
