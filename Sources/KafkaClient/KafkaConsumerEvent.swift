/// Something the consumer reports besides messages. Handed to the consumer's event handler on the thread that
/// calls `poll`, while it polls (librdkafka serves rebalances, statistics and logs from inside its poll call).
public enum KafkaConsumerEvent: Sendable {
    /// The group gave this consumer these partitions (already applied when the handler runs).
    case partitionsAssigned([KafkaTopicPartition])
    /// The group took these partitions away (already applied); messages polled from them before now can no longer
    /// have their offsets stored. `lost` when they were taken without a clean handover (session timed out, fenced).
    case partitionsRevoked([KafkaTopicPartition], lost: Bool)
    /// A partition's position was reset (its offset was out of range): the messages in between were skipped.
    case offsetReset(KafkaOffsetReset)
    /// A consumer error that is not about one message (a broker connection, the group, a partition).
    case error(KafkaError)
    /// The periodic statistics (`statisticsInterval`), reduced to the assigned partitions.
    case statistics(KafkaConsumerStatistics)
    /// A log line from librdkafka itself.
    case log(KafkaLogRecord)
}

/// One partition of one topic.
public struct KafkaTopicPartition: Sendable, Hashable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32

    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    /// "topic[partition]".
    public var description: String { "\(topic)[\(partition)]" }
}

/// A jump of a partition's fetch position because the offset it asked for was not in the log (any more).
public struct KafkaOffsetReset: Sendable, Equatable {
    public var topic: String
    public var partition: Int32
    /// The offset that could not be read, when librdkafka named it.
    public var fromOffset: Int64?
    /// Where the position went, as librdkafka put it (e.g. "BEGINNING", "cached BEGINNING offset 120").
    public var resetTo: String
    /// librdkafka's whole explanation, including the broker's error.
    public var detail: String

    public init(topic: String, partition: Int32, fromOffset: Int64?, resetTo: String, detail: String) {
        self.topic = topic
        self.partition = partition
        self.fromOffset = fromOffset
        self.resetTo = resetTo
        self.detail = detail
    }
}

/// A librdkafka log line.
public struct KafkaLogRecord: Sendable, Equatable {
    /// syslog level: 0 emergency ... 3 error, 4 warning, 5 notice, 6 info, 7 debug.
    public var level: Int32
    /// librdkafka's facility, e.g. "FAIL", "COMMITFAIL", "OFFSET".
    public var facility: String
    public var message: String

    public init(level: Int32, facility: String, message: String) {
        self.level = level
        self.facility = facility
        self.message = message
    }
}

extension KafkaOffsetReset {
    /// Reads librdkafka's "OFFSET" warning, `[thrd:<name>]: <topic> [<partition>]: offset reset (at offset <n>, broker <id>) to
    /// <where>: <reason>: <error>` (2.0; later versions write "at offset <n> (leader epoch <e>)"). Nil for any
    /// other line. librdkafka reports a reset under `auto.offset.reset=earliest/latest` only as this log line.
    init?(logMessage message: String) {
        guard let marker = message.firstRange(of: ": offset reset (at ") else { return nil }
        let head = message[..<marker.lowerBound]
        guard head.hasSuffix("]"), let bracket = head.lastIndex(of: "["), bracket > head.startIndex,
              let partition = Int32(head[head.index(after: bracket)..<head.index(before: head.endIndex)])
        else { return nil }
        // The line starts with the thread ("[thrd:main]: "); topic names cannot hold ": " or spaces.
        var topic = String(head[..<bracket])
        while topic.hasSuffix(" ") { topic.removeLast() }
        if let lastSpace = topic.lastIndex(of: " ") { topic = String(topic[topic.index(after: lastSpace)...]) }
        let afterAt = message[marker.upperBound...]
        // "offset 1234, broker 1) to ..." or "offset 1234 (leader epoch 3), broker 1) to ...": the first number.
        let digits = afterAt.drop { !$0.isNumber && $0 != "-" }.prefix { $0.isNumber || $0 == "-" }
        let destination = afterAt.firstRange(of: ") to ").map { afterAt[$0.upperBound...] }
        let resetTo = destination.map { text in String(text.prefix { $0 != ":" }) } ?? "?"
        self.init(topic: topic, partition: partition, fromOffset: Int64(digits), resetTo: resetTo, detail: message)
    }
}
