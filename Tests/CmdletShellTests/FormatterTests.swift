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
        XCTAssertEqual(try render("Where-Object -Property Size -EQ 2 | Select-Object Name"), "Name : a\n",
                       "one object is shown as a list")
        XCTAssertEqual(try render("Where-Object Name -NE A | Select-Object Name"), "Name\n----\nb\nc\n")
        XCTAssertEqual(try render("Where-Object Tag -Like 'LONG*e?e' | Select-Object Name | Format-Table"),
                       "Name\n----\nc\n")
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

    // MARK: PowerShell's pipeline habits (issue 12)

    let mailboxes = Array("""
    [{"Name": "alice", "ItemCount": 120, "Size": "3GB", "Tags": ["vip", "EU"], "Region": "EU"},
     {"Name": "Bob", "ItemCount": 99, "Size": "512MB", "Tags": [], "Region": "US"},
     {"Name": "carol", "ItemCount": 100, "Size": "1GB", "Tags": ["eu"], "Region": "eu"},
     {"Name": "dave", "ItemCount": 7, "Size": "10KB", "Tags": ["VIP"], "Region": "US"}]
    """.utf8)

    func names(_ line: String) throws -> String {
        let out = try Pipeline.render(json: mailboxes, stages: stages(line + " | Select-Object -ExpandProperty Name"),
                                      columns: nil).mapError { SyntaxError($0.message, column: 0) }.get()
        return out.split(separator: "\n").joined(separator: ",")
    }

    func testComparisonOperatorsAreNumericOnNumbersAndSizesAndOrdinalOnText() throws {
        XCTAssertEqual(try names("Where-Object -Property ItemCount -GT 100"), "alice")
        XCTAssertEqual(try names("Where-Object ItemCount -GE 100"), "alice,carol")
        XCTAssertEqual(try names("Where-Object ItemCount -LT 100"), "Bob,dave", "99 < 100 as numbers, not as text")
        XCTAssertEqual(try names("Where-Object ItemCount -LE 99"), "Bob,dave")
        XCTAssertEqual(try names("Where-Object Size -GT 1GB"), "alice", "sizes compare by their bytes")
        XCTAssertEqual(try names("Where-Object Size -GE 1073741824"), "alice,carol")
        XCTAssertEqual(try names("Where-Object Name -LT c"), "alice,Bob", "ordinal, ASCII case folded")
        XCTAssertEqual(try names("Where-Object Name -CLT a"), "Bob", "case-sensitive: 'B' sorts before 'a'")
        XCTAssertEqual(try names("Where-Object Name -LT a"), "", "case-insensitive: nothing sorts before 'a'")
        XCTAssertEqual(try names("Where-Object Name -EQ BOB"), "Bob")
        XCTAssertEqual(try names("Where-Object Name -CEQ BOB"), "")
        XCTAssertEqual(try names("Where-Object Name -CNE Bob"), "alice,carol,dave")
    }

    func testPatternListAndMembershipOperators() throws {
        XCTAssertEqual(try names("Where-Object Name -NotLike '*a*'"), "Bob")
        XCTAssertEqual(try names("Where-Object Name -CLike 'b*'"), "")
        XCTAssertEqual(try names("Where-Object Name -NotMatch '^[a-c]'"), "dave")
        XCTAssertEqual(try names("Where-Object Name -CMatch '^[a-c]'"), "alice,carol")
        XCTAssertEqual(try names("Where-Object Region -In us,apac"), "Bob,dave")
        XCTAssertEqual(try names("Where-Object Region -CIn EU"), "alice")
        XCTAssertEqual(try names("Where-Object Region -NotIn eu"), "Bob,dave")
        XCTAssertEqual(try names("Where-Object Tags -Contains VIP"), "alice,dave")
        XCTAssertEqual(try names("Where-Object Tags -CContains VIP"), "dave")
        XCTAssertEqual(try names("Where-Object Tags -NotContains eu"), "Bob,dave")
        XCTAssertEqual(try names("Where-Object Tags -Like 'v*'"), "alice,dave", "a list passes when any item does")
        XCTAssertEqual(try names("Where-Object ItemCount -Contains 7"), "dave", "a scalar is a list of one")
    }

    func testSelectObjectHabits() throws {
        XCTAssertEqual(try names("Select-Object -First 2"), "alice,Bob")
        XCTAssertEqual(try names("Select-Object -Last 1"), "dave")
        XCTAssertEqual(try names("Select-Object -Skip 1 -First 2"), "Bob,carol", "-Skip comes first")
        XCTAssertEqual(try names("Select-Object -Skip 3"), "dave")
        let regions = try Pipeline.render(json: mailboxes, stages: stages("Select-Object -ExpandProperty Region -Unique"),
                                          columns: nil).get()
        XCTAssertEqual(regions, "EU\nUS\neu\n", "-Unique is exact, as in PowerShell")
        let tags = try Pipeline.render(json: mailboxes, stages: stages("Select-Object -ExpandProperty Tags"), columns: nil).get()
        XCTAssertEqual(tags, "vip\nEU\neu\nVIP\n", "a list property expands into its items")
        XCTAssertEqual(try Pipeline.render(json: mailboxes, stages: stages("Select-Object Region -Unique"), columns: nil).get(),
                       "Region\n------\nEU\nUS\neu\n")
    }

    func testSortGroupAndMeasure() throws {
        XCTAssertEqual(try names("Sort-Object Region -Unique"), "alice,Bob", "one per key, case folded")
        XCTAssertEqual(try names("Sort-Object ItemCount -Descending"), "alice,carol,Bob,dave")
        XCTAssertEqual(try Pipeline.render(json: mailboxes, stages: stages("Group-Object Region -NoElement"), columns: nil).get(),
                       "Count Name\n----- ----\n2     EU\n2     US\n")
        let grouped = try Pipeline.render(json: mailboxes, stages: stages("Group-Object Region | ConvertTo-Json"), columns: nil).get()
        guard case .array(let groups)? = JSONValue.parse(Array(grouped.utf8)) else { return XCTFail(grouped) }
        XCTAssertEqual(groups.first?.property("Group").map { if case .array(let a) = $0 { a.count } else { -1 } }, 2)
        XCTAssertEqual(try Pipeline.render(json: mailboxes, stages: stages("Measure-Object Size -Sum -Minimum"), columns: nil).get(),
                       "Count    : 4\nProperty : Size\nSum      : 4831848448\nMinimum  : 10240\n",
                       "sizes are summed by their bytes")
    }

    func testFormatTableAutoSizeWrapAndCsv() throws {
        let long = Array("[{\"K\": \"\(String(repeating: "x", count: 90))\", \"N\": 1}, {\"K\": \"short\", \"N\": 2}]".utf8)
        let capped = try Pipeline.render(json: long, stages: stages("Format-Table"), columns: 200).get()
        XCTAssertEqual(capped.split(separator: "\n")[2], Substring(String(repeating: "x", count: 79) + "… 1"))
        let auto = try Pipeline.render(json: long, stages: stages("Format-Table -AutoSize"), columns: 200).get()
        XCTAssertEqual(auto.split(separator: "\n")[2], Substring(String(repeating: "x", count: 90) + " 1"))
        let wrapped = try Pipeline.render(json: long, stages: stages("Format-Table -Wrap"), columns: 40).get()
        XCTAssertEqual(wrapped, "K" + String(repeating: " ", count: 37) + " N\n" + String(repeating: "-", count: 38) + " -\n"
                       + String(repeating: "x", count: 38) + " 1\n" + String(repeating: "x", count: 38) + "\n"
                       + String(repeating: "x", count: 14) + "\nshort" + String(repeating: " ", count: 33) + " 2\n")
        let csv = Array("[{\"A\": \"say \\\"hi\\\"\", \"B\": 1}, {\"B\": null, \"C\": \"x\\ny\"}]".utf8)
        XCTAssertEqual(try Pipeline.render(json: csv, stages: stages("ConvertTo-Csv"), columns: nil).get(),
                       "\"A\",\"B\",\"C\"\n\"say \"\"hi\"\"\",\"1\",\"\"\n\"\",\"\",\"x\\x0ay\"\n",
                       "quotes doubled; a line break inside a value is shown escaped, so a record is one line")
    }

    func testObjectsRenderAsPowerShellDoes() throws {
        let one = Array("{\"Name\": \"alice\", \"ItemCount\": 3}".utf8)
        XCTAssertEqual(try Pipeline.render(json: one, stages: [], columns: nil).get(), "Name      : alice\nItemCount : 3\n")
        XCTAssertEqual(try Pipeline.render(json: Array("[{\"a\": 1}, {\"a\": 2}]".utf8), stages: [], columns: nil).get(),
                       "a\n-\n1\n2\n")
    }

    func testNewParametersAreCheckedAtBindTime() {
        for line in ["Select-Object -First 1 -Last 1", "Select-Object a -ExpandProperty b", "Select-Object -ExpandProperty 'a b'",
                     "Select-Object -Skip -1", "Where-Object a -GT", "Where-Object a -GT 1 -LT 2", "Where-Object a -C 1",
                     "Where-Object a -NotMatch '(?=x)'", "Group-Object", "Format-Table -Wrap -Wrap",
                     "ConvertTo-Csv -Delimiter ';'", "ConvertTo-Csv | Format-List"] {
            XCTAssertThrowsError(try stages(line), line)
        }
        XCTAssertNoThrow(try stages("Where-Object a -In x,y,z | Sort-Object a -Unique | Format-Table -AutoSize -Wrap"))
    }
}
