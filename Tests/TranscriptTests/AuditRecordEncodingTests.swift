import Foundation
import GatehouseCore
@testable import Transcript
import XCTest

/// `AuditRecord(event:seq:prev:)` encodes the body once and splices the hash
/// into it; the line and the hash must be exactly those of the canonical
/// encoding of the whole object, with and without each optional member.
final class AuditRecordEncodingTests: XCTestCase {
    func testTheSplicedLineAndHashAreTheCanonicalEncoding() throws {
        let time = Date(timeIntervalSince1970: 1_796_000_000.5)   // exact in milliseconds, as the line keeps it
        let fieldSets: [[String: String]] = [
            [:], ["method": "publickey"], ["a": "1", "zz": "2", "hash": "not the hash", "fields": "x"],
            ["line": "Get-Status \"q\" \\ \u{1}\t\n é 漢 \u{7f}", "": "empty key"],
        ]
        var checked = 0
        for fields in fieldSets {
            for user in [nil, "alice", "bob\"\u{2}"] as [String?] {
                for session in [nil, SessionID(rawValue: "0123abcd")] {
                    let event = AuditEvent(time: time, kind: .commandAllowed, user: user, session: session, fields: fields)
                    let record = AuditRecord(event: event, seq: 42, prev: AuditRecord.genesisHash)
                    // The encoding of the whole object, built the long way.
                    guard case .object(var members) = record.body else { return XCTFail("body is not an object") }
                    XCTAssertEqual(record.hash, AuditRecord.hashHex(JSONValue.object(members).canonicalBytes))
                    members["hash"] = .string(record.hash)
                    XCTAssertEqual(record.lineBytes, JSONValue.object(members).canonicalBytes,
                                   String(decoding: record.lineBytes, as: UTF8.self))
                    // And the verifier's view of the line.
                    let parsed = try AuditRecord.parse(line: record.lineBytes)
                    XCTAssertTrue(parsed.hashMatches)
                    XCTAssertTrue(parsed.isCanonical)
                    XCTAssertEqual(parsed.record, record)
                    checked += 1
                }
            }
        }
        XCTAssertEqual(checked, 24)
    }
}
