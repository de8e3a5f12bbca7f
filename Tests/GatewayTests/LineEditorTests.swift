import XCTest
@testable import Gateway

final class LineEditorTests: XCTestCase {
    func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    func testCarriageReturnCompletesALineAndEchoesCRLF() {
        var editor = LineEditor(echo: true, maxLineBytes: 100)
        let (echo, events) = editor.feed(bytes("Get-Mailbox\r"))
        XCTAssertEqual(events, [.line(bytes("Get-Mailbox"))])
        XCTAssertEqual(echo, bytes("Get-Mailbox\r\n"))
    }

    func testCRLFCountsOnceAndLFAloneEndsALine() {
        var editor = LineEditor(echo: false, maxLineBytes: 100)
        let (echo, events) = editor.feed(bytes("a\r\nb\nc"))
        XCTAssertEqual(events, [.line(bytes("a")), .line(bytes("b"))])
        XCTAssertTrue(echo.isEmpty, "without a pty nothing is echoed")
        XCTAssertEqual(editor.feed(bytes("\n")).events, [.line(bytes("c"))])
    }

    func testBackspaceRemovesAWholeUTF8Character() {
        var editor = LineEditor(echo: true, maxLineBytes: 100)
        _ = editor.feed(bytes("aé"))
        let (echo, _) = editor.feed([0x7f])
        XCTAssertEqual(echo, [0x08, 0x20, 0x08])
        XCTAssertEqual(editor.feed(bytes("\r")).events, [.line(bytes("a"))])
    }

    func testBackspaceErasesAsManyColumnsAsTheEchoTook() {
        var editor = LineEditor(echo: true, maxLineBytes: 100)
        _ = editor.feed(bytes("a\u{6F22}"))           // 漢: two columns
        XCTAssertEqual(editor.feed([0x7f]).echo, [0x08, 0x08, 0x20, 0x20, 0x08, 0x08])
        _ = editor.feed([0x01])                          // echoed as ^A
        XCTAssertEqual(editor.feed([0x7f]).echo, [0x08, 0x08, 0x20, 0x20, 0x08, 0x08])
        _ = editor.feed(bytes("e\u{301}"))              // e + combining acute: the mark takes no column
        XCTAssertEqual(editor.feed([0x7f]).echo, [])
        XCTAssertEqual(editor.feed([0x7f]).echo, [0x08, 0x20, 0x08])
        XCTAssertEqual(editor.feed(bytes("\r")).events, [.line(bytes("a"))])
        _ = editor.feed(bytes("\u{6F22}b"))
        // Ctrl-U erases the whole echo: 2 + 1 columns.
        XCTAssertEqual(editor.feed([0x15]).echo, [0x08, 0x08, 0x08, 0x20, 0x20, 0x20, 0x08, 0x08, 0x08])
        XCTAssertEqual(LineEditor.echoColumns([0x09, 0xff, 0x41][...]), 3)
    }

    func testEscapeSequencesAreSwallowed() {
        var editor = LineEditor(echo: true, maxLineBytes: 100)
        let (echo, events) = editor.feed(bytes("ab\u{1b}[A\u{1b}[1;5Dc\r"))
        XCTAssertEqual(events, [.line(bytes("abc"))])
        XCTAssertFalse(echo.contains(0x1b), "an escape sequence is never echoed raw")
    }

    func testOtherControlCharactersReachTheLexerButAreEchoedAsCaretNotation() {
        var editor = LineEditor(echo: true, maxLineBytes: 100)
        let (echo, events) = editor.feed([0x61, 0x01, 0x0d])
        XCTAssertEqual(events, [.line([0x61, 0x01])])
        XCTAssertEqual(echo, [0x61, 0x5e, 0x41, 0x0d, 0x0a])
    }

    func testOverlongLineIsDiscardedWithoutBuffering() {
        var editor = LineEditor(echo: false, maxLineBytes: 8)
        let (_, first) = editor.feed(Array(repeating: 0x41, count: 100_000))
        XCTAssertTrue(first.isEmpty)
        let (_, events) = editor.feed(bytes("\nok\n"))
        XCTAssertEqual(events, [.tooLong, .line(bytes("ok"))])
    }

    func testInterruptAndEndOfInput() {
        var editor = LineEditor(echo: true, maxLineBytes: 100)
        XCTAssertEqual(editor.feed(bytes("abc\u{03}")).events, [.interrupt])
        XCTAssertEqual(editor.feed([0x04]).events, [.endOfInput])
        _ = editor.feed(bytes("x"))
        XCTAssertEqual(editor.feed([0x04]).events, [], "Ctrl-D ends input only on an empty line")
    }

    func testTabAsksTheCompleterOnlyWithEcho() {
        var editor = LineEditor(echo: true, maxLineBytes: 100)
        var asked: [[UInt8]] = []
        editor.completer = { typed in
            asked.append(typed)
            return typed == Array("Get-Ma".utf8) ? (Array("ilbox ".utf8), ["Get-Mailbox"]) : ([], [])
        }
        let (echo, _) = editor.feed(Array("Get-Ma\t".utf8))
        XCTAssertEqual(echo, Array("Get-Mailbox ".utf8))
        XCTAssertEqual(editor.feed(Array("x\t\r".utf8)).events, [.line(Array("Get-Mailbox x".utf8))])
        XCTAssertEqual(asked.count, 2)
        // Nothing to complete rings the bell and changes nothing.
        var quiet = LineEditor(echo: true, maxLineBytes: 100)
        quiet.completer = { _ in ([], []) }
        XCTAssertEqual(quiet.feed(Array("a\t".utf8)).echo, [0x61, 0x07])
        XCTAssertEqual(quiet.feed(Array("\t".utf8)).echo, [0x07], "a second Tab with no candidates rings again")
        // Without a pty a tab stays a space for the lexer.
        var plain = LineEditor(echo: false, maxLineBytes: 100)
        plain.completer = { _ in XCTFail("no completion without a pty"); return ([], []) }
        XCTAssertEqual(plain.feed(Array("a\tb\n".utf8)).events, [.line(Array("a\tb".utf8))])
    }

    func testSecondTabListsTheCandidatesAndKeepsTheLine() {
        var editor = LineEditor(echo: true, maxLineBytes: 100)
        editor.completer = { _ in ([], ["Get-Mailbox", "Get-MailboxStatistics"]) }
        XCTAssertEqual(editor.feed(Array("G\u{01}et\t".utf8)).echo.last, 0x07, "the first Tab only rings")
        let (echo, events) = editor.feed([0x09])
        XCTAssertEqual(events, [.showCandidates(["Get-Mailbox", "Get-MailboxStatistics"])])
        XCTAssertTrue(echo.isEmpty)
        XCTAssertEqual(editor.echoOfLine, Array("G^Aet".utf8), "redrawn as it was echoed")
        // A Tab after other input is a first Tab again.
        XCTAssertEqual(editor.feed(Array("x\t".utf8)).events, [])
        XCTAssertEqual(ShellChannel.columns(["a", "bbb", "cc"], width: 11), "a    bbb\ncc\n")
    }
}
