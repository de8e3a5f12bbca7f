import Foundation
import Yams

/// A small, strict reader over a Yams `Node` tree that turns every shape
/// mistake into a `PolicyDiagnostic` with file:line instead of a thrown
/// decoding error. Used by the policy, directory and (later) gateway
/// configuration loaders so they all report problems the same way.
///
/// Strictness, on purpose:
/// - unknown mapping keys are errors (a typo must never silently widen or
///   narrow access), with a did-you-mean hint;
/// - duplicate keys are errors (Yams refuses them while composing);
/// - aliases are refused: policy is reviewed line by line, and an alias
///   makes one line mean something defined elsewhere (and opens the door to
///   "billion laughs" expansion);
/// - booleans are exactly `true`/`false`, integers plain ASCII digits.
public struct YAMLReader {
    public let file: String
    public let diagnostics: DiagnosticCollector

    public init(file: String, diagnostics: DiagnosticCollector) {
        self.file = file
        self.diagnostics = diagnostics
    }

    /// One key of a mapping, with the nodes needed to point at it.
    public struct Entry {
        public let key: String
        public let keyNode: Node
        public let value: Node
    }

    /// Parses `text` into its root node. Empty documents yield nil without
    /// error; syntax errors are reported with their position.
    public func compose(_ text: String) -> Node? {
        do {
            let root = try Yams.compose(yaml: text)
            if let root { rejectAnchors(root) }
            return root
        } catch let error as YamlError {
            report(error)
            return nil
        } catch {
            diagnostics.error(file, 0, 0, "cannot parse YAML: \(error)")
            return nil
        }
    }

    /// Reads and composes a file; a missing or unreadable file is reported.
    public func composeFile() -> Node? {
        guard let data = FileManager.default.contents(atPath: file) else {
            diagnostics.error(file, 0, 0, "cannot read file")
            return nil
        }
        guard let text = String(data: data, encoding: .utf8) else {
            diagnostics.error(file, 0, 0, "file is not valid UTF-8")
            return nil
        }
        return compose(text)
    }

    private func report(_ error: YamlError) {
        switch error {
        case let .scanner(_, problem, mark, _), let .parser(_, problem, mark, _), let .composer(_, problem, mark, _):
            diagnostics.error(file, mark.line, mark.column, "YAML syntax: \(problem)")
        case let .duplicatedKeysInMapping(duplicates, context):
            diagnostics.error(file, context.mark.line, context.mark.column,
                              "duplicate key \(duplicates.map { "'\($0)'" }.joined(separator: ", ")) in one mapping",
                              hint: "each key may appear only once; merge the entries")
        default:
            diagnostics.error(file, 0, 0, "YAML: \(error)")
        }
    }

    /// Yams resolves an alias to the anchored node itself (and keeps anchor
    /// names only weakly), so aliases are found by position instead: in a
    /// document without aliases a pre-order walk sees marks in document
    /// order, and an alias is the one node whose mark lies behind the walk.
    private func rejectAnchors(_ root: Node) {
        var last = (line: 0, column: 0)
        var reported = false
        func walk(_ node: Node, depth: Int) {
            guard !reported else { return }
            guard depth < 64 else {
                error(at: node, "YAML nested too deeply")
                reported = true
                return
            }
            if let mark = node.mark {
                if (mark.line, mark.column) < last {
                    diagnostics.error(file, last.line, last.column, "YAML aliases (*name) are not supported in policy",
                                      hint: "write the value out in full")
                    reported = true
                    return
                }
                last = (mark.line, mark.column)
            }
            switch node {
            case .scalar: break
            case .alias:
                error(at: node, "YAML aliases (*name) are not supported in policy")
                reported = true
            case .sequence(let seq): for child in seq { walk(child, depth: depth + 1) }
            case .mapping(let map):
                for (k, v) in map {
                    walk(k, depth: depth + 1)
                    walk(v, depth: depth + 1)
                }
            }
        }
        walk(root, depth: 0)
    }

    // MARK: Reporting helpers

