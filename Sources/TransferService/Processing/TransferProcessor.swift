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
/// compare-and-set scripts in one Redis round trip, preparing the next batch while Redis runs them; their offsets
/// are stored for commit only after that succeeded, so a crash replays them, which the version check makes harmless. Redis being down is retried with
/// backoff, never skipped; a message that can never be processed (not a transfer event, or its stored record is
/// unreadable) is sent to `<topic>.dlq` with the reason, and skipped once Kafka has it.
///
/// Group membership: every assignment and revocation is logged; events polled before their partition was revoked
/// are left to the partition's next owner. A stop while the first join is still unanswered waits (briefly) for the
/// answer, because a member without its id cannot leave the group, and the coordinator would keep handing it
/// partitions that nobody reads until its session times out.
public final class TransferProcessor: Sendable {
    /// The most events applied in one Redis round trip.
    static let batchSize = 256
    /// How often librdkafka reports statistics (the per-partition lag); each costs one JSON parse.
    static let statisticsInterval: Duration = .seconds(5)
    /// How long a stop waits for an unanswered group join, so that the member can leave properly.
    static let joinWaitOnStop: Duration = .seconds(5)
    /// How long a stop waits for the final offset commit and the group leave, which wait for a group coordinator:
    /// with every broker down the stop goes on without them, within the 10 s that `docker stop` allows.
    static let leaveTimeout: Duration = .seconds(4)
    /// How often the group's committed lag of every partition is read (whichever member owns it).
    static let groupLagInterval: DispatchTimeInterval = .seconds(15)

    private let consumer: KafkaConsumer
    private let deadLetters: DeadLetterPublisher
    private let repository: TransferRepository
    private let metrics: ServiceMetrics
    private let logger: Logger
    private let topic: String
    private let queue = DispatchQueue(label: "transfer-processor")
    private let groupLagQueue = DispatchQueue(label: "transfer-processor-group-lag")
    private let stopRequested = Atomic<Bool>(false)
    private let finished = DispatchGroup()

    /// A processor for `topic` in the configured consumer group; it joins the group when started.
    public init(
        topic: String, consumerConfiguration: KafkaConsumerConfiguration, deadLetterProducerConfiguration: KafkaProducerConfiguration,
        repository: TransferRepository, metrics: ServiceMetrics, logger: Logger
    ) throws(KafkaError) {
        deadLetters = try DeadLetterPublisher(sourceTopic: topic, producerConfiguration: deadLetterProducerConfiguration)
        var consumerConfiguration = consumerConfiguration
        consumerConfiguration.statisticsInterval = consumerConfiguration.statisticsInterval ?? Self.statisticsInterval
        let events = ConsumerEventRecorder(metrics: metrics, logger: logger)
        consumer = try KafkaConsumer(configuration: consumerConfiguration, onEvent: events.record)
        self.topic = topic
        self.repository = repository
        self.metrics = metrics
        self.logger = logger
    }

    /// Joins the consumer group and starts consuming on the background queue, and reading the group's lag
    /// periodically.
    public func start() throws(KafkaError) {
        try consumer.subscribe(topics: [topic])
        finished.enter()
        queue.async { [self] in
            run()
            finished.leave()
        }
        scheduleGroupLagReading()
    }

    private func scheduleGroupLagReading() {
        groupLagQueue.asyncAfter(deadline: .now() + Self.groupLagInterval) { [self] in
            guard !isStopping else { return }
            recordGroupLag()
            scheduleGroupLagReading()
        }
    }

    /// The group's lag per partition from its committed offsets, whichever member owns the partition: unlike the
    /// statistics of this instance's own partitions, it shows a partition that no live member reads (e.g. one held
    /// by a member that is gone, until its session times out).
    private func recordGroupLag() {
        do {
            for partition in try consumer.groupLag(topic: topic, timeout: .milliseconds(500)) {
                metrics.recordConsumerGroupLag(partition: partition.partition, events: partition.lag)
            }
        } catch {
            logger.debug("cannot read the consumer group's lag", metadata: ["error": "\(error)"])
        }
    }

    /// Stops after the current batch, commits the stored offsets and leaves the group.
    public func stop() {
        stopRequested.store(true, ordering: .relaxed)
        finished.wait()
        groupLagQueue.sync {}  // lets a reading in progress finish before the consumer closes
        waitForGroupMembership()
        switch consumer.close(timeout: Self.leaveTimeout) {
        case .closed:
            break
        case .closedWithoutCommit(let error):
            logger.warning("cannot commit consumer offsets at shutdown; those events will be redelivered", metadata: ["error": "\(error)"])
        case .timedOut:
            logger.warning(
                "Kafka did not answer the final offset commit and group leave; stopping without them: the uncommitted events will be delivered again, and this member's partitions wait for its session to time out",
                metadata: ["waited": "\(Self.leaveTimeout)"]
            )
        }
        deadLetters.shutdown()
    }

    private var isStopping: Bool { stopRequested.load(ordering: .relaxed) }

