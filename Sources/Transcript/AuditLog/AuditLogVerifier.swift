import Crypto
import Foundation
import GatehouseCore

/// Checks an audit log: every line's hash, the chain of `prev` hashes, the
/// sequence numbers, every checkpoint's Ed25519 signature, and the separate
/// newest-checkpoint file (which catches truncation). Names the first bad
/// sequence number and why, as `gatehouse audit verify` prints it.
public struct AuditLogVerifier {
    /// The first problem found.
    public struct Problem: Sendable, Equatable, CustomStringConvertible {
        /// The sequence number that should be at the bad place.
        public let seq: Int
        /// The 1-based line in the log, where there is one.
        public let line: Int?
        public let reason: String
        public var description: String {
            "seq \(seq)" + (line.map { " (line \($0))" } ?? "") + ": \(reason)"
        }
    }

    /// What verification found.
    public struct Report: Sendable {
        public var events = 0
        public var lastSeq = 0
        public var checkpoints = 0
        /// The highest sequence number covered by a valid signature.
        public var signedThrough = 0
        public var problem: Problem?
        public var notes: [String] = []
        public var ok: Bool { problem == nil }

        /// Events chained after the newest checkpoint: intact but not yet signed
        /// (what a crash leaves behind).
        public var unsignedTail: Int { max(0, lastSeq - signedThrough) }
    }

    public let logPath: String
    public let checkpointPath: String
    public let publicKey: Curve25519.Signing.PublicKey?

    public init(logPath: String, checkpointPath: String? = nil, publicKey: Curve25519.Signing.PublicKey?) {
        self.logPath = logPath
        self.checkpointPath = checkpointPath ?? logPath + ".checkpoint"
        self.publicKey = publicKey
    }

    public func verify() throws -> Report {
        guard let data = FileManager.default.contents(atPath: logPath) else {
            throw AuditLogError.notFound("audit log \(logPath)")
        }
        var report = Report()
        var expected = 1
        var prevHash = AuditRecord.genesisHash
        var lineNumber = 0
        var lineAtSeq: [Int: Int] = [:]
        var hashAtSeq: [Int: String] = [:]
        let bytes = [UInt8](data)
        var start = 0
        func fail(_ reason: String) { report.problem = Problem(seq: expected, line: lineNumber, reason: reason) }

        scan: while start < bytes.count {
            lineNumber += 1
            guard let newline = bytes[start...].firstIndex(of: 0x0a) else {
                // Only the very end of the file may hold a fragment: a write
                // cut short by power loss. It was never acknowledged.
                report.notes.append("line \(lineNumber): incomplete last line (a write cut short); not part of the chain")
                break
            }
            let line = bytes[start..<newline]
            start = newline + 1
            if line.isEmpty {
                // The daemon ends a torn fragment with a newline at restart; an
                // empty line carries nothing.
                continue
            }
            let parsed: AuditRecord.Parsed
            do {
                parsed = try AuditRecord.parse(line: line)
            } catch let failure as AuditRecord.ParseFailure {
                if Self.isTornFragment(line) {
                    report.notes.append("line \(lineNumber): fragment of a write cut short; not part of the chain")
                    continue
                }
                fail("the line is \(failure.reason) (edited or damaged)")
                break scan
            }
            let record = parsed.record
            if !parsed.hashMatches {
                fail("the event's content does not match its hash: it was edited")
                break
            }
            if !parsed.isCanonical {
                fail("the line is not in canonical form (reformatted, or a key duplicated): it was edited")
                break
            }
            if record.seq != expected {
                if record.seq > expected {
                    fail("expected seq \(expected) but found seq \(record.seq): events were removed or reordered")
                } else {
                    fail("expected seq \(expected) but found seq \(record.seq) again: events were reordered or duplicated")
                }
                break
            }
            if record.prev != prevHash {
                fail("its prev hash does not match the hash of seq \(expected - 1): the chain is broken")
                break
            }
            if record.kind == AuditEventKind.auditCheckpoint.rawValue {
                if let problem = checkCheckpoint(record) {
                    fail(problem)
                    break
                }
                report.checkpoints += 1
                if publicKey != nil { report.signedThrough = record.seq }
            }
            report.events += 1
            report.lastSeq = record.seq
            lineAtSeq[record.seq] = lineNumber
            hashAtSeq[record.seq] = record.hash
            prevHash = record.hash
            expected += 1
        }

        if report.problem == nil {
            checkNewestCheckpoint(&report, hashAtSeq: hashAtSeq, lineAtSeq: lineAtSeq)
        }
        if publicKey == nil {
            report.notes.append("no public key: signatures were not checked, only the chain")
        }
        return report
    }

