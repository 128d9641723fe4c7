import Dispatch
import KafkaClient
import Logging
import Synchronization
import Transfers
#if canImport(Glibc)
import Glibc
#endif

/// The background consumer: reads transfer events and applies the versioned update to Redis, at least once.
///
/// Runs on its own Dispatch queue. It takes the events that are waiting (up to `batchSize`) and runs their
/// compare-and-set scripts in one Redis round trip; their offsets are stored for commit only after that
/// succeeded, so a crash replays them, which the version check makes harmless. Redis being down is retried with
/// backoff, never skipped; a message that can never be processed (not a transfer event, or its stored record is
/// unreadable) is sent to `<topic>.dlq` with the reason, and skipped once Kafka has it.
public final class TransferProcessor: Sendable {
    /// The most events applied in one Redis round trip.
    static let batchSize = 256

    private let consumer: KafkaConsumer
    private let deadLetters: DeadLetterPublisher
    private let repository: TransferRepository
    private let metrics: ServiceMetrics
    private let logger: Logger
    private let queue = DispatchQueue(label: "transfer-processor")
    private let stopRequested = Atomic<Bool>(false)
    private let finished = DispatchGroup()

    /// A processor subscribed to `topic` in the configured consumer group.
    public init(
        topic: String, consumerConfiguration: KafkaConsumerConfiguration, deadLetterProducerConfiguration: KafkaProducerConfiguration,
        repository: TransferRepository, metrics: ServiceMetrics, logger: Logger
    ) throws(KafkaError) {
        deadLetters = try DeadLetterPublisher(sourceTopic: topic, producerConfiguration: deadLetterProducerConfiguration)
        consumer = try KafkaConsumer(configuration: consumerConfiguration)
        try consumer.subscribe(topics: [topic])
        self.repository = repository
        self.metrics = metrics
        self.logger = logger
    }

    /// Starts consuming on the background queue.
    public func start() {
        finished.enter()
        queue.async { [self] in
            run()
            finished.leave()
        }
    }

    /// Stops after the current batch, commits the stored offsets and leaves the group.
    public func stop() {
        stopRequested.store(true, ordering: .relaxed)
        finished.wait()
        do {
            try consumer.commit()
        } catch {
            logger.warning("cannot commit consumer offsets at shutdown; those events will be redelivered", metadata: ["error": "\(error)"])
        }
        consumer.close()
        deadLetters.shutdown()
    }

    private var isStopping: Bool { stopRequested.load(ordering: .relaxed) }