    /// Until the group has answered this member's join (bounded by `joinWaitOnStop`), keeps polling so the answer is
    /// taken in; messages that arrive meanwhile are not processed (nor stored), so the group redelivers them.
    private func waitForGroupMembership() {
        if consumer.memberID == nil {
            logger.info("stopping while the consumer group join is unanswered; waiting for it so this member can leave the group")
            let deadline = ContinuousClock.now + Self.joinWaitOnStop
            while consumer.memberID == nil && ContinuousClock.now < deadline {
                _ = try? consumer.poll(maxMessages: Self.batchSize, timeout: .milliseconds(100))
            }
        }
        if let memberID = consumer.memberID {
            logger.info("leaving the consumer group", metadata: ["member_id": "\(memberID)"])
        } else {
            logger.warning(
                "stopping before the consumer group answered this member's join: it cannot leave the group, which keeps it (and any partitions it gets) until its session times out",
                metadata: ["waited": "\(Self.joinWaitOnStop)"]
            )
        }
    }

    /// A batch whose compare-and-set scripts are in Redis: the consumer polls and prepares the next batch
    /// meanwhile, and finishes this one (outcomes, logs, dead letters, offsets) before it sends the next. Batches
    /// still reach Redis one after the other, in order; only the consumer's own work overlaps Redis's.
    private struct BatchInFlight {
        let messages: [KafkaMessage]
        let events: [(message: KafkaMessage, event: Transfer)]
        /// Messages that are not transfer events, with the reason: dead-lettered when the batch is finished.
        let unreadable: [(message: KafkaMessage, reason: String)]
        let started: ContinuousClock.Instant
        let completions: CompletionsInFlight
    }

    /// A polled batch, parsed and with its scripts encoded, not yet sent.
    private struct PreparedBatch {
        let messages: [KafkaMessage]
        let events: [(message: KafkaMessage, event: Transfer)]
        let unreadable: [(message: KafkaMessage, reason: String)]
        let completions: PreparedCompletions
    }

    private func run() {
        var inFlight: BatchInFlight?
        while !isStopping {
            // With a batch in Redis, take only what is already waiting, so that batch's outcome is not held back.
            let messages = pollAssigned(timeout: inFlight == nil ? .milliseconds(100) : .zero)
            let next = messages.isEmpty ? nil : prepare(messages)
            if let batch = inFlight {
                inFlight = nil
                guard finish(batch) else { return }  // stopping before they were handled: they will be redelivered
            }
            if let next { inFlight = start(next) }
        }
        // Asked to stop with a batch in Redis: take in its outcome and store its offsets, as for any batch.
        if let batch = inFlight { _ = finish(batch) }
    }

    /// Up to `batchSize` messages of partitions still assigned; empty when none arrived within `timeout`.
    private func pollAssigned(timeout: Duration) -> [KafkaMessage] {
        let polled: [KafkaMessage]
        do {
            polled = try consumer.poll(maxMessages: Self.batchSize, timeout: timeout)
        } catch {
            // Only a closed consumer throws here; errors met while polling went to ConsumerEventRecorder.
            logger.warning("Kafka consumer error", metadata: ["error": "\(error)"])
            metrics.recordDependencyError("kafka")
            return []
        }
        // A rebalance served while the batch was polled may have taken some of these partitions away: their new
        // owner reads them again from the last commit.
        let messages = polled.filter(consumer.isStillAssigned)
        if messages.count < polled.count {
            logger.info("leaving events of revoked partitions to their new owner", metadata: ["events": "\(polled.count - messages.count)"])
        }
        return messages
    }

    /// Parses the messages and encodes their scripts.
    private func prepare(_ messages: [KafkaMessage]) -> PreparedBatch {
        var events: [(message: KafkaMessage, event: Transfer)] = []
        var unreadable: [(message: KafkaMessage, reason: String)] = []
        events.reserveCapacity(messages.count)
        for message in messages {
            do {
                events.append((message, try Transfer(json: message.value)))
            } catch {
                unreadable.append((message, "not a transfer event: \(error)"))
            }
        }
        return PreparedBatch(
            messages: messages, events: events, unreadable: unreadable,
            completions: repository.prepareCompletions(events.map(\.event), at: .now())
        )
    }

    private func start(_ batch: PreparedBatch) -> BatchInFlight {
        BatchInFlight(
            messages: batch.messages, events: batch.events, unreadable: batch.unreadable, started: .now,
            completions: repository.startCompleting(batch.completions)
        )
    }

    /// Takes in the outcomes of a batch (retrying what may pass), dead-letters what can never be processed and
    /// stores the offsets; false only when asked to stop before all of it was handled.
    private func finish(_ batch: BatchInFlight) -> Bool {
        for (message, reason) in batch.unreadable {
            guard deadLetter(message, reason: reason) else { return false }
        }
        let events = batch.events
        guard let outcomes = apply(events.map(\.event), firstAttempt: batch.completions) else { return false }
        repository.reindex(zip(events, outcomes).filter { $0.1.storedTheEvent }.map(\.0.event))  // account-index repair
        let perEvent = (ContinuousClock.now - batch.started) / max(events.count, 1)
        for ((message, event), outcome) in zip(events, outcomes) {
            switch outcome {
            case .success(let outcome):
                log(outcome, for: event)
                metrics.recordEvent(outcome: outcome.metricName, duration: perEvent)
            case .failure(let error):
                guard deadLetter(message, reason: "\(error)") else { return false }
            }
        }
        storeOffsets(of: batch.messages)
        return true
    }

