import Foundation
import GatehouseCore
import GRDB
@testable import Lockbox
import XCTest

/// Rows the store never writes, put straight into a real SQLite file with a
/// second GRDB connection (as a hand edit or a damaged file would), must make
/// every read throw an error that names the row and the column. None may be
/// read with a default in the broken field's place.
final class CorruptRowTests: XCTestCase {
    var path = ""
    var store: SQLiteLockboxStore!

    override func setUpWithError() throws {
        path = NSTemporaryDirectory() + "gatehouse-corrupt-" + UUID().uuidString + ".sqlite"
        store = try SQLiteLockboxStore(path: path)
    }

    override func tearDown() {
        store = nil
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
    }

    /// Inserts a valid request through the store, then runs `sql` on it
    /// (with `?` bound to its id) through a connection of its own.
    func corrupt(_ sql: String, active: Bool = false) throws -> Int64 {
        let id = try store.insert(StoreCompliance.new()).id
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in
            if active {
                try db.execute(sql: """
                    UPDATE request SET state = 'active', session = 's1', activated_at = ?, expires_at = ?, deadline = ?
                    WHERE id = ?
                    """, arguments: [StoreCompliance.t0.timeIntervalSince1970,
                                     StoreCompliance.t0.timeIntervalSince1970 + 600,
                                     StoreCompliance.t0.timeIntervalSince1970 + 600, id])
            }
            try db.execute(sql: sql, arguments: [id])
        }
        return id
    }

    func assertCorrupt<T>(_ expression: @autoclosure () throws -> T, id: Int64, column: String,
                          file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertLockboxError(try expression(), {
            guard case .corruptRow(let rowID, let rowColumn, _) = $0, rowID == id, rowColumn == column else {
                return false
            }
            return $0.description.contains("request \(id) column '\(column)'")
        }, file: file, line: line)
    }

    func testBadRequesterNameThrows() throws {
        let id = try corrupt("UPDATE request SET requester = 'Not A User!' WHERE id = ?")
        assertCorrupt(try store.request(id: id), id: id, column: "requester")
        assertCorrupt(try store.requests(RequestQuery()), id: id, column: "requester")
    }

    func testBadApproverNameThrows() throws {
        let id = try corrupt("UPDATE request SET manager_approver = '../root' WHERE id = ?")
        assertCorrupt(try store.request(id: id), id: id, column: "manager_approver")
    }

    func testUnknownStateThrows() throws {
        let id = try corrupt("UPDATE request SET state = 'superuser' WHERE id = ?")
        assertCorrupt(try store.request(id: id), id: id, column: "state")
        assertCorrupt(try store.requests(RequestQuery()), id: id, column: "state")
    }

    func testTextWhereADateBelongsThrows() throws {
        let id = try corrupt("UPDATE request SET created_at = 'yesterday' WHERE id = ?")
        assertCorrupt(try store.request(id: id), id: id, column: "created_at")
        let lapsing = try corrupt("UPDATE request SET deadline = 'soon' WHERE id = ?")
        assertCorrupt(try store.request(id: lapsing), id: lapsing, column: "deadline")
    }

    func testInfiniteExpiryThrows() throws {
        let id = try corrupt("UPDATE request SET expires_at = 9e999 WHERE id = ?", active: true)
        assertCorrupt(try store.request(id: id), id: id, column: "expires_at")
        assertCorrupt(try store.activeGrants(session: SessionID(rawValue: "s1"), now: StoreCompliance.t0), id: id,
                      column: "expires_at")
    }

    func testTextExpiryOfAnActiveGrantThrows() throws {
        let id = try corrupt("UPDATE request SET expires_at = 'forever' WHERE id = ?", active: true)
        assertCorrupt(try store.activeGrants(session: SessionID(rawValue: "s1"), now: StoreCompliance.t0), id: id,
                      column: "expires_at")
    }

    /// NULL in a column the schema declares NOT NULL: the test swaps the table
    /// for an unconstrained copy (as a file written by another tool could have).
    func testNullInARequiredColumnThrows() throws {
        let id = try store.insert(StoreCompliance.new()).id
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in
            try db.execute(sql: """
                ALTER TABLE request RENAME TO request_strict;
                CREATE TABLE request AS SELECT * FROM request_strict;
                DROP TABLE request_strict;
                """)
            try db.execute(sql: "UPDATE request SET requester = NULL WHERE id = ?", arguments: [id])
        }
        assertCorrupt(try store.request(id: id), id: id, column: "requester")
    }
}
