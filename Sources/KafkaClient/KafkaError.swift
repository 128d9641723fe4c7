import CRdKafka

/// Why a Kafka call failed (wraps rd_kafka_resp_err_t).
public struct KafkaError: Error, Sendable, CustomStringConvertible {
    /// The librdkafka error code (rd_kafka_resp_err_t); negative codes are client-side, positive ones come from the broker.
    public var code: Int32
    /// librdkafka's symbolic name for the code, e.g. "_MSG_TIMED_OUT" or "NOT_LEADER_FOR_PARTITION".
    public var name: String
    /// A human-readable explanation, as specific as librdkafka made it.
    public var message: String
    /// True when the client instance is unusable and must be recreated.
    public var isFatal: Bool
    /// True when repeating the same operation later may succeed.
    public var isRetriable: Bool
    /// The partition a consumer error is about, when it is about one.
    public var topicPartition: KafkaTopicPartition?
    /// The offset a consumer error is about (e.g. the one that could not be read), when it names one.
    public var offset: Int64?

    /// Creates an error from its parts.
    public init(code: Int32, name: String, message: String, isFatal: Bool = false, isRetriable: Bool = false) {
        self.code = code
        self.name = name
        self.message = message
        self.isFatal = isFatal
        self.isRetriable = isRetriable
    }

    /// "name (code): message", e.g. "_MSG_TIMED_OUT (-192): Local: Message timed out".
    public var description: String {
        "\(name) (\(code)): \(message)" + (topicPartition.map { " at \($0)" } ?? "") + (offset.map { " offset \($0)" } ?? "")
            + (isFatal ? " [fatal]" : "")
    }
}

extension KafkaError {
    /// An error for a bare response code; `message` defaults to librdkafka's generic text for the code.
    package init(_ err: rd_kafka_resp_err_t, message: String? = nil, isFatal: Bool = false) {
        self.init(
            code: err.rawValue,
            name: String(cString: rd_kafka_err2name(err)),
            message: message ?? String(cString: rd_kafka_err2str(err)),
            isFatal: isFatal || err == RD_KAFKA_RESP_ERR__FATAL,
            isRetriable: Self.retriableCodes.contains(err.rawValue)
        )
    }

    /// Converts and destroys an rd_kafka_error_t (which carries its own fatal/retriable flags).
    init(consuming error: OpaquePointer) {
        defer { rd_kafka_error_destroy(error) }
        self.init(
            code: rd_kafka_error_code(error).rawValue,
            name: String(cString: rd_kafka_error_name(error)),
            message: String(cString: rd_kafka_error_string(error)),
            isFatal: rd_kafka_error_is_fatal(error) != 0,
            isRetriable: rd_kafka_error_is_retriable(error) != 0
                || Self.retriableCodes.contains(rd_kafka_error_code(error).rawValue)
        )
    }

    /// True when a message (or its batch) is larger than the client or the broker accepts: sending it again as it
    /// is can never succeed.
    public var isMessageTooLarge: Bool {
        code == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE.rawValue || code == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE.rawValue
    }

    /// An error raised by this wrapper itself (not by librdkafka), e.g. use after shutdown.
    static func clientState(_ message: String) -> KafkaError {
        KafkaError(RD_KAFKA_RESP_ERR__STATE, message: message)
    }

    /// Codes that describe a transient condition (broker/network/queue), so a caller may retry.
    /// librdkafka only flags retriability on rd_kafka_error_t objects, not on bare codes, hence this list.
    private static let retriableCodes: Set<Int32> = Set([
        RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT,
        RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR__RESOLVE,
        RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE, RD_KAFKA_RESP_ERR__WAIT_COORD,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION,
        RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
        RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
    ].map(\.rawValue))
}
