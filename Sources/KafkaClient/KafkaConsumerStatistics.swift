import ExactJSON

/// What one of librdkafka's periodic statistics says about the consumer's partitions.
public struct KafkaConsumerStatistics: Sendable, Equatable {
    /// The partitions it reports on, in topic and partition order.
    public var partitions: [KafkaPartitionStatistics]

    public init(partitions: [KafkaPartitionStatistics]) {
        self.partitions = partitions
    }
}

/// One partition's figures from librdkafka's statistics.
public struct KafkaPartitionStatistics: Sendable, Equatable {
    public var topic: String
    public var partition: Int32
    /// Messages after this consumer's position: the end of the log (high watermark) minus the offset stored for
    /// commit, or minus the group's committed offset while nothing is stored yet. Nil while unknown (no watermark
    /// fetched yet, or no offset at all).
    public var lag: Int64?
    /// The end of the log as last seen by the fetcher, nil while unknown.
    public var highWatermark: Int64?
    /// The group's committed offset, nil when there is none.
    public var committedOffset: Int64?

    public init(topic: String, partition: Int32, lag: Int64?, highWatermark: Int64?, committedOffset: Int64?) {
        self.topic = topic
        self.partition = partition
        self.lag = lag
        self.highWatermark = highWatermark
        self.committedOffset = committedOffset
    }
}

extension KafkaConsumerStatistics {
    /// Reads librdkafka's statistics JSON (`topics.<topic>.partitions.<id>`: `consumer_lag`,
    /// `consumer_lag_stored`, `hi_offset`, `committed_offset`, where -1 and below mean unknown), keeping only the
    /// partitions in `partitions` (the internal "-1" partition is never one of them).
    init(json: UnsafeRawBufferPointer, only partitions: Set<KafkaTopicPartition>) throws(JSONParseError) {
        self.init(partitions: [])
        guard !partitions.isEmpty else { return }
        guard case .object(let root) = try JSONValue.parse(json), case .object(let topics)? = root["topics"] else { return }
        for (topicName, topicValue) in topics.members {
            guard case .object(let topic) = topicValue, case .object(let partitionsByID)? = topic["partitions"] else { continue }
            for (idText, partitionValue) in partitionsByID.members {
                guard let id = Int32(idText), partitions.contains(KafkaTopicPartition(topic: topicName, partition: id)),
                      case .object(let figures) = partitionValue
                else { continue }
                func known(_ name: String) -> Int64? {
                    guard case .number(let text)? = figures[name], let value = Int64(text), value >= 0 else { return nil }
                    return value
                }
                self.partitions.append(KafkaPartitionStatistics(
                    topic: topicName, partition: id, lag: known("consumer_lag_stored") ?? known("consumer_lag"),
                    highWatermark: known("hi_offset"), committedOffset: known("committed_offset")
                ))
            }
        }
        self.partitions.sort { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
    }
}
