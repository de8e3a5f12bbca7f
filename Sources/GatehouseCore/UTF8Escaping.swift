/// What an escaper does with each piece of UTF-8 text: which ASCII bytes
/// pass as they are (tested eight at a time on the hot path) and how the
/// others, and the scalars that need it, are written instead. Instances,
/// not static rules, so a rule set can carry a flag (keep line breaks).
public protocol UTF8EscapeRules {
    /// True when none of the eight bytes of `word` needs a look: all are
    /// ASCII that `isPlain` accepts. May be false for a word that is in fact
    /// plain (the bytes are then looked at one by one), never true for one
    /// that is not.
    func isPlain(word: UInt64) -> Bool
    /// Zero when `isPlain(word:)` would be true, computed without branches
    /// so that four words can be tested with one (the scanner's 32-byte
    /// blocks); non-zero otherwise. The default derives it from `isPlain(word:)`.
    func lookMask(word: UInt64) -> UInt64
    /// Whether an ASCII byte (< 0x80) is copied as it is.
    func isPlain(_ byte: UInt8) -> Bool
    /// Writes the replacement for an ASCII byte `isPlain` refused.
    func escape(ascii byte: UInt8, into out: inout [UInt8])
    /// Whether a well-formed scalar of two to four bytes is replaced rather
    /// than copied as it is.
    func needsEscape(scalar: UInt32) -> Bool
    /// Writes the replacement for a scalar `needsEscape` picked.
    func escape(scalar: UInt32, into out: inout [UInt8])
}

extension UTF8EscapeRules {
    @inlinable @inline(__always)
    public func lookMask(word: UInt64) -> UInt64 { isPlain(word: word) ? 0 : UTF8Escaping.highBits }
}

/// The byte-buffer scanner behind terminal sanitising and JSON string
/// escaping: it scans for the bytes that need work and copies the runs in
/// between in one append each, so text costs well under a nanosecond a byte
/// instead of a `Unicode.Scalar` (and an allocation) per character.
///
/// Ill-formed UTF-8 becomes U+FFFD exactly as `String(decoding:as:)`
/// repairs it: one replacement per maximal subpart (Unicode 15, section
/// 3.9, "U+FFFD Substitution of Maximal Subparts").
public enum UTF8Escaping {
    public static let highBits: UInt64 = 0x8080_8080_8080_8080
    @usableFromInline static let ones: UInt64 = 0x0101_0101_0101_0101

    /// Whether any byte of `word` is < 0x20 (C0), or ≥ 0x7F (DEL or not ASCII).
    @inlinable @inline(__always)
    public static func hasControlOrNonASCII(_ word: UInt64) -> Bool {
        let below20 = (word &- 0x2020_2020_2020_2020) & ~word
        let from7F = (word &+ ones) | word
        return (below20 | from7F) & highBits != 0
    }

    /// `hasControlOrNonASCII` as a mask: non-zero exactly when it is true.
    @inlinable @inline(__always)
    public static func controlOrNonASCIIMask(_ word: UInt64) -> UInt64 {
        let below20 = (word &- 0x2020_2020_2020_2020) & ~word
        let from7F = (word &+ ones) | word
        return (below20 | from7F) & highBits
    }

    /// `contains` as a mask: non-zero exactly when it is true.
    @inlinable @inline(__always)
    public static func mask(of byte: UInt8, in word: UInt64) -> UInt64 {
        let x = word ^ (ones &* UInt64(byte))
        return (x &- ones) & ~x & highBits
    }

    /// Whether any byte of `word` equals `byte` (a false positive can only
    /// follow a true one, in a more significant byte).
    @inlinable @inline(__always)
    public static func contains(_ byte: UInt8, in word: UInt64) -> Bool {
        let x = word ^ (ones &* UInt64(byte))
        return (x &- ones) & ~x & highBits != 0
    }

