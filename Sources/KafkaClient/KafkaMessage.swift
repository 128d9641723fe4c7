import CRdKafka

/// A consumed message.
public struct KafkaMessage: Sendable {
    /// The topic it was read from.
    public var topic: String
    /// The partition it was read from.
    public var partition: Int32
    /// Its offset within the partition.
    public var offset: Int64
    /// The message key, or nil when it had none.
    public var key: [UInt8]?
    /// The payload (a null payload reads as empty).
    public var value: [UInt8]
    /// The headers, in wire order.
    public var headers: [KafkaHeader]
    /// How many revocations the consumer had seen when it polled this message (see `KafkaConsumer.storeOffset`).
    var revocationsBeforePoll: UInt64 = 0

    /// Creates a message; mainly useful in tests of code that handles messages.
    public init(topic: String, partition: Int32, offset: Int64, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader]) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
    }
}

/// Reading fields out of an rd_kafka_message_t (shared by consumed messages and delivery reports).
extension UnsafePointer<rd_kafka_message_t> {
    var topicName: String { pointee.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? "" }
    var keyBytes: [UInt8]? {
        pointee.key.map { Array(UnsafeRawBufferPointer(start: $0, count: pointee.key_len)) }
    }
    var valueBytes: [UInt8] {
        pointee.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: pointee.len)) } ?? []
    }
    /// The message's error with librdkafka's specific text, or nil when it has none.
    var error: KafkaError? {
        let err = pointee.err
        guard err != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        return KafkaError(err, message: rd_kafka_message_errstr(self).map { String(cString: $0) })
    }
}
