import Foundation

/// Reads an asciicast v2 file written by `AsciicastWriter` (or any v2 file):
/// the header, the events, and whether the session ended cleanly or was cut
/// off (no end marker: the daemon died; a partial last line is dropped).
public struct AsciicastReader: Sendable {
    /// One event: seconds since start, type (`o`, `i`, `m`, `r`) and data.
    public struct Event: Sendable, Equatable {
        public let time: Double
        public let type: String
        public let data: String
    }

    public let header: [String: JSONValue]
    public let events: [Event]
    /// The reason in the end marker, or `nil` when the transcript was cut off.
    public let endReason: String?
    /// Lines that could not be read (a partial last line after a crash).
    public let unreadableLines: Int

    public var cutOff: Bool { endReason == nil }
    public var gatehouse: [String: JSONValue] { header["gatehouse"]?.object ?? [:] }
    public var duration: Double { events.last?.time ?? 0 }

    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AuditLogError.notFound("transcript \(path)")
        }
        try self.init(bytes: [UInt8](data), path: path)
    }

    public init(bytes: [UInt8], path: String = "transcript") throws {
        let lines = bytes.split(separator: 0x0a, omittingEmptySubsequences: true)
        guard let first = lines.first, case .object(let header)? = try? JSONValue.parse(first),
              header["version"]?.int == 2 else {
            throw AuditLogError.malformed(path: path, line: 1, reason: "not an asciicast v2 header")
        }
        self.header = header
        var events: [Event] = []
        var unreadable = 0
        var endReason: String?
        for line in lines.dropFirst() {
            guard let parsed = try? JSONSerialization.jsonObject(with: Data(line)) as? [Any], parsed.count == 3,
                  let time = (parsed[0] as? NSNumber)?.doubleValue, let type = parsed[1] as? String,
                  let data = parsed[2] as? String else {
                unreadable += 1
                continue
            }
            events.append(Event(time: time, type: type, data: data))
            if type == "m" && data.hasPrefix(AsciicastWriter.endMarkerPrefix) {
                endReason = String(data.dropFirst(AsciicastWriter.endMarkerPrefix.count))
                    .trimmingCharacters(in: CharacterSet(charactersIn: " ()"))
            }
        }
        self.events = events
        self.endReason = endReason
        unreadableLines = unreadable
    }
}
