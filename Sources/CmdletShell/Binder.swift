import CmdletPolicy
import PolicyFormat

/// A problem with the arguments of a known cmdlet; `column` is 1-based, nil
/// when the problem is something missing rather than something present.
public struct BindError: Error, Sendable, Equatable {
    public let message: String
    public let column: Int?

    public init(_ message: String, column: Int?) {
        self.message = message
        self.column = column
    }
}

/// One validated parameter value, under its declared name.
public struct BoundParameter: Sendable, Equatable {
    public let name: String
    public let value: ParameterValue

    /// Public so that a provider answered in another process (the monitor)
    /// can rebuild what the binder bound; the provider judges values again.
    public init(name: String, value: ParameterValue) {
        self.name = name
        self.value = value
    }
}

extension [BoundParameter] {
    /// The bound value of the declared parameter `name`, if it was given.
    public func value(_ name: String) -> ParameterValue? { first { $0.name == name }?.value }

    public func string(_ name: String) -> String? {
        switch value(name) {
        case .string(let s), .enumeration(let s): return s
        default: return nil
        }
    }

    public func int(_ name: String) -> Int? {
        if case .int(let n) = value(name) { return n }
        return nil
    }

    public func seconds(_ name: String) -> Int? {
        if case .duration(let s) = value(name) { return s }
        return nil
    }

    public func isPresent(_ name: String) -> Bool { value(name) != nil }
}

/// Binds the words after a cmdlet name to its declared parameters.
///
/// - `-Name value`, `-Name:value` and `-Name:'quoted value'`; switches as `-Force`.
/// - Names are ASCII case-insensitive and may be shortened to a unique prefix;
///   an ambiguous prefix names the candidates.
/// - A word starting with '-' is always a parameter name, never a value; a
///   quoted value starting with '-' is refused too, so no backend can ever
///   mistake a value for an option.
/// - Positional values fill the positional parameters not bound by name, in
///   position order.
/// - Repeated, unknown and missing mandatory parameters are errors.
public enum Binder {
    public static func bind(_ arguments: ArraySlice<Token>, to cmdlet: CmdletDefinition) -> Result<[BoundParameter], BindError> {
        bind(arguments, parameters: cmdlet.parameters, command: cmdlet.name)
    }

    /// The same binding rules for any declared parameter list (the built-in
    /// formatters use it too, so they have no binding quirks of their own).
    static func bind(_ arguments: ArraySlice<Token>, parameters declared: [ParameterDefinition],
                     command: String) -> Result<[BoundParameter], BindError> {
        var bound: [String: ParameterValue] = [:]
        var positional: [(text: String, column: Int, quoted: Bool)] = []
        var i = arguments.startIndex
        while i < arguments.endIndex {
            let token = arguments[i]
            i += 1
            switch token.kind {
            case .pipe:
                return .failure(BindError("unexpected '|'", column: token.column))
            case .bare, .quoted:
                positional.append((token.text, token.column, token.kind == .quoted))
            case .parameter(let inline):
                let parameter: ParameterDefinition
                switch resolve(token, in: declared, command: command) {
                case .success(let p): parameter = p
                case .failure(let e): return .failure(e)
                }
                if bound[parameter.name] != nil {
                    return .failure(BindError("-\(parameter.name) is given more than once", column: token.column))
                }
                if parameter.type == .switch {
                    if inline != nil {
                        return .failure(BindError("-\(parameter.name) is a switch and takes no value", column: token.column))
                    }
                    bound[parameter.name] = .switchPresent
                    continue
                }
                let value: (text: String, column: Int, quoted: Bool)
                if let inline {
                    guard inline.quoted || !inline.text.isEmpty else {
                        return .failure(BindError("-\(parameter.name) needs a value after ':'", column: token.column))
                    }
                    value = (inline.text, inline.column, inline.quoted)
                } else if i < arguments.endIndex, arguments[i].kind == .bare || arguments[i].kind == .quoted {
                    value = (arguments[i].text, arguments[i].column, arguments[i].kind == .quoted)
                    i += 1
                } else {
                    return .failure(BindError("-\(parameter.name) needs a value", column: token.column))
                }
                switch check(value, for: parameter) {
                case .success(let v): bound[parameter.name] = v
                case .failure(let e): return .failure(e)
                }
            }
        }

        let slots = declared
            .filter { $0.position != nil && bound[$0.name] == nil }
            .sorted { ($0.position ?? 0) < ($1.position ?? 0) }
        for (index, item) in positional.enumerated() {
            guard index < slots.count else {
                return .failure(BindError("no parameter accepts the positional value '\(Display.clip(item.text))'",
                                          column: item.column))
            }
            let parameter = slots[index]
            switch check(item, for: parameter) {
            case .success(let v): bound[parameter.name] = v
            case .failure(let e): return .failure(e)
            }
        }

        let missing = declared.filter { $0.mandatory && bound[$0.name] == nil }.map { "-\($0.name)" }
        if !missing.isEmpty {
            let noun = missing.count == 1 ? "parameter" : "parameters"
            return .failure(BindError("missing mandatory \(noun) \(missing.joined(separator: ", "))", column: nil))
        }
        return .success(declared.compactMap { p in bound[p.name].map { BoundParameter(name: p.name, value: $0) } })
    }

