import ExactJSON
import Logging

/// A swift-log handler that writes one JSON object per line, through a `BufferedLogOutput` (standard output by
/// default): `{"timestamp":…,"level":…,"message":…,"label":…, …metadata}` (for `LOG_FORMAT=json`). A critical
/// line is written at once, since the process may be about to stop.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let label: String
    private let output: BufferedLogOutput

    /// A handler for loggers named `label` that passes messages at `level` and above.
    public init(label: String, level: Logger.Level, output: BufferedLogOutput = .standardOutput) {
        self.label = label
        self.logLevel = level
        self.output = output
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
        output.append(line)
        if event.level == .critical { output.flush() }
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
