/// One problem found while loading policy, pinned to the file and line an
/// admin has to edit. Diagnostics are collected, never thrown one at a time,
/// so a single `gatehouse policy check` run shows every mistake at once.
public struct PolicyDiagnostic: Sendable, Equatable, CustomStringConvertible {
    public enum Severity: String, Sendable, Equatable {
        /// The policy is refused: nothing loads while an error remains.
        case error
        /// The policy loads, but something is probably unintended (lint).
        case warning
    }

    public let file: String
    /// 1-based; 0 when the problem concerns the file as a whole.
    public let line: Int
    /// 1-based, counted in Unicode scalars (as libyaml does); 0 when unknown.
    public let column: Int
    public let severity: Severity
    public let message: String
    public let hint: String?

    public init(file: String, line: Int, column: Int, severity: Severity, message: String, hint: String? = nil) {
        self.file = file
        self.line = line
        self.column = column
        self.severity = severity
        self.message = message
        self.hint = hint
    }

    /// `file:line:col: error: message (hint)`, the shape compilers use, so
    /// editors can jump to the spot.
    public var description: String {
        // file:line:column, as compilers print it; an unknown part is left out.
        let place = line == 0 ? file : (column == 0 ? "\(file):\(line)" : "\(file):\(line):\(column)")
        var text = "\(place): \(severity.rawValue): \(message)"
        if let hint { text += " (\(hint))" }
        return text
    }
}

/// Thrown when a policy or directory file has at least one error. It carries
/// every diagnostic (warnings included), in file order.
public struct PolicyLoadError: Error, Sendable, CustomStringConvertible {
    public let diagnostics: [PolicyDiagnostic]

    public init(diagnostics: [PolicyDiagnostic]) { self.diagnostics = diagnostics }

    public var errors: [PolicyDiagnostic] { diagnostics.filter { $0.severity == .error } }

    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}

/// Accumulates diagnostics while a loader walks the YAML; the loader decides
/// at the end whether to freeze a model or throw `PolicyLoadError`.
public final class DiagnosticCollector {
    public private(set) var diagnostics: [PolicyDiagnostic] = []

    public init() {}

    public var hasErrors: Bool { diagnostics.contains { $0.severity == .error } }

    public func error(_ file: String, _ line: Int, _ column: Int, _ message: String, hint: String? = nil) {
        diagnostics.append(.init(file: file, line: line, column: column, severity: .error, message: message, hint: hint))
    }

    public func warning(_ file: String, _ line: Int, _ column: Int, _ message: String, hint: String? = nil) {
        diagnostics.append(.init(file: file, line: line, column: column, severity: .warning, message: message, hint: hint))
    }

    public func append(_ diagnostic: PolicyDiagnostic) { diagnostics.append(diagnostic) }

    public func append(contentsOf other: [PolicyDiagnostic]) { diagnostics.append(contentsOf: other) }

    /// Throws when any error was recorded; otherwise returns the warnings.
    public func throwIfErrors() throws -> [PolicyDiagnostic] {
        if hasErrors { throw PolicyLoadError(diagnostics: diagnostics) }
        return diagnostics
    }
}

@available(*, unavailable)
extension DiagnosticCollector: Sendable {}
