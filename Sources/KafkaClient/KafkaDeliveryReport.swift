/// The outcome of one produced message.
public struct KafkaDeliveryReport: Sendable {
    /// The topic the message was sent to.
    public var topic: String
    /// The partition it landed in (-1 if it never got one).
    public var partition: Int32
    /// Its offset in the partition (-1 when not delivered).
    public var offset: Int64
    /// The message key, copied from the report.
    public var key: [UInt8]?
    /// The message payload, copied from the report.
    public var value: [UInt8]
    /// Why delivery failed; nil means delivered.
    public var error: KafkaError?

    /// Creates a report; mainly useful in tests of code that handles reports.
    public init(topic: String, partition: Int32, offset: Int64, key: [UInt8]?, value: [UInt8], error: KafkaError?) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.error = error
    }
}
