@testable import TransferService
import FoundationEssentials
import Logging
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The hand-written timestamp and log-line formatting (written for speed) says exactly what the library code it
/// replaced said.
@Suite struct TimestampTextTests {
    /// Milliseconds to check: day, month and year boundaries, leap days, and a spread of times up to 2200.
    static let instants: [Int64] = {
        var instants: [Int64] = [0, 1, 999, 1000, 86_399_999, 86_400_000, 951_782_400_000, 951_868_799_999, 4_107_542_400_000]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 { instants.append(Int64.random(in: 0...7_258_118_400_000, using: &generator)) }
        return instants
    }()

    @Test func rfc3339IsWhatFoundationsISO8601FormatWritesForTheSameMillisecond() {
        let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)
        for milliseconds in Self.instants {
            // Foundation truncates the binary fraction of the seconds, so an exact `.999` can come out `.998`;
            // half a millisecond more avoids that and still names the same millisecond.
            let expected = Date(timeIntervalSince1970: (Double(milliseconds) + 0.5) / 1000).formatted(style)
            #expect(UnixMilliseconds(milliseconds).rfc3339 == expected, "at \(milliseconds) ms")
            #expect(UnixMilliseconds(rfc3339: UnixMilliseconds(milliseconds).rfc3339)?.value == milliseconds)
        }
    }

    @Test func localTimestampIsWhatStrftimeWritesInTheLocalZone() {
        for milliseconds in Self.instants {
            let seconds = Int(milliseconds / 1000)
            var time = time_t(seconds)
            var broken = tm()
            _ = localtime_r(&time, &broken)
            var buffer = [CChar](repeating: 0, count: 64)
            let length = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &broken)
            var written = ""
            LocalTimestamp.append(seconds, to: &written)
            #expect(written == String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self), "at \(seconds) s")
        }
    }

    /// Collects what a `StreamLogHandler` writes.
    final class CapturedText: TextOutputStream, @unchecked Sendable {
        var text = ""
        func write(_ string: String) { text += string }
    }

    struct CapturingStream: TextOutputStream, Sendable {
        let target: CapturedText
        func write(_ string: String) { target.write(string) }
    }

    @Test func textLinesAreWhatSwiftLogsStreamLogHandlerWrites() {
        struct Failure: Error, CustomStringConvertible {
            var description: String { "Redis is unavailable" }
        }
        let events = [
            LogEvent(level: .info, message: "transfer initiated", metadata: ["transfer_id": "6b0f5c1e-2f0c-4e8a-9d55-0c2b6a1f3e77"],
                     source: "TransferService", file: #fileID, function: #function, line: #line),
            LogEvent(level: .warning, message: "cannot apply events yet; retrying", metadata: ["events": "3", "error": "x y", "retry_in": "50 ms"],
                     source: "TransferService", file: #fileID, function: #function, line: #line),
            LogEvent(level: .notice, message: "no metadata at all", metadata: nil, source: "S", file: #fileID, function: #function, line: #line),
            LogEvent(level: .error, message: "nested", metadata: ["list": ["a", "b"], "map": ["k": "v"], "number": .stringConvertible(42)],
                     source: "S", file: #fileID, function: #function, line: #line),
            LogEvent(level: .critical, message: "with an error", error: Failure(), metadata: ["a": "1"], source: "S", file: #fileID,
                     function: #function, line: #line),
        ]
        for label in ["transfer-service", ""] {
            for base: Logger.Metadata in [[:], ["instance": "one", "zzz": "last"]] {
                var ours = BufferedTextLogHandler(label: label, level: .trace, output: BufferedLogOutput(descriptor: -1))
                let captured = CapturedText()
                var theirs = StreamLogHandler(label: label, stream: CapturingStream(target: captured), metadataProvider: nil)
                for (key, value) in base {
                    ours[metadataKey: key] = value
                    theirs[metadataKey: key] = value
                }
                for event in events {
                    // Retried when the second changes between the two lines.
                    for _ in 0..<3 {
                        captured.text = ""
                        let before = time(nil)
                        theirs.log(event: event)
                        let line = ours.line(for: event, at: before)
                        guard time(nil) == before else { continue }
                        #expect(line == captured.text)
                        break
                    }
                }
            }
        }
    }
}
