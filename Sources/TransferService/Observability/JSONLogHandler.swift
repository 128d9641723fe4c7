import ExactJSON
#if canImport(Glibc)
import Glibc
#endif
import Logging

/// A swift-log handler that writes one JSON object per line to standard output:
/// `{"timestamp":…,"level":…,"message":…,"label":…, …metadata}` (for `LOG_FORMAT=json`).
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let label: String

    /// A handler for loggers named `label` that passes messages at `level` and above.
    public init(label: String, level: Logger.Level) {
        self.label = label
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var object = JSONObject([
            "timestamp": .string(UnixMilliseconds.now().rfc3339),
            "level": .string(event.level.rawValue),
            "message": .string("\(event.message)"),
            "label": .string(label),
        ])
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) where object[key] == nil {
            object[key] = Self.json(value)
        }
        var line = JSONValue.object(object).serialized
        line.append("\n")
        // One write(2) per line keeps lines whole when several threads log at once.
        line.withUTF8 { bytes in
            var remaining = UnsafeRawBufferPointer(bytes)
            while !remaining.isEmpty {
                let written = write(STDOUT_FILENO, remaining.baseAddress, remaining.count)
                guard written > 0 else { return }
                remaining = UnsafeRawBufferPointer(rebasing: remaining[written...])
            }
        }
    }

    private static func json(_ value: Logger.Metadata.Value) -> JSONValue {
        switch value {
        case .string(let text): .string(text)
        case .stringConvertible(let convertible): .string(convertible.description)
        case .array(let values): .array(values.map(json))
        case .dictionary(let dictionary):
            .object(dictionary.sorted(by: { $0.key < $1.key }).reduce(into: JSONObject()) { $0[$1.key] = json($1.value) })
        }
    }
}
