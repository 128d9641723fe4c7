/// Whether the service can do its work: Redis answers and a Kafka broker answers a metadata request.
public struct ReadinessCheck: Sendable {
    /// How long a Kafka broker has to answer; readiness probes are short.
    static let kafkaTimeout: Duration = .seconds(1)

    private let repository: TransferRepository
    private let publisher: OutboxPublisher
    private let topics: KafkaTopicAvailability?

    /// Checks the dependencies behind `repository` and `publisher`, and that the Kafka `topics` exist.
    public init(repository: TransferRepository, publisher: OutboxPublisher, topics: KafkaTopicAvailability? = nil) {
        self.repository = repository
        self.publisher = publisher
        self.topics = topics
    }

    /// Throws `dependencyUnavailable` naming the first dependency that does not answer.
    func run() throws(APIError) {
        do {
            try repository.ping()
        } catch {
            throw .dependencyUnavailable(name: "Redis", reason: error.description)
        }
        do {
            try publisher.checkKafkaReachable(timeout: Self.kafkaTimeout)
        } catch {
            throw .dependencyUnavailable(name: "Kafka", reason: error.description)
        }
        try checkKafkaTopics()
    }

    /// The transfer topic and its dead-letter topic exist (the last background check's answer; no request here).
    private func checkKafkaTopics() throws(APIError) {
        if let failure = topics?.readinessFailure {
            throw .dependencyUnavailable(name: failure.name, reason: failure.reason)
        }
    }
}
