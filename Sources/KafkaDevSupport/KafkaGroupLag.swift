import CRdKafka
import KafkaClient

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

    /// Messages the group has not committed yet; without a commit, every message still in the log.
    public var lag: Int64 { max(0, highWatermark - (committedOffset ?? lowWatermark)) }
}

/// Reads a consumer group's committed offsets and the partitions' watermarks, without joining the group
/// (it never subscribes, so the group's members are not rebalanced). Use it from one thread at a time.
public final class KafkaGroupLagReader {
    private let handle: OpaquePointer

    /// A reader for `groupId`; it connects on first use.
    public init(bootstrapServers: String, groupId: String) throws(KafkaError) {
        let conf = try makeRdKafkaConf([
            ("bootstrap.servers", bootstrapServers),
            ("group.id", groupId),
            // Only looks: never commits anything on the group's behalf.
            ("enable.auto.commit", "false"),
            ("log_level", "4"),
        ])
        handle = try makeRdKafkaHandle(RD_KAFKA_CONSUMER, conf: conf)
    }

    deinit {
        _ = rd_kafka_consumer_close(handle)
        rd_kafka_destroy(handle)
    }

    /// Every partition of `topic`, in partition order; each of the underlying requests may take up to `timeout`.
    public func lag(topic: String, timeout: Duration) throws(KafkaError) -> [KafkaPartitionLag] {
        let partitions = try partitionIDs(of: topic, timeout: timeout)
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

    /// The topic's partition ids from a metadata request.
    private func partitionIDs(of topic: String, timeout: Duration) throws(KafkaError) -> [Int32] {
        try withTopicMetadata(handle, topic: topic, timeout: timeout) { (entry) throws(KafkaError) -> [Int32] in
            guard let entry else { throw KafkaError(RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, message: "metadata of \(topic)") }
            guard entry.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw KafkaError(entry.err, message: "metadata of \(topic): \(String(cString: rd_kafka_err2str(entry.err)))")
            }
            return (0..<Int(entry.partition_cnt)).map { entry.partitions[$0].id }
        }
    }
}
