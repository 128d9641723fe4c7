import CRdKafka

/// A group consumer. Poll it from one thread (a background DispatchQueue in the service); `close` (and the
/// other calls) may come from any thread: close waits for a running poll to return, after which calls throw _STATE.
///
/// At-least-once: offsets are committed (automatically, and on `commit`/`close`) only for messages passed to
/// `storeOffset`, so a message polled but not stored is redelivered to the group after this consumer leaves.
/// Sendable so it can move onto the polling queue: librdkafka consumer calls are thread-safe, and the gate keeps
/// close from destroying the handle under a running call.
public final class KafkaConsumer: @unchecked Sendable {
    private let handle: OpaquePointer
    private let gate = ClientGate(closedMessage: "consumer is closed")

    /// Creates the consumer; it joins the group on `subscribe`.
    public init(configuration: KafkaConsumerConfiguration) throws(KafkaError) {
        let conf = try makeRdKafkaConf(configuration.librdkafkaProperties)
        let handle = try makeRdKafkaHandle(RD_KAFKA_CONSUMER, conf: conf)
        // Route the main queue (errors, rebalances) into the consumer queue so one poll serves both.
        rd_kafka_poll_set_consumer(handle)
        self.handle = handle
    }

    deinit {
        close()
    }

    /// Subscribes to the topics (replacing any previous subscription); partitions are assigned by the group.
    public func subscribe(topics: [String]) throws(KafkaError) {
        try gate.withCall { () throws(KafkaError) in try subscribeUnguarded(topics: topics) }
    }

    private func subscribeUnguarded(topics: [String]) throws(KafkaError) {
        let list = rd_kafka_topic_partition_list_new(Int32(clamping: topics.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for topic in topics {
            rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA)
        }
        let err = rd_kafka_subscribe(handle, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(err, message: "subscribing to \(topics): \(String(cString: rd_kafka_err2str(err)))")
        }
    }

    /// The next message, or nil when none arrived within the timeout. Partition EOF is not an error (nil/skip).
    /// Other consumer errors are thrown (callers log them and keep polling).
    public func poll(timeout: Duration) throws(KafkaError) -> KafkaMessage? {
        try gate.withCall { () throws(KafkaError) in try pollUnguarded(timeout: timeout) }
    }

    /// Up to `maxMessages` messages: waits up to `timeout` for the first, then takes only what is already there.
    /// Empty when nothing arrived. An error before the first message is thrown; one after it only ends the batch
    /// early (consumer errors are reports about the connection, not about messages, so none is lost).
    public func poll(maxMessages: Int, timeout: Duration) throws(KafkaError) -> [KafkaMessage] {
        try gate.withCall { () throws(KafkaError) in
            guard let first = try pollUnguarded(timeout: timeout) else { return [] }
            var batch = [first]
            while batch.count < maxMessages, let next = try? pollUnguarded(timeout: .zero) {
                batch.append(next)
            }
            return batch
        }
    }

    private func pollUnguarded(timeout: Duration) throws(KafkaError) -> KafkaMessage? {
        guard let polled = rd_kafka_consumer_poll(handle, timeout.wholeMilliseconds) else { return nil }
        defer { rd_kafka_message_destroy(polled) }
        let message = UnsafePointer(polled)
        if let error = message.error {
            if error.code == RD_KAFKA_RESP_ERR__PARTITION_EOF.rawValue { return nil }
            throw error
        }
        return KafkaMessage(
            topic: message.topicName,
            partition: message.pointee.partition,
            offset: message.pointee.offset,
            key: message.keyBytes,
            value: message.valueBytes,
            headers: KafkaHeader.copyAll(from: message)
        )
    }

    /// Marks the message processed: stores offset+1 for the next (auto or sync) commit.
    /// Throws (_STATE) if its partition is no longer assigned to this consumer, e.g. after a rebalance:
    /// then the message will be redelivered to its new owner.
    public func storeOffset(of message: KafkaMessage) throws(KafkaError) {
        try gate.withCall { () throws(KafkaError) in try storeOffsetUnguarded(of: message) }
    }

    private func storeOffsetUnguarded(of message: KafkaMessage) throws(KafkaError) {
        let list = rd_kafka_topic_partition_list_new(1)!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let entry = rd_kafka_topic_partition_list_add(list, message.topic, message.partition)!
        // Kafka's committed offset is the next one to read, hence + 1.
        entry.pointee.offset = message.offset + 1
        let err = rd_kafka_offsets_store(handle, list)
        // The call reports success if any entry was stored; with one entry its own error is the one that counts.
        let entryErr = entry.pointee.err
        let failure = err != RD_KAFKA_RESP_ERR_NO_ERROR ? err : entryErr
        if failure != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(
                failure,
                message: "storing offset \(message.offset + 1) for \(message.topic)[\(message.partition)]: "
                    + String(cString: rd_kafka_err2str(failure))
            )
        }
    }

    /// Commits the stored offsets synchronously. Having nothing new to commit is not an error.
    public func commit() throws(KafkaError) {
        try gate.withCall { () throws(KafkaError) in
            let err = rd_kafka_commit(handle, nil, 0)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET {
                throw KafkaError(err)
            }
        }
    }

    /// Commits, leaves the group (rd_kafka_consumer_close) and destroys the handle. Idempotent.
    /// Commit errors are dropped here (close cannot throw); call `commit()` first to see them.
    public func close() {
        guard gate.closeAndWaitForCalls() else { return }
        _ = rd_kafka_commit(handle, nil, 0)
        _ = rd_kafka_consumer_close(handle)
        rd_kafka_destroy(handle)
    }
}