    /// Escapes all of `bytes` into `out`; an incomplete sequence at the end
    /// is ill-formed and replaced.
    @inlinable
    public static func escape<Rules: UTF8EscapeRules>(_ bytes: UnsafeBufferPointer<UInt8>, rules: Rules,
                                                       into out: inout [UInt8]) {
        guard let base = bytes.baseAddress else { return }
        _ = scan(base, count: bytes.count, from: 0, limit: bytes.count, final: true, rules: rules, into: &out)
    }

    /// Escapes `base[start..<count]` into `out`, one unit (an ASCII byte, a
    /// sequence or a maximal ill-formed subpart) at a time, starting units
    /// only before `limit`; returns where the next unit starts. Unless
    /// `final`, a lead byte followed only by continuation bytes up to
    /// `count` (a sequence a `read` may have split) is not consumed: the
    /// return value is then its index, below `limit`.
    @inlinable
    public static func scan<Rules: UTF8EscapeRules>(_ base: UnsafePointer<UInt8>, count n: Int, from start: Int,
                                                     limit: Int, final: Bool, rules: Rules,
                                                     into out: inout [UInt8]) -> Int {
        let end = min(n, limit)
        var i = start
        var runStart = start
        // 32-byte blocks are tried again only 32 bytes after one failed, so
        // text dense with escapes does not test every block four times over.
        var blocksFrom = start
        @inline(__always) func flushRun(_ upTo: Int, _ out: inout [UInt8]) {
            if runStart < upTo { out.append(contentsOf: UnsafeBufferPointer(start: base + runStart, count: upTo - runStart)) }
        }
        while i < end {
            if i >= blocksFrom && i &+ 32 <= end {
                let p = UnsafeRawPointer(base + i)
                let look = rules.lookMask(word: p.loadUnaligned(as: UInt64.self))
                    | rules.lookMask(word: p.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
                    | rules.lookMask(word: p.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
                    | rules.lookMask(word: p.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
                if look == 0 {
                    i &+= 32
                    continue
                }
                blocksFrom = i &+ 32
            }
            if i &+ 8 <= end,
               rules.isPlain(word: UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)) {
                i &+= 8
                continue
            }
            let b = base[i]
            if b < 0x80 {
                if rules.isPlain(b) { i &+= 1; continue }
                flushRun(i, &out)
                rules.escape(ascii: b, into: &out)
                i &+= 1
                runStart = i
                continue
            }
            // A lead byte: how long its sequence is and which second bytes
            // it allows (Unicode table 3-7, well-formed byte sequences).
            let need: Int
            var low: UInt8 = 0x80
            var high: UInt8 = 0xbf
            switch b {
            case 0xc2...0xdf: need = 2
            case 0xe0: need = 3; low = 0xa0
            case 0xed: need = 3; high = 0x9f
            case 0xe1...0xef: need = 3
            case 0xf0: need = 4; low = 0x90
            case 0xf4: need = 4; high = 0x8f
            case 0xf1...0xf3: need = 4
            default: need = 1 // a continuation byte, C0, C1 or F5–FF: ill-formed alone
            }
            if !final && need > 1 && i &+ need > n {
                var j = i &+ 1
                while j < n && base[j] & 0xc0 == 0x80 { j &+= 1 }
                if j == n {
                    flushRun(i, &out)
                    return i
                }
            }
            var length = 1
            if need > 1 && i &+ 1 < n && (low...high).contains(base[i &+ 1]) {
                length = 2
                while length < need && i &+ length < n && base[i &+ length] & 0xc0 == 0x80 { length &+= 1 }
            }
            if length < need || need == 1 {
                flushRun(i, &out)
                out.append(0xef) // U+FFFD
                out.append(0xbf)
                out.append(0xbd)
                i &+= length
                runStart = i
                continue
            }
            var scalar = UInt32(b) & (need == 2 ? 0x1f : need == 3 ? 0x0f : 0x07)
            for k in 1..<need { scalar = scalar << 6 | UInt32(base[i &+ k] & 0x3f) }
            if rules.needsEscape(scalar: scalar) {
                flushRun(i, &out)
                rules.escape(scalar: scalar, into: &out)
                runStart = i &+ need
            }
            i &+= need
        }
        flushRun(i, &out)
        return i
    }
}
