import Foundation

/// A regular expression that must match the *whole* value.
///
/// Admins write `'^[a-z]+$'`, but ICU's `$` also matches before a final line
/// terminator, and a pattern without anchors would match any substring. So
/// the match is only accepted when it covers the entire value, and a value
/// containing any line terminator (`\n`, `\r`, U+0085, U+2028, U+2029) never
/// matches at all, whatever the pattern says.
public struct AnchoredPattern: Sendable {
    public let source: String
    private let regex: NSRegularExpression

    /// Compiles `source` alone (so an unbalanced pattern cannot escape the
    /// wrapping) and then wrapped as `\A(?:source)\z`, so backtracking looks
    /// for a whole-value match rather than settling for a prefix.
    public init(_ source: String) throws {
        self.source = source
        _ = try NSRegularExpression(pattern: source, options: [])
        regex = try NSRegularExpression(pattern: "\\A(?:" + source + ")\\z", options: [])
    }

    private static let lineTerminators: Set<UInt32> = [0x0a, 0x0b, 0x0c, 0x0d, 0x85, 0x2028, 0x2029]

    public func matches(_ value: String) -> Bool {
        if value.unicodeScalars.contains(where: { AnchoredPattern.lineTerminators.contains($0.value) }) {
            return false
        }
        let whole = NSRange(value.startIndex..<value.endIndex, in: value)
        let found = regex.firstMatch(in: value, options: [.anchored], range: whole)
        guard let found else { return false }
        return found.range.location == whole.location && found.range.length == whole.length
    }
}
