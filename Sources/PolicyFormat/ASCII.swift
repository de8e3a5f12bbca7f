/// ASCII-only text helpers. Names (cmdlets, parameters, roles) are compared
/// with ASCII case folding only, never Unicode folding: Unicode folding maps
/// e.g. U+212A KELVIN SIGN to "k", which would let a look-alike spelling reach
/// a cmdlet that a byte-wise review of the policy would not expect.
public enum ASCII {
    /// Lower-cases A–Z and leaves every other scalar untouched. Works on
    /// UTF-8 bytes: an ASCII byte never occurs inside a multi-byte sequence,
    /// so this can neither split nor alter a non-ASCII scalar.
    public static func lowercased(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 >= 0x41 && $0 <= 0x5a }) else { return text }
        return String(decoding: text.utf8.map { $0 >= 0x41 && $0 <= 0x5a ? $0 + 0x20 : $0 }, as: UTF8.self)
    }

    @inline(__always)
    static func fold(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5a ? b + 0x20 : b }

    /// ASCII case-insensitive equality, without allocating.
    public static func equalsIgnoringCase(_ a: String, _ b: String) -> Bool {
        var x = a.utf8.makeIterator(), y = b.utf8.makeIterator()
        while true {
            switch (x.next(), y.next()) {
            case (nil, nil): return true
            case (let p?, let q?): if fold(p) != fold(q) { return false }
            default: return false
            }
        }
    }

    /// ASCII case-insensitive prefix test, without allocating.
    public static func hasPrefixIgnoringCase(_ text: String, _ prefix: String) -> Bool {
        var x = text.utf8.makeIterator()
        for q in prefix.utf8 {
            guard let p = x.next(), fold(p) == fold(q) else { return false }
        }
        return true
    }

    public static func isLetter(_ s: Unicode.Scalar) -> Bool {
        (s.value >= 0x41 && s.value <= 0x5a) || (s.value >= 0x61 && s.value <= 0x7a)
    }

    public static func isDigit(_ s: Unicode.Scalar) -> Bool { s.value >= 0x30 && s.value <= 0x39 }

    /// `Verb-Noun`: ASCII letters, one hyphen, both halves non-empty.
    public static func isCmdletName(_ name: String) -> Bool {
        let parts = name.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, name.unicodeScalars.count <= 64 else { return false }
        return parts.allSatisfy { !$0.isEmpty && $0.unicodeScalars.allSatisfy(isLetter) }
    }

    /// Aliases a policy declares: an ASCII letter, then ASCII letters, digits
    /// or single hyphens (≤ 32), not ending in a hyphen: `gmbx`, `Get-Mbx`.
    public static func isAliasName(_ name: String) -> Bool {
        let scalars = Array(name.unicodeScalars)
        guard let first = scalars.first, isLetter(first), scalars.count <= 32, scalars.last != "-",
              !name.contains("--") else { return false }
        return scalars.allSatisfy { isLetter($0) || isDigit($0) || $0 == "-" }
    }

    /// Parameter names: an ASCII letter, then ASCII letters or digits (≤ 64).
    public static func isParameterName(_ name: String) -> Bool {
        let scalars = Array(name.unicodeScalars)
        guard let first = scalars.first, isLetter(first), scalars.count <= 64 else { return false }
        return scalars.allSatisfy { isLetter($0) || isDigit($0) }
    }

    /// Parses a non-negative decimal made of ASCII digits only, refusing
    /// signs, spaces, Unicode digits and anything that overflows `Int`.
    public static func parseNonNegativeInt(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.unicodeScalars.count <= 40 else { return nil }
        var value = 0
        for scalar in text.unicodeScalars {
            guard isDigit(scalar) else { return nil }
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int(scalar.value - 0x30))
            if o1 || o2 { return nil }
            value = sum
        }
        return value
    }

    public static func parseNonNegativeInt(_ text: String) -> Int? { parseNonNegativeInt(text[...]) }

    /// Levenshtein distance on ASCII-lower-cased scalars; used for "did you mean" hints.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let x = Array(lowercased(a).unicodeScalars), y = Array(lowercased(b).unicodeScalars)
        if x.isEmpty { return y.count }
        if y.isEmpty { return x.count }
        var previous = Array(0...y.count)
        for i in 1...x.count {
            var current = [i] + Array(repeating: 0, count: y.count)
            for j in 1...y.count {
                let cost = x[i - 1] == y[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            }
            previous = current
        }
        return previous[y.count]
    }

    /// The closest candidate within a small edit distance, for hints.
    public static func suggestion(for word: String, among candidates: [String]) -> String? {
        let limit = max(1, min(3, word.count / 3))
        var best: (String, Int)?
        let lowerWord = lowercased(word)
        for c in candidates where lowerWord.count >= 2 {
            let lowerCandidate = lowercased(c)
            if lowerWord.hasPrefix(lowerCandidate) || lowerCandidate.hasPrefix(lowerWord) { return c }
        }
        for c in candidates {
            let d = editDistance(word, c)
            if d <= limit, best.map({ d < $0.1 }) ?? true { best = (c, d) }
        }
        return best?.0
    }
}