    public func line(_ node: Node) -> Int { node.mark?.line ?? 0 }
    public func column(_ node: Node) -> Int { node.mark?.column ?? 0 }

    public func error(at node: Node, _ message: String, hint: String? = nil) {
        diagnostics.error(file, line(node), column(node), message, hint: hint)
    }

    public func warning(at node: Node, _ message: String, hint: String? = nil) {
        diagnostics.warning(file, line(node), column(node), message, hint: hint)
    }

    // MARK: Typed accessors

    /// The entries of a mapping in document order. Keys must be plain
    /// scalars; keys not in `allowed` (when given) are reported and skipped.
    public func mapping(_ node: Node, what: String, allowed: [String]? = nil) -> [Entry]? {
        guard case .mapping(let map) = node else {
            error(at: node, "\(what) must be a mapping (key: value)")
            return nil
        }
        var entries: [Entry] = []
        for (keyNode, value) in map {
            guard case .scalar(let scalar) = keyNode else {
                error(at: keyNode, "keys in \(what) must be plain strings")
                continue
            }
            let key = scalar.string
            if let allowed, !allowed.contains(key) {
                let hint: String
                if let near = ASCII.suggestion(for: key, among: allowed) {
                    hint = "did you mean '\(near)'?"
                } else {
                    hint = "allowed keys: \(allowed.joined(separator: ", "))"
                }
                error(at: keyNode, "unknown key '\(key)' in \(what)", hint: hint)
                continue
            }
            entries.append(Entry(key: key, keyNode: keyNode, value: value))
        }
        return entries
    }

    /// A scalar as text. `null`/`~`/empty plain scalars count as missing.
    public func string(_ node: Node, what: String, allowEmpty: Bool = false) -> String? {
        guard case .scalar(let scalar) = node else {
            error(at: node, "\(what) must be a single value, not a list or mapping")
            return nil
        }
        let text = scalar.string
        if !allowEmpty, scalar.style == .plain || scalar.style == .any,
           text.isEmpty || text == "~" || text == "null" || text == "Null" || text == "NULL" {
            error(at: node, "\(what) must not be empty")
            return nil
        }
        if !allowEmpty && text.isEmpty {
            error(at: node, "\(what) must not be empty")
            return nil
        }
        return text
    }

    public func bool(_ node: Node, what: String) -> Bool? {
        guard let text = string(node, what: what) else { return nil }
        switch text {
        case "true": return true
        case "false": return false
        default:
            error(at: node, "\(what) must be true or false, not '\(text)'")
            return nil
        }
    }

    public func nonNegativeInt(_ node: Node, what: String) -> Int? {
        guard let text = string(node, what: what) else { return nil }
        guard let value = ASCII.parseNonNegativeInt(text) else {
            error(at: node, "\(what) must be a non-negative whole number, not '\(text)'")
            return nil
        }
        return value
    }

    public func size(_ node: Node, what: String) -> Int? {
        guard let text = string(node, what: what) else { return nil }
        guard let value = ByteSize.parse(text) else {
            error(at: node, "\(what) must be a size such as 512KB, 1MB or 100GB, not '\(text)'",
                  hint: "units B, KB, MB, GB, TB (1024-based)")
            return nil
        }
        return value
    }

    public func durationSeconds(_ node: Node, what: String) -> Int? {
        guard let text = string(node, what: what) else { return nil }
        guard let value = PolicyDuration.parseSeconds(text) else {
            error(at: node, "\(what) must be a duration such as 30s, 5m, 1h or 7d, not '\(text)'")
            return nil
        }
        return value
    }

    /// The items of a sequence (an empty sequence is fine).
    public func sequence(_ node: Node, what: String) -> [Node]? {
        guard case .sequence(let seq) = node else {
            error(at: node, "\(what) must be a list")
            return nil
        }
        return Array(seq)
    }

    /// A list of scalars, each paired with its node for later diagnostics.
    public func stringList(_ node: Node, what: String) -> [(String, Node)]? {
        guard let items = sequence(node, what: what) else { return nil }
        return items.compactMap { item in string(item, what: "an item of \(what)").map { ($0, item) } }
    }
}
