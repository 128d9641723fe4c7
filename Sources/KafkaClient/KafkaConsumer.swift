import CRdKafka
import Dispatch
import Synchronization

/// A group consumer. Poll it from one thread (a background DispatchQueue in the service); `close` (and the
/// other calls) may come from any thread: close waits for a running poll to return, after which calls throw _STATE.
///
/// At-least-once: offsets are committed (automatically, and on `commit`/`close`) only for messages passed to
/// `storeOffset`, so a message polled but not stored is redelivered to the group after this consumer leaves.
/// Rebalances are applied by the consumer itself (eager or cooperative, whichever `partition.assignment.strategy`
/// brings) and reported as events; a revoked partition's stored offsets are committed as it goes.
/// Sendable so it can move onto the polling queue: librdkafka consumer calls are thread-safe, and the gate keeps
/// close from destroying the handle under a running call.
public final class KafkaConsumer: @unchecked Sendable {
    private let handle: OpaquePointer
    private let gate = ClientGate(closedMessage: "consumer is closed")
    private let context: ConsumerContext
    private let contextOpaque: UnsafeMutableRawPointer

    /// Creates the consumer; it joins the group on `subscribe`. `onEvent` gets assignments, revocations, offset
    /// resets, errors met by `poll(maxMessages:timeout:)`, statistics and librdkafka's log lines, on the polling
    /// thread, during `poll` (and `close`); keep it short. Without it librdkafka logs to stderr and those errors
    /// are dropped.
    public init(
        configuration: KafkaConsumerConfiguration, onEvent: (@Sendable (KafkaConsumerEvent) -> Void)? = nil
    ) throws(KafkaError) {
        var properties = configuration.librdkafkaProperties
        if onEvent != nil {
            // Log lines wait on a queue served by poll (on our thread) instead of arriving on librdkafka's threads.
            properties.append(("log.queue", "true"))
        }
        let conf = try makeRdKafkaConf(properties)
        let context = ConsumerContext(onEvent: onEvent)
        let opaque = context.install(on: conf)
        let handle: OpaquePointer
        do {
            handle = try makeRdKafkaHandle(RD_KAFKA_CONSUMER, conf: conf)
        } catch {
            ConsumerContext.release(opaque)
            throw error
        }
        // Route the main queue (errors, rebalances, statistics, logs) into the consumer queue so one poll serves all.
        rd_kafka_poll_set_consumer(handle)
        if onEvent != nil { _ = rd_kafka_set_log_queue(handle, nil) }
        self.handle = handle
        self.context = context
        contextOpaque = opaque
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

    /// The member id the group coordinator gave this consumer; nil until its first join has been answered. A
    /// consumer closed without one cannot leave the group: the coordinator keeps it (and any partitions it hands
    /// it) until its session times out.
    public var memberID: String? {
        guard let id = try? gate.withCall({ rd_kafka_memberid(handle) }) ?? nil else { return nil }
        defer { rd_kafka_mem_free(handle, id) }
        let text = String(cString: id)
        return text.isEmpty ? nil : text
    }

    /// The group's committed offsets and the watermarks of every partition of `topic`, whoever owns them (each of
    /// the underlying requests may take up to `timeout`). Safe to call from another thread than the polling one.
    public func groupLag(topic: String, timeout: Duration) throws(KafkaError) -> [KafkaPartitionLag] {
        try gate.withCall { () throws(KafkaError) in try readGroupLag(handle: handle, topic: topic, timeout: timeout) }
    }

    /// The partitions currently assigned to this consumer.
    public var assignedPartitions: Set<KafkaTopicPartition> {
        context.assignedPartitions
    }

    /// The next message, or nil when none arrived within the timeout. Partition EOF is not an error (nil/skip).
    /// Other consumer errors are thrown (callers log them and keep polling).
    public func poll(timeout: Duration) throws(KafkaError) -> KafkaMessage? {
        try gate.withCall { () throws(KafkaError) in try pollUnguarded(timeout: timeout) }
    }

    /// Up to `maxMessages` messages: waits up to `timeout` for the first, then takes only what is already there.
    /// Empty when nothing arrived. Consumer errors met meanwhile do not end the batch: they go to the event handler
    /// (offset resets as `.offsetReset`); only a closed consumer throws.
    public func poll(maxMessages: Int, timeout: Duration) throws(KafkaError) -> [KafkaMessage] {
        try gate.withCall { () throws(KafkaError) in
            var batch: [KafkaMessage] = []
            var wait = timeout
            while batch.count < maxMessages {
                do throws(KafkaError) {
                    guard let next = try pollUnguarded(timeout: wait) else { break }
                    batch.append(next)
                    wait = .zero
                } catch {
                    context.report(Self.event(for: error))
                    if !batch.isEmpty { wait = .zero } else { break }
                }
            }
            return batch
        }
    }

    /// A consumer error as the event it stands for: `_AUTO_OFFSET_RESET` (auto.offset.reset=error) is a reset.
    private static func event(for error: KafkaError) -> KafkaConsumerEvent {
        if error.code == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET.rawValue, let partition = error.topicPartition {
            return .offsetReset(KafkaOffsetReset(
                topic: partition.topic, partition: partition.partition, fromOffset: error.offset, resetTo: "none (auto.offset.reset=error)",
                detail: error.message
            ))
        }
        return .error(error)
    }

    private func pollUnguarded(timeout: Duration) throws(KafkaError) -> KafkaMessage? {
        guard let polled = rd_kafka_consumer_poll(handle, timeout.wholeMilliseconds) else { return nil }
        defer { rd_kafka_message_destroy(polled) }
        let message = UnsafePointer(polled)
        if var error = message.error {
            if error.code == RD_KAFKA_RESP_ERR__PARTITION_EOF.rawValue { return nil }
            if message.pointee.rkt != nil {
                error.topicPartition = KafkaTopicPartition(topic: message.topicName, partition: message.pointee.partition)
                error.offset = message.pointee.offset >= 0 ? message.pointee.offset : nil
            }
            throw error
        }
        var consumed = KafkaMessage(
            topic: message.topicName,
            partition: message.pointee.partition,
            offset: message.pointee.offset,
            key: message.keyBytes,
            value: message.valueBytes,
            headers: KafkaHeader.copyAll(from: message)
        )
        consumed.revocationsBeforePoll = context.revocationCount
        return consumed
    }

    /// False when the message's partition was revoked after it was polled (even if it came back since): its offset
    /// can no longer be stored, and the group redelivers it to the partition's owner.
    public func isStillAssigned(_ message: KafkaMessage) -> Bool {
        !context.wasRevoked(KafkaTopicPartition(topic: message.topic, partition: message.partition), after: message.revocationsBeforePoll)
    }

    /// Marks the message processed: stores offset+1 for the next (auto or sync) commit.
    /// Throws (_STATE) if its partition was revoked after the message was polled, e.g. by a rebalance: then the
    /// message will be redelivered to the partition's owner, and storing it could move a reassigned partition's
    /// position past messages fetched again since.
    public func storeOffset(of message: KafkaMessage) throws(KafkaError) {
        guard isStillAssigned(message) else {
            throw KafkaError(
                RD_KAFKA_RESP_ERR__STATE,
                message: "not storing offset \(message.offset + 1) for \(message.topic)[\(message.partition)]: "
                    + "the partition was revoked after the message was polled"
            )
        }
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

    /// How `close(timeout:)` ended.
    public enum CloseOutcome: Sendable {
        /// Committed (or had nothing new to commit), left the group, destroyed the handle.
        case closed
        /// Left the group and destroyed the handle, but the final commit failed: those messages are redelivered.
        case closedWithoutCommit(KafkaError)
        /// Not finished within the timeout (no group coordinator answered); the close goes on in the background
        /// and ends when a coordinator answers or the process exits.
        case timedOut
    }

    /// `commit()` then `close()`, waiting at most `timeout` for them: both wait for the group coordinator without a
    /// limit of their own, so with every broker unreachable they would hold up a shutdown indefinitely.
    public func close(timeout: Duration) -> CloseOutcome {
        let result = CloseResult()
        DispatchQueue(label: "kafka-consumer-close").async { [self] in
            do throws(KafkaError) {
                try commit()
            } catch {
                result.outcome.withLock { $0 = .closedWithoutCommit(error) }
            }
            close()
            result.finished.signal()
        }
        let (seconds, attoseconds) = timeout.components
        let deadline = DispatchTime.now() + .nanoseconds(Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000))
        guard result.finished.wait(timeout: deadline) == .success else { return .timedOut }
        return result.outcome.withLock { $0 }
    }

    /// Commits, leaves the group (rd_kafka_consumer_close) and destroys the handle. Idempotent.
    /// Commit errors are dropped here (close cannot throw); call `commit()` first to see them.
    public func close() {
        guard gate.closeAndWaitForCalls() else { return }
        _ = rd_kafka_commit(handle, nil, 0)
        _ = rd_kafka_consumer_close(handle)
        rd_kafka_destroy(handle)
        ConsumerContext.release(contextOpaque)
    }
}

/// What the background close of `KafkaConsumer.close(timeout:)` hands back.
private final class CloseResult: Sendable {
    let outcome = Mutex<KafkaConsumer.CloseOutcome>(.closed)
    let finished = DispatchSemaphore(value: 0)
}
