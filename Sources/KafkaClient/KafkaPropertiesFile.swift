import CRdKafka

/// librdkafka properties read from a properties file, as managed Kafka services hand them out
/// (`security.protocol=SASL_SSL`, `sasl.username=...`).
///
/// The format is the common part of Java's `.properties`: one `name=value` or `name: value` per line; blank lines
/// and lines whose first non-blank character is `#` or `!` are comments; blanks around the name and the value are
/// dropped. Refused, with the line named: a line without a separator, a trailing backslash (Java's line
/// continuation), a name given twice, and any property librdkafka itself does not accept (each is set on a scratch
/// `rd_kafka_conf_t`, so unknown names and invalid values are found when the file is read, not when a client starts).
public struct KafkaPropertiesFile: Sendable, Equatable {
    /// One property and the line it came from.
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var value: String
        /// 1-based line number in the file.
        public var line: Int
    }

    /// Where the file was read from (for messages).
    public var path: String
    /// The properties in file order.
    public var entries: [Entry]

    /// Parses `text` (the contents of the file at `path`) and checks every property with librdkafka.
    public init(path: String, text: String) throws(KafkaPropertiesError) {
        self.path = path
        entries = []
        var firstLine: [String: Int] = [:]
        for (index, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let lineNumber = index + 1
            let trimmed = trimmingBlanks(rawLine)
            guard let first = trimmed.first, first != "#", first != "!" else { continue }
            guard let separator = trimmed.firstIndex(where: { $0 == "=" || $0 == ":" }) else {
                throw KafkaPropertiesError(path: path, line: lineNumber, property: nil, reason: "is not name=value")
            }
            let name = String(trimmingBlanks(trimmed[..<separator]))
            let value = String(trimmingBlanks(trimmed[trimmed.index(after: separator)...]))
            guard !name.isEmpty else {
                throw KafkaPropertiesError(path: path, line: lineNumber, property: nil, reason: "has no property name")
            }
            guard !value.hasSuffix("\\") else {
                throw KafkaPropertiesError(
                    path: path, line: lineNumber, property: name, reason: "ends in a backslash; continued lines are not supported"
                )
            }
            if let earlier = firstLine[name] {
                throw KafkaPropertiesError(path: path, line: lineNumber, property: name, reason: "is already set on line \(earlier)")
            }
            firstLine[name] = lineNumber
            entries.append(Entry(name: name, value: value, line: lineNumber))
        }
        try Self.checkWithLibrdkafka(entries, path: path)
    }

    /// The properties by name.
    public var properties: [String: String] {
        Dictionary(uniqueKeysWithValues: entries.map { ($0.name, $0.value) })
    }

    /// `name=value, ...` in file order, secret values replaced (see `KafkaProperty.isSecret`): for log lines.
    public var redactedDescription: String {
        entries.map { "\($0.name)=\(KafkaProperty.displayValue(name: $0.name, value: $0.value))" }.joined(separator: ", ")
    }

    /// Sets each property on a scratch configuration, as a client would, and reports the first one refused.
    private static func checkWithLibrdkafka(_ entries: [Entry], path: String) throws(KafkaPropertiesError) {
        guard let conf = rd_kafka_conf_new() else { return }
        defer { rd_kafka_conf_destroy(conf) }
        var errorText = [CChar](repeating: 0, count: 512)
        for entry in entries {
            let result = rd_kafka_conf_set(conf, entry.name, entry.value, &errorText, errorText.count)
            switch result {
            case RD_KAFKA_CONF_OK:
                continue
            case RD_KAFKA_CONF_UNKNOWN:
                throw KafkaPropertiesError(path: path, line: entry.line, property: entry.name, reason: "is not a librdkafka property")
            default:
                let detail = KafkaProperty.redacting(string(fromErrorBuffer: errorText), name: entry.name, value: entry.value)
                throw KafkaPropertiesError(path: path, line: entry.line, property: entry.name, reason: "is refused by librdkafka: \(detail)")
            }
        }
    }
}

/// A properties file that cannot be used: the file, the line and (where there is one) the property.
public struct KafkaPropertiesError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    /// 1-based line number.
    public var line: Int
    /// The property's name, when the line has one.
    public var property: String?
    /// What is wrong, never containing a secret value.
    public var reason: String

    public var description: String {
        "\(path) line \(line): " + (property.map { "\($0) " } ?? "") + reason
    }
}

/// Rules for showing librdkafka properties.
public enum KafkaProperty {
    /// What is shown instead of a secret value.
    public static let redactedValue = "[redacted]"

    /// True for properties whose value is never shown: names containing `password`, `secret` or `key`
    /// (`sasl.password`, `sasl.oauthbearer.client.secret`, `ssl.key.pem`, ...).
    public static func isSecret(_ name: String) -> Bool {
        let lowered = name.lowercased()
        return ["password", "secret", "key"].contains { lowered.contains($0) }
    }

    /// The value as it may appear in logs and messages.
    public static func displayValue(name: String, value: String) -> String {
        isSecret(name) ? redactedValue : value
    }

    /// `text` (librdkafka's error text, which may quote the value) with a secret property's value replaced.
    public static func redacting(_ text: String, name: String, value: String) -> String {
        guard isSecret(name), !value.isEmpty else { return text }
        return text.replacingAll(value, with: redactedValue)
    }
}

/// `text` without leading and trailing spaces, tabs and carriage returns.
private func trimmingBlanks(_ text: Substring) -> Substring {
    let isBlank = { (character: Character) in character == " " || character == "\t" || character == "\r" }
    guard let first = text.firstIndex(where: { !isBlank($0) }), let last = text.lastIndex(where: { !isBlank($0) }) else {
        return text[text.endIndex...]
    }
    return text[first...last]
}

extension String {
    /// Every occurrence of `target` replaced by `replacement` (without Foundation).
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var result = ""
        var rest = self[...]
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}
