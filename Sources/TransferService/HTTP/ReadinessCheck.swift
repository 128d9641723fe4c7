import CoreMetrics
import Dispatch
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
    private let probes = ProbesInFlight()
    private let checksRun: CoreMetrics.Counter

    /// Checks the dependencies behind `repository` and `publisher`, and that the Kafka `topics` exist; counts
    /// the checks run in `metrics`.
    public init(
        repository: TransferRepository, publisher: OutboxPublisher, topics: KafkaTopicAvailability? = nil,
        metrics: ServiceMetrics
    ) {
        self.repository = repository
        self.publisher = publisher
        self.topics = topics
        checksRun = metrics.readinessChecks
    }

    /// From now on `run()` fails with `shuttingDown`, so load balancers stop sending requests here.
    func announceShutdown() {
        shutdown.isAnnounced.store(true, ordering: .relaxed)
    }

    /// Answers a probe on a queue of its own. Probes that arrive while a check runs share its outcome instead of
    /// each starting one: with a broker that answers slowly, each check waits up to `kafkaTimeout`, and 20
    /// concurrent probes each running their own took up to 5 s (they ran two at a time on Dispatch's global
    /// threads, which they also kept from other work).
    func probe(_ completion: @escaping @Sendable (Result<Void, APIError>) -> Void) {
        if shutdown.isAnnounced.load(ordering: .relaxed) { return completion(.failure(.shuttingDown)) }
        guard probes.join(completion) else { return }
        probes.queue.async { [self] in
            checksRun.increment()
            let outcome: Result<Void, APIError>
            do throws(APIError) {
                try run()
                outcome = .success(())
            } catch {
                outcome = .failure(error)
            }
            for waiting in probes.finish() {
                waiting(outcome)
            }
        }
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

/// The probes waiting for the check that runs now (nil: none runs).
private final class ProbesInFlight: Sendable {
    typealias Completion = @Sendable (Result<Void, APIError>) -> Void
    let queue = DispatchQueue(label: "readiness-check")
    private let waiting = Mutex<[Completion]?>(nil)

    /// Adds `completion` to the check that runs; true when none ran, so the caller starts one.
    func join(_ completion: @escaping Completion) -> Bool {
        waiting.withLock { waiting in
            guard waiting != nil else {
                waiting = [completion]
                return true
            }
            waiting?.append(completion)
            return false
        }
    }

    /// Ends the running check; returns the probes that wait for its outcome.
    func finish() -> [Completion] {
        waiting.withLock { waiting in
            defer { waiting = nil }
            return waiting ?? []
        }
    }
}
