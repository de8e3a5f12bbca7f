import CmdletShell
import XCTest

final class LexerTests: XCTestCase {
    func lexError(_ line: String, file: StaticString = #filePath, l: UInt = #line) -> SyntaxError? {
        lexError(Array(line.utf8), file: file, l: l)
    }

    func lexError(_ line: [UInt8], file: StaticString = #filePath, l: UInt = #line) -> SyntaxError? {
        switch Lexer.tokenize(line) {
        case .success(let tokens):
            XCTFail("accepted: \(tokens)", file: file, line: l)
            return nil
        case .failure(let e): return e
        }
    }

    func tokens(_ line: String) throws -> [Token] { try Lexer.tokenize(Array(line.utf8)).get() }

    func testWordsQuotesAndParameters() throws {
        let t = try tokens("Get-Mailbox  -Identity\talice 'a b' \"c d\" -Name:value -Q:'x y'")
        XCTAssertEqual(t.map(\.text), ["Get-Mailbox", "Identity", "alice", "a b", "c d", "Name", "Q"])
        XCTAssertEqual(t.map(\.column), [1, 14, 24, 30, 36, 42, 54])
        XCTAssertEqual(t[5].kind, .parameter(inlineValue: .init(text: "value", quoted: false, column: 48)))
        XCTAssertEqual(t[6].kind, .parameter(inlineValue: .init(text: "x y", quoted: true, column: 57)))
        XCTAssertEqual(t[3].kind, .quoted)
    }

    func testQuoteEscapes() throws {
        XCTAssertEqual(try tokens("X-Y 'it''s' \"say \"\"hi\"\"\"").map(\.text), ["X-Y", "it's", "say \"hi\""])
        // Single quotes are fully literal, metacharacters included.
        XCTAssertEqual(try tokens("X-Y '$a|b;c`d(e)'").map(\.text), ["X-Y", "$a|b;c`d(e)"])
        XCTAssertEqual(try tokens("X-Y ''").map(\.text), ["X-Y", ""])
    }

    func testEmptyAndBlankLines() throws {
        XCTAssertEqual(try tokens(""), [])
        XCTAssertEqual(try tokens(" \t "), [])
    }

    func testEachRefusedMetacharacterHasItsColumn() {
        // "Get-Mailbox -Identity " is 22 columns; the word starts at column 23.
        let cases: [(word: String, fragment: String, column: Int)] = [
            ("a$x", "'$'", 24), ("a{", "script block", 24), ("a}", "script block", 24),
            ("a(", "subexpression", 24), ("a)", "subexpression", 24), ("a;", "one command", 24),
            ("a&", "'&'", 24), ("a<", "redirection", 24),
            ("a>", "redirection", 24), ("a`", "backtick", 24), ("#c", "comments", 23), ("@x", "splatting", 23),
            ("$x", "'$'", 23), ("(1)", "subexpression", 23),
        ]
        for c in cases {
            let error = lexError("Get-Mailbox -Identity \(c.word)")
            XCTAssertTrue(error?.message.contains(c.fragment) ?? false, "\(c.word): \(String(describing: error))")
            XCTAssertEqual(error?.column, c.column, c.word)
        }
        // '@' inside a word (an e-mail address) and '#' inside a word are literal.
        XCTAssertNoThrow(try tokens("Get-Mailbox alice@contoso.com a#b"))
    }

    func testPipeIsATokenOfItsOwnOutsideQuotes() throws {
        let kinds = try tokens("Get-X a|Format-List | Sort-Object 'q|r'").map(\.kind)
        XCTAssertEqual(kinds, [.bare, .bare, .pipe, .bare, .pipe, .bare, .quoted])
        XCTAssertEqual(try tokens("Get-X 'a|b'").last?.text, "a|b")
        XCTAssertEqual(try tokens("Get-X 'a'|Format-List").map(\.kind), [.bare, .quoted, .pipe, .bare])
        XCTAssertEqual(try tokens("Get-X a||b").filter { $0.kind == .pipe }.map(\.column), [8, 9])
    }

    func testDoubleQuotesRefuseExpansion() {
        XCTAssertEqual(lexError("X-Y \"a$b\"")?.column, 7)
        XCTAssertEqual(lexError("X-Y \"a`b\"")?.column, 7)
    }

    func testStopParsingToken() {
        XCTAssertEqual(lexError("X-Y --% rest")?.column, 5)
    }

    func testLookAlikeDashesAndQuotesAreRefused() {
        for scalar in ["\u{2013}", "\u{2014}", "\u{2015}", "\u{2212}"] {
            let error = lexError("Get-Mailbox \(scalar)Identity alice")
            XCTAssertEqual(error?.column, 13)
            XCTAssertTrue(error?.message.contains("dash look-alike") ?? false)
        }
        for scalar in ["\u{2018}", "\u{2019}", "\u{201A}", "\u{201B}", "\u{201C}", "\u{201D}", "\u{201E}"] {
            // Even inside a plain quoted string: PowerShell would end the string there.
            let error = lexError("Get-Mailbox 'ab\(scalar)c'")
            XCTAssertEqual(error?.column, 16)
            XCTAssertTrue(error?.message.contains("typographic quote") ?? false)
        }
    }

    func testControlAndInvisibleCharactersAreRefused() {
        for (scalar, column) in [("\u{0}", 5), ("\u{1B}", 5), ("\u{7F}", 5), ("\u{85}", 5), ("\r", 5), ("\n", 5),
                                 ("\u{2028}", 5), ("\u{200B}", 5), ("\u{202E}", 5), ("\u{A0}", 5), ("\u{FEFF}", 5)] {
            XCTAssertEqual(lexError("X-Y \(scalar)")?.column, column, "U+\(String(scalar.unicodeScalars.first?.value ?? 0, radix: 16))")
        }
        // Inside quotes too.
        XCTAssertEqual(lexError("X-Y 'a\u{1B}[2J'")?.column, 7)
    }

    func testInvalidUTF8() {
        XCTAssertEqual(lexError([0x58, 0x2d, 0x59, 0x20, 0xff]), SyntaxError("the line is not valid UTF-8", column: 5))
        XCTAssertEqual(lexError([0x61, 0xc3])?.column, 2, "truncated sequence")
        XCTAssertEqual(lexError([0xc0, 0xaf])?.column, 1, "overlong '/'")
        XCTAssertEqual(lexError([0xed, 0xa0, 0x80])?.column, 1, "surrogate")
        XCTAssertEqual(lexError([0xc3, 0xa9, 0x20, 0xf4, 0x90, 0x80, 0x80])?.column, 3, "above U+10FFFF; é counts one column")
    }

    func testOverlongLine() {
        let long = [UInt8](repeating: 0x61, count: Lexer.maxLineBytes + 1)
        XCTAssertEqual(lexError(long)?.column, Lexer.maxLineBytes + 1)
        XCTAssertNoThrow(try Lexer.tokenize([UInt8](repeating: 0x61, count: Lexer.maxLineBytes)).get())
    }

    func testQuoteRules() {
        XCTAssertEqual(lexError("X-Y 'abc")?.column, 5, "unterminated")
        XCTAssertEqual(lexError("X-Y ab'c'")?.column, 7, "quote inside a word")
        XCTAssertEqual(lexError("X-Y 'a'b")?.column, 8, "text glued to the closing quote")
    }

    func testNonASCIIInsideValuesIsKept() throws {
        XCTAssertEqual(try tokens("X-Y 'José Müller' 日本").map(\.text), ["X-Y", "José Müller", "日本"])
    }
}
