import CRdKafka
import KafkaClient

/// librdkafka's in-process mock Kafka cluster, listening on loopback TCP: for development and tests only.
/// Clients connect to it like to any Kafka cluster, through `bootstrapServers`.
/// Safe to share: the mock API posts every call as an operation to the cluster's own thread, and the pointers
/// never change after init (they are freed only in deinit, when no other reference exists).
public final class KafkaMockCluster: @unchecked Sendable {
    /// The client instance that hosts the cluster's thread (the mock API requires one); it never connects anywhere.
    private let hostHandle: OpaquePointer
    private let cluster: OpaquePointer

    /// Starts a cluster with brokers numbered 1...brokerCount, each on its own ephemeral loopback port.
    public init(brokerCount: Int) throws(KafkaError) {
        guard brokerCount > 0 else {
            throw KafkaError(RD_KAFKA_RESP_ERR__INVALID_ARG, message: "brokerCount must be positive, got \(brokerCount)")
        }
        // log_level 4 (warning) drops the host's harmless "No bootstrap.servers configured" notice.
        let conf = try makeRdKafkaConf([("log_level", "4")])
        hostHandle = try makeRdKafkaHandle(RD_KAFKA_PRODUCER, conf: conf)
        guard let cluster = rd_kafka_mock_cluster_new(hostHandle, Int32(clamping: brokerCount)) else {
            rd_kafka_destroy(hostHandle)
            throw KafkaError(RD_KAFKA_RESP_ERR__FAIL, message: "could not start a mock cluster with \(brokerCount) brokers")
        }
        self.cluster = cluster
    }

    deinit {
        rd_kafka_mock_cluster_destroy(cluster)
        rd_kafka_destroy(hostHandle)
    }

    /// Comma-separated host:port list of all brokers, for bootstrap.servers.
    public var bootstrapServers: String {
        String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
    }

    /// Creates a topic. Unknown topics are also auto-created by a metadata request that allows it, with the mock's
    /// defaults: by every such request unless Metadata v4 is advertised (see `setSupportedVersions`), since older
    /// versions cannot say "do not create".
    public func createTopic(_ name: String, partitions: Int, replicationFactor: Int) throws(KafkaError) {
        try check(
            rd_kafka_mock_topic_create(cluster, name, Int32(clamping: partitions), Int32(clamping: replicationFactor)),
            "creating topic \(name) (\(partitions) partitions, replication factor \(replicationFactor))"
        )
    }

    /// Advertises `versions` of the request type `apiKey` (a Kafka protocol ApiKey, e.g. 3 for Metadata) to clients
    /// instead of the mock's default range. Only versions the mock can parse make sense.
    public func setSupportedVersions(apiKey: Int16, _ versions: ClosedRange<Int16>) throws(KafkaError) {
        try check(
            rd_kafka_mock_set_apiversion(cluster, apiKey, versions.lowerBound, versions.upperBound),
            "setting the versions of request type \(apiKey)"
        )
    }

    /// Disconnects the broker and refuses new connections (partition leadership does not move).
    public func setBrokerDown(_ brokerId: Int32) throws(KafkaError) {
        try check(rd_kafka_mock_broker_set_down(cluster, brokerId), "setting broker \(brokerId) down")
    }

    /// Lets the broker accept connections again.
    public func setBrokerUp(_ brokerId: Int32) throws(KafkaError) {
        try check(rd_kafka_mock_broker_set_up(cluster, brokerId), "setting broker \(brokerId) up")
    }

    /// Delays every response from the broker by `milliseconds`.
    public func setBrokerRoundTripTime(_ brokerId: Int32, milliseconds: Int) throws(KafkaError) {
        try check(
            rd_kafka_mock_broker_set_rtt(cluster, brokerId, Int32(clamping: milliseconds)),
            "setting broker \(brokerId) round-trip time"
        )
    }

    /// Kafka's API key for produce requests, for `pushRequestErrors`.
    public static let produceAPIKey: Int16 = 0

    /// The next `errors.count` requests of the API `apiKey` (from any client, to any broker) are answered with
    /// these error codes, in order (e.g. 45, OUT_OF_ORDER_SEQUENCE_NUMBER, for a produce request: an idempotent
    /// producer takes it as a fatal error).
    public func pushRequestErrors(apiKey: Int16, errors: [Int32]) {
        let codes = errors.map { rd_kafka_resp_err_t(rawValue: $0) }
        rd_kafka_mock_push_request_errors_array(cluster, apiKey, codes.count, codes)
    }

    /// Drops the errors `pushRequestErrors` queued for `apiKey` that no request has met yet.
    public func clearRequestErrors(apiKey: Int16) {
        rd_kafka_mock_clear_request_errors(cluster, apiKey)
    }

    private func check(_ err: rd_kafka_resp_err_t, _ action: String) throws(KafkaError) {
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(err, message: "\(action): \(String(cString: rd_kafka_err2str(err)))")
        }
    }
}
