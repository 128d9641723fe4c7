import CRdKafka
import KafkaClient

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
        try readGroupLag(handle: handle, topic: topic, timeout: timeout)
    }
}
