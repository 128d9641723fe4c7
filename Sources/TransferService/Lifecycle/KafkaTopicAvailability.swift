import Dispatch
import KafkaClient
import Logging
import Synchronization

/// Whether the Kafka topics the service needs (the transfer topic and its `.dlq`) exist.
///
/// Checked once at start, before the clients subscribe, creating missing topics when `KAFKA_CREATE_TOPICS=true`;
/// then re-checked in the background, every 5 s while something is wrong and every 60 s otherwise, with one
/// metadata request per topic. Readiness reads the last result, so a probe costs no request. Each change is logged
/// once.
public final class KafkaTopicAvailability: Sendable {
    /// What the last check found.
    enum State: Equatable, Sendable {
        case available
        /// The topics the cluster does not have, and why creating them failed (with KAFKA_CREATE_TOPICS=true).
        case missing([String], creationError: String?)
        /// No broker answered: readiness reports Kafka itself, so this alone does not fail it.
        case unreachable(String)
        /// The cluster answered but the topics cannot be used, e.g. TOPIC_AUTHORIZATION_FAILED.
        case failed(String)
    }

    static let checkTimeout: Duration = .seconds(3)
    /// Creating topics blocks the start (the consumer must find them), so it is bounded; a real cluster creates
    /// topics in about a second.
    static let createTimeout: Duration = .seconds(10)
    static let recheckWhileFailing: DispatchTimeInterval = .seconds(5)
    static let recheckWhileAvailable: DispatchTimeInterval = .seconds(60)

    private let admin: KafkaAdminClient
    private let topics: [KafkaNewTopic]
    private let createsMissingTopics: Bool
    private let logger: Logger
    private let state = Mutex<State?>(nil)
    private let queue = DispatchQueue(label: "kafka-topic-check")
    private let isStopped = Atomic<Bool>(false)

    /// Checks the topics of `configuration` with its Kafka properties; nothing is asked until `checkNow`.
    public init(configuration: ServiceConfiguration, logger: Logger) throws(KafkaError) {
        admin = try KafkaAdminClient(bootstrapServers: configuration.kafkaBootstrapServers, properties: configuration.kafkaProperties)
        topics = configuration.kafkaTopicsToCreate
        createsMissingTopics = configuration.kafkaCreateTopics
        self.logger = logger
    }

    /// Checks (and, if configured, creates) now, on the calling thread.
    public func checkNow() {
        let next = check()
        let previous = state.withLock { state in
            defer { state = next }
            return state
        }
        if next != previous { log(next, after: previous) }
    }

    /// Keeps checking in the background until `stop`.
    public func startBackgroundChecks() {
        scheduleCheck()
    }

    /// Ends the background checks.
    public func stop() {
        isStopped.store(true, ordering: .relaxed)
    }

    /// Why readiness must fail because of the topics, or nil: a dependency name for the 503 and the reason.
    public var readinessFailure: (name: String, reason: String)? {
        switch state.withLock({ $0 }) {
        case .missing(let names, _): ("Kafka topic \(names.joined(separator: ", ")) (missing)", "does not exist")
        case .failed(let reason): ("Kafka topics", reason)
        case .available, .unreachable, nil: nil
        }
    }

    private func scheduleCheck() {
        let delay = state.withLock { $0 } == .available ? Self.recheckWhileAvailable : Self.recheckWhileFailing
        queue.asyncAfter(deadline: .now() + delay) { [self] in
            guard !isStopped.load(ordering: .relaxed) else { return }
            checkNow()
            scheduleCheck()
        }
    }

    private func check() -> State {
        let missing: [String]
        do {
            missing = try admin.missingTopics(topics.map(\.name), timeout: Self.checkTimeout)
        } catch where error.isRetriable {
            return .unreachable(error.description)
        } catch {
            return .failed(error.description)
        }
        guard !missing.isEmpty else { return .available }
        guard createsMissingTopics else { return .missing(missing, creationError: nil) }
        do {
            try create(topics.filter { missing.contains($0.name) })
            let stillMissing = try admin.missingTopics(missing, timeout: Self.checkTimeout)
            return stillMissing.isEmpty ? .available : .missing(stillMissing, creationError: "created, but not visible yet")
        } catch {
            return .missing(missing, creationError: error.description)
        }
    }

    private func create(_ missing: [KafkaNewTopic]) throws(KafkaError) {
        for (name, outcome) in try admin.createTopics(missing, timeout: Self.createTimeout).sorted(by: { $0.key < $1.key }) {
            let topic = missing.first { $0.name == name }
            let metadata: Logger.Metadata = [
                "topic": "\(name)", "partitions": "\(topic?.partitions ?? -1)", "replication_factor": "\(topic?.replicationFactor ?? -1)",
            ]
            switch outcome {
            case .created:
                logger.info("created Kafka topic", metadata: metadata)
            case .alreadyExisted:
                logger.info("Kafka topic already exists", metadata: ["topic": "\(name)"])
            }
        }
    }

    private func log(_ state: State, after previous: State?) {
        switch state {
        case .available:
            if previous != nil { logger.info("Kafka topics available", metadata: ["topics": "\(topics.map(\.name).joined(separator: ", "))"]) }
        case .missing(let names, nil):
            logger.error(
                "Kafka topic missing: /readyz answers 503 until it exists; create it, or start with KAFKA_CREATE_TOPICS=true",
                metadata: ["topics": "\(names.joined(separator: ", "))"]
            )
        case .missing(let names, let creationError?):
            logger.error(
                "Kafka topic missing and not created: /readyz answers 503 until it exists; retrying",
                metadata: ["topics": "\(names.joined(separator: ", "))", "error": "\(creationError)"]
            )
        case .unreachable(let reason):
            logger.warning("cannot check the Kafka topics yet; retrying", metadata: ["error": "\(reason)"])
        case .failed(let reason):
            logger.error("cannot use the Kafka topics: /readyz answers 503", metadata: ["error": "\(reason)"])
        }
    }
}
