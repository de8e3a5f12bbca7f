// A QR code on the operator's terminal. libqrencode does the encoding; this
// file only draws its module matrix with half-block characters, two rows of
// modules per line of text, inside a 4-module quiet zone (ISO/IEC 18004).
import CQREncode
import Foundation
import GatehouseCore

enum TerminalQR {
    enum Background {
        /// Light modules are drawn and dark ones left as the terminal's
        /// (dark) background, as `qrencode -t UTF8` does.
        case dark
        /// Dark modules are drawn on a light terminal background.
        case light
    }

    static let quietZone = 4

    /// Encodes the NUL-terminated bytes in `text` and writes the code to
    /// `fd`. The text is an enrolment URI with the secret in it, so the
    /// module matrix is wiped before it is freed, and each line of output is
    /// built in wiped storage. (libqrencode's own working buffers are freed
    /// without wiping; that is outside this code's reach.)
    static func write(_ text: borrowing SecretBytes, background: Background, to fd: Int32) throws {
        let code: UnsafeMutablePointer<QRcode>? = text.withUnsafeBytes { bytes in
            guard bytes.last == 0, let base = bytes.baseAddress else { return nil }
            return QRcode_encodeString(base.assumingMemoryBound(to: CChar.self), 0, QR_ECLEVEL_M, QR_MODE_8, 1)
        }
        guard let code else {
            throw OathUsersFileError("cannot encode the QR code: \(String(cString: strerror(errno)))")
        }
        let width = Int(code.pointee.width)
        let modules = code.pointee.data!
        defer {
            explicit_bzero(modules, width * width)
            QRcode_free(code)
        }
        // Bit 0 of each module byte is set for a dark module.
        func isDark(_ x: Int, _ y: Int) -> Bool {
            guard (0..<width).contains(x), (0..<width).contains(y) else { return false }
            return modules[y * width + x] & 1 == 1
        }
        let size = width + 2 * quietZone
        // Each cell is at most 3 UTF-8 bytes, plus the newline.
        var line = SecretBytes(capacity: 3 * size + 1)
        let full: [UInt8] = Array("\u{2588}".utf8), upper = Array("\u{2580}".utf8), lower = Array("\u{2584}".utf8)
        for row in stride(from: 0, to: size, by: 2) {
            line.removeAll()
            for column in 0..<size {
                let x = column - quietZone, y = row - quietZone
                // Drawn: light modules on a dark background, dark ones on a
                // light background. Below the last row nothing is drawn.
                let top = isDark(x, y) == (background == .light)
                let bottom = row + 1 < size && isDark(x, y + 1) == (background == .light)
                let glyph: [UInt8] = top && bottom ? full : top ? upper : bottom ? lower : [0x20]
                glyph.withUnsafeBytes { _ = line.append(contentsOf: $0) }
            }
            line.append(0x0a)
            try line.withUnsafeBytes { try writeAll($0, to: fd) }
        }
    }

    static func writeAll(_ bytes: UnsafeRawBufferPointer, to fd: Int32) throws {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw OathUsersFileError("cannot write to the terminal: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }
}