    /// Stores the last offset of each partition (it covers the messages before it). A partition revoked while the
    /// batch was in Redis is left to its new owner, which reads it again from the last commit.
    private func storeOffsets(of messages: [KafkaMessage]) {
        var lastOfPartition: [Int32: KafkaMessage] = [:]
        for message in messages {
            lastOfPartition[message.partition] = message
        }
        var revoked = 0
        for message in lastOfPartition.values {
            guard consumer.isStillAssigned(message) else {
                revoked += 1
                continue
            }
            do {
                try consumer.storeOffset(of: message)
            } catch {
                logger.warning("cannot store the consumer offset", metadata: ["error": "\(error)"])
            }
        }
        if revoked > 0 {
            logger.info("leaving events of partitions revoked meanwhile to their new owner", metadata: ["partitions": "\(revoked)"])
        }
    }

    /// Applies the events until each has an outcome that retrying cannot change and the writes reached the
    /// required replicas, starting from `firstAttempt` (all of them, already sent). Each event keeps the first
    /// definite outcome it got; after a replication shortfall every event is applied again so that the next `WAIT`
    /// covers it (an event already applied is then a conflict, which writes nothing). Nil if asked to stop first.
    private func apply(_ events: [Transfer], firstAttempt: CompletionsInFlight) -> [Result<CompletionOutcome, RepositoryError>]? {
        var outcomes = [Result<CompletionOutcome, RepositoryError>?](repeating: nil, count: events.count)
        var replicated = true
        var backoff = Duration.milliseconds(50)
        var pending: CompletionsInFlight? = firstAttempt
        while true {
            let attempt = events.indices.filter { !replicated || outcomes[$0]?.isRetryable != false }
            let batch = pending.map { $0.finish() } ?? repository.complete(attempt.map { events[$0] }, at: .now())
            pending = nil
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

    /// Throws unless the dead-letter topic exists (it is never created by the service).
    func checkDeadLetterTopic(timeout: Duration) throws(DeadLetterError) {
        try deadLetters.checkTopic(timeout: timeout)
    }

    /// The topic that messages which can never be processed go to.
    var deadLetterTopic: String { deadLetters.topic }

    /// Parks a message that can never be processed in the dead-letter topic; retried until Kafka confirms it. While
    /// the topic does not exist the message waits (the consumer with it), said once at error level.
    private func deadLetter(_ message: KafkaMessage, reason: String) -> Bool {
        logger.error(
            "dead-lettering a message that cannot be processed",
            metadata: ["partition": "\(message.partition)", "offset": "\(message.offset)", "reason": "\(reason)", "dlq": "\(deadLetters.topic)"]
        )
        var reportedMissingTopic = false
        let sent: Void? = retryingUntilStopped("dead-letter a message", count: 1, isQuiet: { reportedMissingTopic }) { () throws(DeadLetterError) in
            do throws(DeadLetterError) {
                try deadLetters.deadLetter(message, reason: reason, timeout: .seconds(5))
            } catch {
                if case .topicMissing(let topic) = error, !reportedMissingTopic {
                    reportedMissingTopic = true
                    logger.error(
                        "the dead-letter topic does not exist: this message, and the consumer with it, waits until it is created (readiness fails meanwhile)",
                        metadata: ["dlq": "\(topic)", "partition": "\(message.partition)", "offset": "\(message.offset)"]
                    )
                }
                throw error
            }
        }
        if reportedMissingTopic && sent != nil {
            logger.notice("the dead-letter topic exists now; the waiting message is parked there", metadata: ["dlq": "\(deadLetters.topic)"])
        }
        guard sent != nil else { return false }
        metrics.deadLettered.increment()
        metrics.recordEvent(outcome: "dead_lettered", duration: .zero)
        return true
    }

    /// Runs `attempt` until it succeeds, backing off between failures (a dependency is down); nil if asked to
    /// stop first. Each failure is a warning, or debug while `isQuiet` (the failure was already explained).
    private func retryingUntilStopped<Value, Failure: Error>(
        _ action: String, count: Int, isQuiet: () -> Bool = { false }, _ attempt: () throws(Failure) -> Value
    ) -> Value? {
        var backoff = Duration.milliseconds(50)
        while true {
            do {
                return try attempt()
            } catch {
                logger.log(
                    level: isQuiet() ? .debug : .warning, "cannot \(action) yet; retrying",
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
    /// A failure that may pass (Redis away or refusing for now, a lost reply): the event is applied again. The others
    /// are about the event itself (it can never be applied) and send it to the dead-letter topic.
    var isRetryable: Bool {
        guard case .failure(let error) = self else { return false }
        switch error {
        case .unavailable, .authenticationFailed, .outcomeUnknown, .notReplicated, .nothingStored: return true
        case .unreadableRecord, .invalidEvent, .unexpectedReply: return false
        }
    }
}
