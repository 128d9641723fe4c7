import CRdKafka

/// Producer settings; each maps to a librdkafka property.
public struct KafkaProducerConfiguration: Sendable {
    /// Comma-separated host:port list (bootstrap.servers).
    public var bootstrapServers: String
    /// enable.idempotence: no duplicates or reordering on retries. acks=all is always set either way.
    public var idempotent: Bool = true
    /// linger.ms: how long to wait for more messages to fill a batch.
    public var lingerMs: Int = 5
    /// message.timeout.ms: a message not delivered by then gets a failed delivery report.
    public var deliveryTimeout: Duration = .seconds(30)
    /// allow.auto.create.topics: whether asking for an unknown topic's metadata may make the cluster create it
    /// (with the cluster's defaults), as librdkafka's producer does unless told otherwise.
    public var createsMissingTopics = true
    /// Any other librdkafka property, applied last (so it can override the fields above).
    public var properties: [String: String] = [:]

    /// Settings with defaults for everything but the brokers.
    public init(bootstrapServers: String) {
        self.bootstrapServers = bootstrapServers
    }

    /// The librdkafka properties, in the order they are applied.
    var librdkafkaProperties: [(String, String)] {
        [
            ("bootstrap.servers", bootstrapServers),
            ("enable.idempotence", idempotent ? "true" : "false"),
            ("acks", "all"),
            ("linger.ms", String(lingerMs)),
            ("message.timeout.ms", String(deliveryTimeout.wholeMilliseconds)),
            ("allow.auto.create.topics", createsMissingTopics ? "true" : "false"),
        ] + properties.sorted { $0.key < $1.key }
    }
}

/// Consumer settings.
public struct KafkaConsumerConfiguration: Sendable {
    /// Comma-separated host:port list (bootstrap.servers).
    public var bootstrapServers: String
    /// The consumer group (group.id); members share partitions and committed offsets.
    public var groupId: String
    /// auto.offset.reset: where to start when the group has no committed offset ("earliest" or "latest").
    public var autoOffsetReset: String = "earliest"
    /// statistics.interval.ms: how often `.statistics` events (per-partition lag) are reported; nil for never.
    public var statisticsInterval: Duration?
    /// Any other librdkafka property, applied last (except the two offset settings, which are fixed).
    public var properties: [String: String] = [:]

    /// Settings with defaults for everything but the brokers and group.
    public init(bootstrapServers: String, groupId: String) {
        self.bootstrapServers = bootstrapServers
        self.groupId = groupId
    }

    /// The librdkafka properties, in the order they are applied.
    var librdkafkaProperties: [(String, String)] {
        [
            ("bootstrap.servers", bootstrapServers),
            ("group.id", groupId),
            ("auto.offset.reset", autoOffsetReset),
            ("statistics.interval.ms", String(statisticsInterval?.wholeMilliseconds ?? 0)),
        ] + properties.sorted { $0.key < $1.key } + [
            // At-least-once: only offsets the application stored after processing get (auto-)committed.
            // Applied after `properties` because KafkaConsumer's storeOffset/commit rely on them.
            ("enable.auto.offset.store", "false"),
            ("enable.auto.commit", "true"),
        ]
    }
}

extension Duration {
    /// The duration in whole milliseconds, clamped to Int32 (librdkafka timeouts are C ints).
    package var wholeMilliseconds: Int32 {
        let (seconds, attoseconds) = components
        let milliseconds = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return Int32(clamping: max(0, milliseconds))
    }
}

/// Builds an rd_kafka_conf_t from key/value pairs; the caller owns the result.
package func makeRdKafkaConf(_ properties: [(String, String)]) throws(KafkaError) -> OpaquePointer {
    let conf = rd_kafka_conf_new()!
    var errorText = [CChar](repeating: 0, count: 512)
    for (name, value) in properties {
        let result = rd_kafka_conf_set(conf, name, value, &errorText, errorText.count)
        if result != RD_KAFKA_CONF_OK {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(
                RD_KAFKA_RESP_ERR__INVALID_ARG,
                // Never a secret's value, not even as librdkafka quotes it.
                message: "configuration property \(name)=\(KafkaProperty.displayValue(name: name, value: value)): "
                    + KafkaProperty.redacting(string(fromErrorBuffer: errorText), name: name, value: value)
            )
        }
    }
    return conf
}

/// Creates a client handle; takes ownership of `conf` (librdkafka frees it on success, this frees it on failure).
package func makeRdKafkaHandle(_ type: rd_kafka_type_t, conf: OpaquePointer) throws(KafkaError) -> OpaquePointer {
    var errorText = [CChar](repeating: 0, count: 512)
    guard let handle = rd_kafka_new(type, conf, &errorText, errorText.count) else {
        rd_kafka_conf_destroy(conf)
        throw KafkaError(RD_KAFKA_RESP_ERR__INVALID_ARG, message: "creating client: \(string(fromErrorBuffer: errorText))")
    }
    return handle
}

/// Reads the NUL-terminated text librdkafka wrote into an error buffer.
package func string(fromErrorBuffer buffer: [CChar]) -> String {
    buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}
