import CmdletPolicy
@testable import CmdletShell
import GatehouseCore
import XCTest

/// Rendering backend JSON through the built-in formatters.
final class FormatterTests: XCTestCase {
    let json = Array("""
    [{"Name": "b", "Size": 10, "Tag": "x\\u001b[2J"},
     {"Name": "a", "Size": 2, "Tag": null},
     {"Name": "c", "Size": 7, "Tag": "long text here"}]
    """.utf8)

    func stages(_ line: String) throws -> [FormatterStage] {
        let tokens = try Lexer.tokenize(Array(line.utf8)).get()
        var segments: [ArraySlice<Token>] = []
        var start = 0
        for (i, t) in tokens.enumerated() where t.kind == .pipe {
            segments.append(tokens[start..<i]); start = i + 1
        }
        segments.append(tokens[start...])
        return try Pipeline.bind(segments).mapError { SyntaxError($0.message, column: $0.column ?? 0) }.get()
    }

    func render(_ line: String, columns: Int? = nil) throws -> String {
        try Pipeline.render(json: json, stages: stages(line), columns: columns)
            .mapError { SyntaxError($0.message, column: 0) }.get()
    }

    func testDefaultTableKeepsBackendOrderAndSanitises() throws {
        XCTAssertEqual(try Pipeline.render(json: json, stages: [], columns: nil).get(), """
        Name Size Tag
        ---- ---- --------------
        b    10   x\\x1b[2J
        a    2
        c    7    long text here

        """)
    }

    func testTableFitsTheTerminal() throws {
        XCTAssertEqual(try render("Format-Table", columns: 20), """
        Name Size
        ---- ----
        b    10
        a    2
        c    7
        (not shown, too wide: Tag; use Select-Object or Format-List)

        """)
        // A single column that is still too wide is cut with '…'.
        XCTAssertEqual(try render("Format-Table Tag", columns: 20), "Tag\n--------------\nx\\x1b[2J\n\nlong text here\n")
        let narrow = try render("Format-Table -Property Tag,Name", columns: 20)
        XCTAssertEqual(narrow.split(separator: "\n")[4], "long text here c")
        XCTAssertEqual(Pipeline.table([.object([("T", .string(String(repeating: "x", count: 30)))])], width: 20),
                       "T\n--------------------\nxxxxxxxxxxxxxxxxxxx…\n")
    }

    func testTableCountsTerminalColumnsNotScalars() {
        // 東京 is four columns wide; "e\u{301}" (e + combining acute) one.
        let items: [JSONValue] = [.object([("City", .string("\u{6771}\u{4EAC}")), ("N", .number("1"))]),
                                  .object([("City", .string("Caf" + "e\u{301}")), ("N", .number("2"))])]
        XCTAssertEqual(Pipeline.table(items, width: 80), """
        City N
        ---- -
        \u{6771}\u{4EAC} 1
        Cafe\u{301} 2

        """)
        // A cut never splits a wide character across the column edge.
        let wide: [JSONValue] = [.object([("T", .string(String(repeating: "\u{6F22}", count: 20)))])]
        let lines = Pipeline.table(wide, width: 10).split(separator: "\n")
        XCTAssertEqual(lines[2], Substring(String(repeating: "\u{6F22}", count: 4) + "…"))
        XCTAssertEqual(lines.map { TerminalText.columns(String($0)) }, [1, 10, 9])
    }

    func testBidiControlsAreShownEscaped() {
        // U+202E would display "txt.exe" as "exe.txt"-like text; it is shown escaped instead.
        XCTAssertEqual(TerminalText.sanitize("invoice\u{202E}txt.exe"), "invoice\\u{202e}txt.exe")
        XCTAssertEqual(TerminalText.sanitize("a\u{2066}b\u{2069}\u{200F}"), "a\\u{2066}b\\u{2069}\\u{200f}")
        XCTAssertEqual(TerminalText.sanitize("\u{05D0}\u{05D1}"), "\u{05D0}\u{05D1}", "Hebrew letters themselves pass")
    }

    func testSelectWhereSortMeasure() throws {
        XCTAssertEqual(try render("Sort-Object Size -Descending | Select-Object -Property Name -First 2"),
                       "Name\n----\nb\nc\n")
        XCTAssertEqual(try render("Where-Object -Property Size -EQ 2 | Select-Object Name"), "Name\n----\na\n")
        XCTAssertEqual(try render("Where-Object Name -NE A | Select-Object Name"), "Name\n----\nb\nc\n")
        XCTAssertEqual(try render("Where-Object Tag -Like 'LONG*e?e' | Select-Object Name"), "Name\n----\nc\n")
        XCTAssertEqual(try render("Where-Object Name -Match '^[ab]$' | Sort-Object Name | Select-Object Name"),
                       "Name\n----\na\nb\n")
        XCTAssertEqual(try render("Measure-Object -Property Size -Sum -Maximum"),
                       "Count    : 3\nProperty : Size\nSum      : 19\nMaximum  : 10\n")
    }

    func testListAndJson() throws {
        XCTAssertEqual(try render("Where-Object Name -EQ a | Format-List"), "Name : a\nSize : 2\nTag  : \n")
        XCTAssertEqual(try render("Select-Object Name,Tag -First 1 | ConvertTo-Json"),
                       "[\n  {\n    \"Name\": \"b\",\n    \"Tag\": \"x\\u001b[2J\"\n  }\n]\n")
    }

    func testCatastrophicMatchIsStoppedByTheBudget() throws {
        let evil = Array(("[{\"v\": \"" + String(repeating: "a", count: 60) + "!\"}]").utf8)
        let result = Pipeline.render(json: evil, stages: try stages("Where-Object v -Match '(a|aa)+$'"), columns: nil)
        XCTAssertEqual(result, .failure(FormatterError(message: "the -Match pattern took too long and was stopped")))
    }

    func testRegexAndStageRulesAreEnforcedAtBindTime() {
        for line in ["Where-Object v -Match '(a)\\1'", "Where-Object v -Match '(?=a)'", "Where-Object v -Match '(?i)a'",
                     "Where-Object v -Match '" + String(repeating: "a", count: 129) + "'", "Where-Object v -Match '('",
                     "Where-Object v", "Where-Object v -EQ a -Like b", "Select-Object", "Select-Object a -First 0",
                     "Select-Object *", "Select-Object a.b", "Format-List | Sort-Object a", "Get-Thing",
                     "Sort-Object -Property a -Property b", "ConvertTo-Json -Depth 3", "Format-Table -Prop a,,b"] {
            XCTAssertThrowsError(try stages(line), line)
        }
        XCTAssertThrowsError(try stages(Array(repeating: "Sort-Object", count: 9).joined(separator: " | ")))
    }

    func testBackendJsonIsParsedStrictly() {
        for bad in ["", "[", "[1,]", "{\"a\":1,}", "[01]", "[1.]", "\"\\x\"", "[\"a\u{1}\"]", "nul",
                    String(repeating: "[", count: 65) + String(repeating: "]", count: 65)] {
            XCTAssertNil(JSONValue.parse(Array(bad.utf8)), bad)
        }
        XCTAssertEqual(JSONValue.parse(Array("{\"a\":[1,-2.5e3,true,null,\"\\ud83d\\ude00\"]}".utf8)),
                       .object([("a", .array([.number("1"), .number("-2.5e3"), .bool(true), .null, .string("😀")]))]))
    }
}