    /// One typed value: the '-' and '@' rules, then the list split (bare
    /// words only; a quoted value is a single item, as in PowerShell), then
    /// the declared type and constraints.
    static func check(_ value: (text: String, column: Int, quoted: Bool),
                      for parameter: ParameterDefinition) -> Result<ParameterValue, BindError> {
        if value.text.hasPrefix("-") && !parameter.allowLeadingDash {
            return .failure(BindError("values may not start with '-'", column: value.column))
        }
        // '@file' is a response file to many programs (javac, gcc, msbuild…).
        if value.text.hasPrefix("@") {
            return .failure(BindError("values may not start with '@'", column: value.column))
        }
        let result: Result<ParameterValue, ParameterValueError>
        if parameter.isList {
            let items = value.quoted ? [value.text]
                : value.text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            result = parameter.validate(items: items)
        } else {
            result = parameter.validate(value.text)
        }
        return result.mapError { BindError($0.message, column: value.column) }
    }

    /// Exact (case-insensitive) name first, then a unique prefix.
    static func resolve(_ token: Token, in parameters: [ParameterDefinition],
                        command: String) -> Result<ParameterDefinition, BindError> {
        let name = token.text
        guard ASCII.isParameterName(name) else {
            let shown = Display.clip("-" + name)
            return .failure(BindError("'\(shown)' is not a valid parameter name", column: token.column))
        }
        if let exact = parameters.first(where: { ASCII.equalsIgnoringCase($0.name, name) }) { return .success(exact) }
        let candidates = parameters.filter { ASCII.hasPrefixIgnoringCase($0.name, name) }
        switch candidates.count {
        case 1:
            return .success(candidates[0])
        case 0:
            var message = "\(command) has no parameter -\(name)"
            if let near = ASCII.suggestion(for: name, among: parameters.map(\.name)) {
                message += "; did you mean -\(near)?"
            }
            return .failure(BindError(message, column: token.column))
        default:
            let names = candidates.map { "-\($0.name)" }.joined(separator: ", ")
            return .failure(BindError("-\(name) is ambiguous: it could be \(names)", column: token.column))
        }
    }
}

/// Quoting user text back in messages: sanitised and shortened.
enum Display {
    static func clip(_ text: String, max: Int = 64) -> String {
        let safe = text.unicodeScalars.count > max
            ? String(String.UnicodeScalarView(text.unicodeScalars.prefix(max))) + "…"
            : text
        return sanitizeInline(safe)
    }

    static func sanitizeInline(_ text: String) -> String {
        var out = ""
        for s in text.unicodeScalars {
            let v = s.value
            if s.isControlCharacter || s.isLineOrParagraphSeparator {
                out += "\\u{\(String(v, radix: 16))}"
            } else {
                out.unicodeScalars.append(s)
            }
        }
        return out
    }
}
