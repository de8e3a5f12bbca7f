import CmdletPolicy
import Foundation
import PolicyFormat
import Yams

/// Reads `gatehouse.yaml`: a flat mapping of the settings declared in
/// `GatewayConfiguration.settings`. Unknown keys and bad values are errors
/// with file:line, all reported at once, like policy files.
public enum ConfigurationFile {
    public static func apply(file: String, to configuration: inout GatewayConfiguration) throws {
        let diagnostics = DiagnosticCollector()
        let reader = YAMLReader(file: file, diagnostics: diagnostics)
        if let root = reader.composeFile(),
           let entries = reader.mapping(root, what: "configuration",
                                        allowed: GatewayConfiguration.settings.map(\.key)) {
            for entry in entries {
                guard let value = reader.string(entry.value, what: entry.key) else { continue }
                let source = "\(file):\(reader.line(entry.keyNode))"
                if let problem = configuration.set(entry.key, to: value, source: source) {
                    reader.error(at: entry.value, problem)
                }
            }
        }
        _ = try diagnostics.throwIfErrors()
    }
}
