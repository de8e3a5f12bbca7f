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

    // MARK: History, Ctrl-R and bracketed paste (issue 12)

    let up = Array("\u{1b}[A".utf8), down = Array("\u{1b}[B".utf8)
    let pasteStart = Array("\u{1b}[200~".utf8), pasteEnd = Array("\u{1b}[201~".utf8)

    func typed(_ editor: inout LineEditor, _ lines: [String]) {
        for line in lines { _ = editor.feed(bytes(line + "\r")) }
    }

    func testUpAndDownWalkThisSessionsHistory() {
        var editor = LineEditor(echo: true, maxLineBytes: 100)
        typed(&editor, ["Get-Mailbox alice", "Get-Command", "Get-Command", ""])
        XCTAssertEqual(editor.history, [bytes("Get-Mailbox alice"), bytes("Get-Command")],
                       "empty lines and a repeat of the last line are not kept")
        _ = editor.feed(bytes("Get-H"))
        let first = editor.feed(up)
        XCTAssertEqual(first.echo, LineEditor.erase(5) + bytes("Get-Command"), "the typed line is replaced in place")
        XCTAssertEqual(editor.feed(up).echo, LineEditor.erase(11) + bytes("Get-Mailbox alice"))
        XCTAssertEqual(editor.feed(up).echo, [0x07], "nothing older: a bell")
        _ = editor.feed(down)
        XCTAssertEqual(editor.feed(down).echo, LineEditor.erase(11) + bytes("Get-H"), "past the newest: the typed line")
        XCTAssertEqual(editor.feed(down).echo, [0x07])
        _ = editor.feed(up)
        XCTAssertEqual(editor.feed(Array("\u{1b}OA".utf8) + bytes(" -Identity x\r")).events,
                       [.line(bytes("Get-Mailbox alice -Identity x"))], "SS3 arrows too; a recalled line can be edited")
    }

    func testWithoutAPtyThereIsNoHistory() {
        var editor = LineEditor(echo: false, maxLineBytes: 100)
        typed(&editor, ["Get-Command"])
        XCTAssertEqual(editor.history, [])
        XCTAssertEqual(editor.feed(up + bytes("\r")).events, [.line([])])
    }

    func testHistoryIsBounded() {
        var editor = LineEditor(echo: true, maxLineBytes: 100)
        typed(&editor, (0...LineEditor.maxHistory).map { "Get-Command \($0)" })
        XCTAssertEqual(editor.history.count, LineEditor.maxHistory)
        XCTAssertEqual(editor.history.first, bytes("Get-Command 1"))
    }

    func testCtrlRSearchesBackwardsAndEnterRunsTheMatch() {
        var editor = LineEditor(echo: true, maxLineBytes: 100)
        typed(&editor, ["Get-Mailbox alice", "Get-Command", "Get-Mailbox bob"])
        let started = editor.feed([0x12])
        XCTAssertEqual(started.echo, bytes("(reverse-i-search)`': "))
        let found = editor.feed(bytes("Mail"))
        XCTAssertTrue(found.echo.ends(with: bytes("(reverse-i-search)`Mail': Get-Mailbox bob")), String(decoding: found.echo, as: UTF8.self))
        let older = editor.feed([0x12])
        XCTAssertTrue(older.echo.ends(with: bytes("`Mail': Get-Mailbox alice")), String(decoding: older.echo, as: UTF8.self))
        let run = editor.feed(bytes("\r"))
        XCTAssertEqual(run.events, [.line(bytes("Get-Mailbox alice"))])
        XCTAssertTrue(run.echo.ends(with: bytes("Get-Mailbox alice\r\n")))
    }

    func testCtrlGGivesTheTypedLineBackAndOtherKeysKeepTheMatch() {
        var editor = LineEditor(echo: true, maxLineBytes: 100)
        typed(&editor, ["Get-Mailbox alice"])
        _ = editor.feed(bytes("Get-C") + [0x12] + bytes("alice") + [0x07])
        XCTAssertEqual(editor.feed(bytes("ommand\r")).events, [.line(bytes("Get-Command"))])
        _ = editor.feed([0x12] + bytes("alice"))
        XCTAssertEqual(editor.feed([0x7f, 0x7f]).echo.ends(with: bytes("`ali': Get-Mailbox alice")), true)
        // A key that is not the search's keeps the match on the line, then acts.
        XCTAssertEqual(editor.feed([0x7f]).events, [])
        _ = editor.feed([0x15])  // Ctrl-U after accepting: the line empties
        XCTAssertEqual(editor.feed(bytes("x\r")).events, [.line(bytes("x"))])
        // Ctrl-C in a search drops the line.
        XCTAssertEqual(editor.feed([0x12] + bytes("alice") + [0x03]).events, [.interrupt])
    }

    func testAOneLinePasteIsInsertedNotRun() {
        var editor = LineEditor(echo: true, maxLineBytes: 100)
        let (echo, events) = editor.feed(pasteStart + bytes("Get-Mailbox alice\n") + pasteEnd)
        XCTAssertEqual(events, [], "a pasted line ending in a newline waits for Enter")
        XCTAssertEqual(echo, bytes("Get-Mailbox alice"))
        XCTAssertEqual(editor.feed(bytes("\r")).events, [.line(bytes("Get-Mailbox alice"))])
    }

    func testAPastedBlockIsShownAndRunsOnlyAfterYes() {
        var editor = LineEditor(echo: true, maxLineBytes: 100)
        let (echo, events) = editor.feed(pasteStart + bytes("Get-Command\r\nSet-Mailbox bob\rexit\n") + pasteEnd)
        XCTAssertEqual(events, [], "nothing runs unseen")
        let shown = String(decoding: echo, as: UTF8.self)
        XCTAssertTrue(shown.contains("Pasted 3 lines:\r\n  Get-Command\r\n  Set-Mailbox bob\r\n  exit\r\n"), shown)
        XCTAssertTrue(shown.hasSuffix("Run them one after another? [y/N] "), shown)
        XCTAssertEqual(editor.feed(bytes("y")).events,
                       [.line(bytes("Get-Command")), .line(bytes("Set-Mailbox bob")), .line(bytes("exit"))])
        _ = editor.feed(pasteStart + bytes("a\nb") + pasteEnd)
        let refused = editor.feed(bytes("\r"))
        XCTAssertEqual(refused.events, [.pasteDiscarded], "anything but y discards the block")
        XCTAssertEqual(editor.feed(bytes("c\r")).events, [.line(bytes("c"))], "and the editor goes on as before")
    }

    func testAPasteKeepsItsControlBytesAndIsBounded() {
        var editor = LineEditor(echo: true, maxLineBytes: 10)
        _ = editor.feed(pasteStart + bytes("a\u{1b}[2Jb") + pasteEnd)
        XCTAssertEqual(editor.feed(bytes("\r")).events, [.line(bytes("ab"))], "escape sequences in a paste are swallowed")
        let huge = editor.feed(pasteStart + Array(repeating: UInt8(ascii: "x"), count: 1000) + pasteEnd)
        XCTAssertEqual(huge.events, [.pasteDiscarded])
        XCTAssertEqual(editor.feed(bytes("ok\r")).events, [.line(bytes("ok"))])
        // An over-long line in a confirmed block is refused on its own.
        _ = editor.feed(pasteStart + bytes("short\n" + String(repeating: "y", count: 11)) + pasteEnd)
        XCTAssertEqual(editor.feed(bytes("y")).events, [.line(bytes("short")), .tooLong])
    }
}

private extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool { count >= suffix.count && self[(count - suffix.count)...].elementsEqual(suffix) }
}
