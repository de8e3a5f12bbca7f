#if os(Linux)
import Glibc
import GatehouseCore

/// Small kernel text files under `/proc`, read whole.
enum ProcFile {
    /// The contents of `path` (at most 64 KiB, more than any file read here).
    static func read(_ path: String) throws(SandboxError) -> String {
        do throws(Errno) {
            let file = try OwnedFileDescriptor(opening: path, flags: O_RDONLY | O_CLOEXEC)
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 1)
            defer { buffer.deallocate() }
            var filled = 0
            while filled < buffer.count {
                let n = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
                if n == 0 { break }
                filled += n
            }
            return String(decoding: buffer.prefix(filled), as: UTF8.self)
        } catch {
            throw .systemCall("read \(path)", error)
        }
    }
}

extension String {
    /// Without leading and trailing spaces, tabs and newlines (no Foundation here).
    func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\n" || $0 == "\t" }
        return String(drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }
}
#endif
