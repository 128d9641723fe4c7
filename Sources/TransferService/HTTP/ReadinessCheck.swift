import Synchronization

/// Whether the service can do its work: every Redis primary answers, a Kafka broker answers a metadata request,
/// events handed to Kafka get delivered, and the transfer topic and its dead-letter topic exist (without the
/// latter a message that can never be processed stops the consumer).
public struct ReadinessCheck: Sendable {
    /// How long a Kafka broker has to answer; readiness probes are short.
    static let kafkaTimeout: Duration = .seconds(1)

    private let repository: TransferRepository
    private let publisher: OutboxPublisher
    /// Shared by every copy of this check, so the application can announce its shutdown to the routes' copy.
    private let shutdown = ShutdownAnnouncement()
    private let topics: KafkaTopicAvailability?

    /// Checks the dependencies behind `repository` and `publisher`, and that the Kafka `topics` exist.
    public init(repository: TransferRepository, publisher: OutboxPublisher, topics: KafkaTopicAvailability? = nil) {
        self.repository = repository
        self.publisher = publisher
        self.topics = topics
    }

    /// From now on `run()` fails with `shuttingDown`, so load balancers stop sending requests here.
    func announceShutdown() {
        shutdown.isAnnounced.store(true, ordering: .relaxed)
    }

    /// Throws `shuttingDown` once the shutdown was announced, else `dependencyUnavailable` naming the first
    /// dependency that does not answer.
    func run() throws(APIError) {
        if shutdown.isAnnounced.load(ordering: .relaxed) { throw .shuttingDown }
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
        try checkKafkaTopics()
    }

    /// The transfer topic and its dead-letter topic exist (the last background check's answer; no request here).
    private func checkKafkaTopics() throws(APIError) {
        if let failure = topics?.readinessFailure {
            throw .dependencyUnavailable(name: failure.name, reason: failure.reason)
        }
    }
}

private final class ShutdownAnnouncement: Sendable {
    let isAnnounced = Atomic<Bool>(false)
}
