import Synchronization

/// Whether the service can do its work: every Redis primary answers, a Kafka broker answers a metadata request,
/// events handed to Kafka get delivered, and the consumer's dead-letter topic exists (without it a message that
/// can never be processed stops the consumer).
public struct ReadinessCheck: Sendable {
    /// How long a Kafka broker has to answer; readiness probes are short.
    static let kafkaTimeout: Duration = .seconds(1)

    private let repository: TransferRepository
    private let publisher: OutboxPublisher
    /// Shared by every copy of this check, so the application can announce its shutdown to the routes' copy.
    private let shutdown = ShutdownAnnouncement()
    private let processor: TransferProcessor?

    /// Checks the dependencies behind `repository`, `publisher` and `processor`.
    public init(repository: TransferRepository, publisher: OutboxPublisher, processor: TransferProcessor? = nil) {
        self.repository = repository
        self.publisher = publisher
        self.processor = processor
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
        guard let processor else { return }
        do {
            try processor.checkDeadLetterTopic(timeout: Self.kafkaTimeout)
        } catch {
            throw .dependencyUnavailable(name: "Kafka dead-letter topic \(processor.deadLetterTopic)", reason: error.description)
        }
    }
}

private final class ShutdownAnnouncement: Sendable {
    let isAnnounced = Atomic<Bool>(false)
}
