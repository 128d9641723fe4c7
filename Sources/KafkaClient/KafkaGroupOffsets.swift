import CRdKafka

/// One partition's progress for a consumer group: where the group will resume and where the log ends.
public struct KafkaPartitionLag: Sendable, Equatable {
    public var topic: String
    public var partition: Int32
    /// The group's committed offset (the next one it will read), or nil when it has committed none here.
    public var committedOffset: Int64?
    /// The oldest offset still in the log.
    public var lowWatermark: Int64
    /// The offset the next produced message will get.
    public var highWatermark: Int64

    public init(topic: String, partition: Int32, committedOffset: Int64?, lowWatermark: Int64, highWatermark: Int64) {
        self.topic = topic
        self.partition = partition
        self.committedOffset = committedOffset
        self.lowWatermark = lowWatermark
        self.highWatermark = highWatermark
    }

    /// Messages the group has not committed yet; without a commit, every message still in the log.
    public var lag: Int64 { max(0, highWatermark - (committedOffset ?? lowWatermark)) }
}

/// The group's committed offsets and the watermarks of every partition of `topic`, through a consumer handle of
/// that group (a member or not), in partition order; each underlying request may take up to `timeout`.
package func readGroupLag(handle: OpaquePointer, topic: String, timeout: Duration) throws(KafkaError) -> [KafkaPartitionLag] {
    let partitions = try withTopicMetadata(handle, topic: topic, timeout: timeout) { (entry) throws(KafkaError) -> [Int32] in
        guard let entry else { throw KafkaError(RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, message: "metadata of \(topic)") }
        guard entry.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError(entry.err, message: "metadata of \(topic): \(String(cString: rd_kafka_err2str(entry.err)))")
        }
        return (0..<Int(entry.partition_cnt)).map { entry.partitions[$0].id }
    }
    let list = rd_kafka_topic_partition_list_new(Int32(clamping: partitions.count))!
    defer { rd_kafka_topic_partition_list_destroy(list) }
    for partition in partitions {
        rd_kafka_topic_partition_list_add(list, topic, partition)
    }
    let err = rd_kafka_committed(handle, list, timeout.wholeMilliseconds)
    guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
        throw KafkaError(err, message: "reading committed offsets of \(topic): \(String(cString: rd_kafka_err2str(err)))")
    }
    var result: [KafkaPartitionLag] = []
    for index in 0..<Int(list.pointee.cnt) {
        let entry = list.pointee.elems[index]
        if entry.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(entry.err, message: "committed offset of \(topic)[\(entry.partition)]: \(String(cString: rd_kafka_err2str(entry.err)))")
        }
        var low: Int64 = 0
        var high: Int64 = 0
        let watermarkErr = rd_kafka_query_watermark_offsets(handle, topic, entry.partition, &low, &high, timeout.wholeMilliseconds)
        guard watermarkErr == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError(
                watermarkErr,
                message: "watermarks of \(topic)[\(entry.partition)]: \(String(cString: rd_kafka_err2str(watermarkErr)))"
            )
        }
        // librdkafka reports "no committed offset" as a negative logical offset (RD_KAFKA_OFFSET_INVALID).
        result.append(KafkaPartitionLag(
            topic: topic, partition: entry.partition, committedOffset: entry.offset >= 0 ? entry.offset : nil,
            lowWatermark: low, highWatermark: high
        ))
    }
    return result.sorted { $0.partition < $1.partition }
}