    /// A write cut short (power loss) leaves a prefix of a JSON object: it
    /// starts with `{` and never reaches its closing brace. The daemon ends
    /// it with a newline at restart and the chain continues past it, so it is
    /// noted, not failed: the next line must still chain to the one before.
    static func isTornFragment(_ line: ArraySlice<UInt8>) -> Bool {
        line.first == UInt8(ascii: "{") && line.last != UInt8(ascii: "}")
    }

    private func checkCheckpoint(_ record: AuditRecord) -> String? {
        guard let signedSeq = record.fields["signedSeq"].flatMap(Int.init), let signedHash = record.fields["signedHash"],
              let signatureText = record.fields["signature"], let signature = Data(base64Encoded: signatureText) else {
            return "a checkpoint without signedSeq, signedHash or signature"
        }
        guard signedSeq == record.seq - 1, signedHash == record.prev else {
            return "the checkpoint signs seq \(signedSeq), not the event before it"
        }
        guard let publicKey else { return nil }
        if let keyID = record.fields["key"], keyID != AuditSigningKey.keyID(of: publicKey) {
            return "the checkpoint was signed by key \(keyID), not by the expected key \(AuditSigningKey.keyID(of: publicKey))"
        }
        guard publicKey.isValidSignature(signature, for: AuditSigningKey.checkpointMessage(seq: signedSeq, hash: signedHash)) else {
            return "the checkpoint's signature is not valid: events up to here were rewritten"
        }
        return nil
    }

    private func checkNewestCheckpoint(_ report: inout Report, hashAtSeq: [Int: String], lineAtSeq: [Int: Int]) {
        guard let data = FileManager.default.contents(atPath: checkpointPath) else {
            if report.checkpoints > 0 {
                report.notes.append("no \(checkpointPath): truncation after the last checkpoint in the log cannot be ruled out")
            }
            return
        }
        let line = data.last == 0x0a ? data.dropLast() : data[...]
        guard let parsed = try? AuditRecord.parse(line: line), parsed.hashMatches,
              parsed.record.kind == AuditEventKind.auditCheckpoint.rawValue else {
            report.problem = Problem(seq: report.lastSeq + 1, line: nil,
                                     reason: "\(checkpointPath) is not a valid checkpoint record")
            return
        }
        let checkpoint = parsed.record
        if let problem = checkCheckpoint(checkpoint) {
            report.problem = Problem(seq: checkpoint.seq, line: nil, reason: "\(checkpointPath): \(problem)")
            return
        }
        if checkpoint.seq > report.lastSeq {
            report.problem = Problem(seq: report.lastSeq + 1, line: nil, reason:
                "the log ends at seq \(report.lastSeq) but the newest signed checkpoint (\(checkpointPath)) "
                + "is seq \(checkpoint.seq): the log was truncated")
            return
        }
        guard hashAtSeq[checkpoint.seq] == checkpoint.hash else {
            report.problem = Problem(seq: checkpoint.seq, line: lineAtSeq[checkpoint.seq], reason:
                "the log's event differs from the newest signed checkpoint in \(checkpointPath)")
            return
        }
        if publicKey != nil { report.signedThrough = max(report.signedThrough, checkpoint.seq) }
    }
}