    private func run() {
        while !isStopping {
            let messages: [KafkaMessage]
            do {
                messages = try consumer.poll(maxMessages: Self.batchSize, timeout: .milliseconds(100))
            } catch {
                logger.warning("Kafka consumer error", metadata: ["error": "\(error)"])
                metrics.recordDependencyError("kafka")
                continue
            }
            guard !messages.isEmpty else { continue }
            guard process(messages) else { return }  // stopping before they were handled: they will be redelivered
            // Storing the last offset of each partition covers the messages before it.
            var lastOfPartition: [Int32: KafkaMessage] = [:]
            for message in messages {
                lastOfPartition[message.partition] = message
            }
            for message in lastOfPartition.values {
                do {
                    try consumer.storeOffset(of: message)
                } catch {
                    logger.warning("cannot store the consumer offset", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// Applies a batch of messages, dead-lettering those that can never be processed; false only when asked to
    /// stop before all of them were handled.
    private func process(_ messages: [KafkaMessage]) -> Bool {
        let started = ContinuousClock.now
        var events: [(message: KafkaMessage, event: Transfer)] = []
        for message in messages {
            do {
                events.append((message, try Transfer(json: message.value)))
            } catch {
                guard deadLetter(message, reason: "not a transfer event: \(error)") else { return false }
            }
        }
        guard let outcomes = apply(events.map(\.event)) else { return false }
        repository.reindex(zip(events, outcomes).filter { $0.1.storedTheEvent }.map(\.0.event))  // account-index repair
        let perEvent = (ContinuousClock.now - started) / max(events.count, 1)
        for ((message, event), outcome) in zip(events, outcomes) {
            switch outcome {
            case .success(let outcome):
                log(outcome, for: event)
                metrics.recordEvent(outcome: outcome.metricName, duration: perEvent)
            case .failure(let error):
                guard deadLetter(message, reason: "\(error)") else { return false }
            }
        }
        return true
    }

    /// Applies the events until each has an outcome that retrying cannot change and the writes reached the
    /// required replicas. Each event keeps the first definite outcome it got; after a replication shortfall every
    /// event is applied again so that the next `WAIT` covers it (an event already applied is then a conflict,
    /// which writes nothing). Nil if asked to stop first.
    private func apply(_ events: [Transfer]) -> [Result<CompletionOutcome, RepositoryError>]? {
        var outcomes = [Result<CompletionOutcome, RepositoryError>?](repeating: nil, count: events.count)
        var replicated = true
        var backoff = Duration.milliseconds(50)
        while true {
            let attempt = events.indices.filter { !replicated || outcomes[$0]?.isRetryable != false }
            let batch = repository.complete(attempt.map { events[$0] }, at: .now())
            for (index, outcome) in zip(attempt, batch.outcomes) where outcomes[index]?.isRetryable != false {
                outcomes[index] = outcome
            }
            replicated = batch.isReplicated
            let failing = outcomes.compactMap { outcome -> RepositoryError? in
                guard let outcome, outcome.isRetryable, case .failure(let error) = outcome else { return nil }
                return error
            }
            if failing.isEmpty && replicated { return outcomes.map { $0! } }
            logger.warning(
                "cannot apply events yet; retrying",
                metadata: [
                    "events": "\(failing.isEmpty ? events.count : failing.count)",
                    "error": "\(failing.first.map(\.description) ?? "too few replicas confirmed the writes")", "retry_in": "\(backoff)",
                ]
            )
            guard sleep(backoff) else { return nil }
            backoff = min(backoff * 2, .seconds(2))
        }
    }

    /// Parks a message that can never be processed in the dead-letter topic; retried until Kafka confirms it.
    private func deadLetter(_ message: KafkaMessage, reason: String) -> Bool {
        logger.error(
            "dead-lettering a message that cannot be processed",
            metadata: ["partition": "\(message.partition)", "offset": "\(message.offset)", "reason": "\(reason)", "dlq": "\(deadLetters.topic)"]
        )
        let sent: Void? = retryingUntilStopped("dead-letter a message", count: 1) { () throws(KafkaError) in
            try deadLetters.deadLetter(message, reason: reason, timeout: .seconds(5))
        }
        guard sent != nil else { return false }
        metrics.deadLettered.increment()
        metrics.recordEvent(outcome: "dead_lettered", duration: .zero)
        return true
    }

    /// Runs `attempt` until it succeeds, backing off between failures (a dependency is down); nil if asked to
    /// stop first.
    private func retryingUntilStopped<Value, Failure: Error>(
        _ action: String, count: Int, _ attempt: () throws(Failure) -> Value
    ) -> Value? {
        var backoff = Duration.milliseconds(50)
        while true {
            do {
                return try attempt()
            } catch {
                logger.warning(
                    "cannot \(action) yet; retrying",
                    metadata: ["events": "\(count)", "error": "\(error)", "retry_in": "\(backoff)"]
                )
            }
            guard sleep(backoff) else { return nil }
            backoff = min(backoff * 2, .seconds(2))
        }
    }

    /// Sleeps in short steps so a stop request is noticed; false if one came.
    private func sleep(_ duration: Duration) -> Bool {
        var remaining = duration
        while remaining > .zero {
            if isStopping { return false }
            let step = min(remaining, .milliseconds(50))
            usleep(useconds_t(step.components.seconds * 1_000_000 + step.components.attoseconds / 1_000_000_000_000))
            remaining -= step
        }
        return !isStopping
    }

    private func log(_ outcome: CompletionOutcome, for event: Transfer) {
        let metadata: Logger.Metadata = ["transfer_id": "\(event.id)", "version": "\(event.version + 1)"]
        switch outcome {
        case .completed:
            metrics.transfersCompleted.increment()
            logger.info("transfer completed", metadata: metadata)
        case .conflict(let storedVersion):
            metrics.versionConflicts.increment()
            logger.notice(
                "version conflict: event skipped",
                metadata: ["transfer_id": "\(event.id)", "event_version": "\(event.version)", "stored_version": "\(storedVersion)"]
            )
        case .recreated:
            metrics.transfersRecreated.increment()
            logger.warning("transfer was not in Redis: recreated from its event as completed", metadata: metadata)
        case .gone:
            metrics.versionConflicts.increment()
            logger.notice("event for a transfer that is no longer stored (deleted or expired): skipped", metadata: ["transfer_id": "\(event.id)"])
        }
    }
}

extension CompletionOutcome {
    /// The outcome as a metrics dimension.
    var metricName: String {
        switch self {
        case .completed: "completed"
        case .conflict: "conflict"
        case .recreated: "recreated"
        case .gone: "gone"
        }
    }
}

extension Result where Success == CompletionOutcome, Failure == RepositoryError {
    /// A failure that may pass (Redis away, a lost reply); the others are about the event itself.
    var isRetryable: Bool {
        guard case .failure(let error) = self else { return false }
        switch error {
        case .unavailable, .authenticationFailed, .outcomeUnknown, .notReplicated, .unexpectedReply, .nothingStored: return true
        case .unreadableRecord, .invalidEvent: return false
        }
    }
}
