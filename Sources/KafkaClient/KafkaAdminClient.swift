import CRdKafka

/// A topic to create: its name, partition count and replication factor.
public struct KafkaNewTopic: Sendable, Equatable {
    public var name: String
    public var partitions: Int
    /// Copies of each partition; -1 asks for the broker's default (Kafka 2.4 and later).
    public var replicationFactor: Int

    public init(name: String, partitions: Int, replicationFactor: Int) {
        self.name = name
        self.partitions = partitions
        self.replicationFactor = replicationFactor
    }
}

/// How a topic creation ended.
public enum KafkaTopicCreation: Sendable, Equatable {
    /// CreateTopics made it.
    case created
    /// It was there already.
    case alreadyExisted
}

/// Topic administration: which topics exist (metadata requests), and creating them (CreateTopics).
///
/// Asking about a topic never creates it (`allow.auto.create.topics=false`), so a missing topic is reported as
/// missing even by brokers that auto-create topics. Safe to share: librdkafka handles are thread-safe and the
/// handle never changes after init.
public final class KafkaAdminClient: @unchecked Sendable {
    private let handle: OpaquePointer

    /// A client for the cluster at `bootstrapServers`; `properties` (security settings, client.id...) are applied
    /// as given. It connects on first use.
    public init(bootstrapServers: String, properties: [String: String] = [:]) throws(KafkaError) {
        let conf = try makeRdKafkaConf(
            [("bootstrap.servers", bootstrapServers)] + properties.sorted { $0.key < $1.key } + [("allow.auto.create.topics", "false")]
        )
        handle = try makeRdKafkaHandle(RD_KAFKA_PRODUCER, conf: conf)
    }

    deinit {
        rd_kafka_destroy(handle)
    }

    /// The names in `topics` that the cluster does not have, asking about each (one metadata request per topic,
    /// each bounded by `timeout`). Throws when no broker answers, or when a topic cannot be described (for example
    /// `TOPIC_AUTHORIZATION_FAILED`).
    public func missingTopics(_ topics: [String], timeout: Duration) throws(KafkaError) -> [String] {
        var missing: [String] = []
        for topic in topics where try !topicExists(topic, timeout: timeout) {
            missing.append(topic)
        }
        return missing
    }

    /// Creates the topics with CreateTopics, asking the controller to answer only once they exist (within
    /// `timeout`). A topic that exists already is not an error; any other failure is thrown, naming the topic.
    public func createTopics(_ topics: [KafkaNewTopic], timeout: Duration) throws(KafkaError) -> [String: KafkaTopicCreation] {
        var errorText = [CChar](repeating: 0, count: 512)
        var newTopics: [OpaquePointer?] = []
        defer { for newTopic in newTopics { rd_kafka_NewTopic_destroy(newTopic) } }
        for topic in topics {
            guard let newTopic = rd_kafka_NewTopic_new(
                topic.name, Int32(clamping: topic.partitions), Int32(clamping: topic.replicationFactor), &errorText, errorText.count
            ) else {
                throw KafkaError(RD_KAFKA_RESP_ERR__INVALID_ARG, message: "topic \(topic.name): \(string(fromErrorBuffer: errorText))")
            }
            newTopics.append(newTopic)
        }
        let options = rd_kafka_AdminOptions_new(handle, RD_KAFKA_ADMIN_OP_CREATETOPICS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        // The operation timeout makes the controller answer only once the topics are created.
        _ = rd_kafka_AdminOptions_set_operation_timeout(options, timeout.wholeMilliseconds, &errorText, errorText.count)
        _ = rd_kafka_AdminOptions_set_request_timeout(options, timeout.wholeMilliseconds, &errorText, errorText.count)
        let queue = rd_kafka_queue_new(handle)
        defer { rd_kafka_queue_destroy(queue) }
        newTopics.withUnsafeMutableBufferPointer { buffer in
            rd_kafka_CreateTopics(handle, buffer.baseAddress, buffer.count, options, queue)
        }
        // librdkafka always posts a result, at the latest when its own request timeout passes; the margin covers
        // the broker lookup before the request is sent.
        guard let event = rd_kafka_queue_poll(queue, (timeout + .seconds(5)).wholeMilliseconds) else {
            throw KafkaError(RD_KAFKA_RESP_ERR__TIMED_OUT, message: "creating topics: no answer within \(timeout)")
        }
        defer { rd_kafka_event_destroy(event) }
        let eventError = rd_kafka_event_error(event)
        guard eventError == RD_KAFKA_RESP_ERR_NO_ERROR else {
            let text = rd_kafka_event_error_string(event).map { String(cString: $0) }
            throw KafkaError(eventError, message: "creating topics: \(text ?? String(cString: rd_kafka_err2str(eventError)))")
        }
        var outcomes: [String: KafkaTopicCreation] = [:]
        var count = 0
        guard let result = rd_kafka_event_CreateTopics_result(event),
              let results = rd_kafka_CreateTopics_result_topics(result, &count)
        else {
            throw KafkaError(RD_KAFKA_RESP_ERR__BAD_MSG, message: "creating topics: the result has no topics")
        }
        for index in 0..<count {
            guard let topicResult = results[index] else { continue }
            let name = String(cString: rd_kafka_topic_result_name(topicResult))
            let error = rd_kafka_topic_result_error(topicResult)
            switch error {
            case RD_KAFKA_RESP_ERR_NO_ERROR: outcomes[name] = .created
            case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS: outcomes[name] = .alreadyExisted
            default:
                let text = rd_kafka_topic_result_error_string(topicResult).map { String(cString: $0) }
                throw KafkaError(error, message: "creating topic \(name): \(text ?? String(cString: rd_kafka_err2str(error)))")
            }
        }
        return outcomes
    }

    /// One metadata request about `topic`: true when the cluster has it (even while its partitions still elect
    /// leaders), false when it does not.
    private func topicExists(_ topic: String, timeout: Duration) throws(KafkaError) -> Bool {
        try withTopicMetadata(handle, topic: topic, timeout: timeout) { (entry) throws(KafkaError) -> Bool in
            guard let entry else { return false }
            switch entry.err {
            case RD_KAFKA_RESP_ERR_NO_ERROR, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE: return true
            case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART: return false
            default:
                throw KafkaError(entry.err, message: "metadata of topic \(topic): \(String(cString: rd_kafka_err2str(entry.err)))")
            }
        }
    }
}

/// One metadata request about `topic` on `handle`; `body` gets the topic's entry (nil when the answer has none)
/// while the metadata is alive. Throws when no broker answers within `timeout`.
package func withTopicMetadata<Result>(
    _ handle: OpaquePointer, topic: String, timeout: Duration, _ body: (rd_kafka_metadata_topic?) throws(KafkaError) -> Result
) throws(KafkaError) -> Result {
    guard let topicHandle = rd_kafka_topic_new(handle, topic, nil) else {
        throw KafkaError(RD_KAFKA_RESP_ERR__INVALID_ARG, message: "topic \(topic): not a valid topic name")
    }
    defer { rd_kafka_topic_destroy(topicHandle) }
    var metadata: UnsafePointer<rd_kafka_metadata>?
    let err = rd_kafka_metadata(handle, 0, topicHandle, &metadata, timeout.wholeMilliseconds)
    defer { if let metadata { rd_kafka_metadata_destroy(metadata) } }
    guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
        throw KafkaError(err, message: "metadata of topic \(topic): \(String(cString: rd_kafka_err2str(err)))")
    }
    let entries = (0..<Int(metadata.pointee.topic_cnt)).map { metadata.pointee.topics[$0] }
    return try body(entries.first { String(cString: $0.topic) == topic })
}
