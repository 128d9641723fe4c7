/// Whether the service can do its work: every Redis primary answers, a Kafka broker answers a metadata request,
/// and events handed to Kafka get delivered.
public struct ReadinessCheck: Sendable {
    /// How long a Kafka broker has to answer; readiness probes are short.
    static let kafkaTimeout: Duration = .seconds(1)

    private let repository: TransferRepository
    private let publisher: OutboxPublisher

    /// Checks the dependencies behind `repository` and `publisher`.
    public init(repository: TransferRepository, publisher: OutboxPublisher) {
        self.repository = repository
        self.publisher = publisher
    }

    /// Throws `dependencyUnavailable` naming the first dependency that does not answer.
    func run() throws(APIError) {
        do {
            try repository.ping()
        } catch {
            throw APIError(error)
        }
        do {
            try publisher.checkKafkaReachable(timeout: Self.kafkaTimeout)
            try publisher.checkDelivering()
        } catch {
            throw .dependencyUnavailable(name: "Kafka", reason: error.description)
        }
    }
}
