/// Whether the service can do its work: Redis answers, a Kafka broker answers a metadata request, and the
/// consumer's dead-letter topic exists (without it a message that can never be processed stops the consumer).
public struct ReadinessCheck: Sendable {
    /// How long a Kafka broker has to answer; readiness probes are short.
    static let kafkaTimeout: Duration = .seconds(1)

    private let repository: TransferRepository
    private let publisher: OutboxPublisher
    private let processor: TransferProcessor?

    /// Checks the dependencies behind `repository`, `publisher` and `processor`.
    public init(repository: TransferRepository, publisher: OutboxPublisher, processor: TransferProcessor? = nil) {
        self.repository = repository
        self.publisher = publisher
        self.processor = processor
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
        guard let processor else { return }
        do {
            try processor.checkDeadLetterTopic(timeout: Self.kafkaTimeout)
        } catch {
            throw .dependencyUnavailable(name: "Kafka dead-letter topic \(processor.deadLetterTopic)", reason: error.description)
        }
    }
}
