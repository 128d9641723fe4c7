import Foundation
import KafkaClient
import Logging
import Synchronization
import Transfers

/// The background consumer: reads transfer events and applies the versioned update to Redis, at least once.
///
/// Runs on its own Dispatch queue. A message's offset is stored for commit only after its update succeeded, so a
/// crash replays it, which the version check makes harmless. Redis being down is retried with backoff, never
/// skipped; a message that can never be processed (not a transfer event, or its stored record is unreadable) is
/// sent to `<topic>.dlq` with the reason, and skipped once Kafka has it.
public final class TransferProcessor: Sendable {
    private let consumer: ConsumerBox
    private let deadLetters: DeadLetterPublisher
    private let repository: TransferRepository
    private let logger: Logger
    private let queue = DispatchQueue(label: "transfer-processor")
    private let stopRequested = Atomic<Bool>(false)
    private let finished = DispatchGroup()

    /// A processor subscribed to `topic` in the configured consumer group.
    public init(
        topic: String, consumerConfiguration: KafkaConsumerConfiguration, deadLetterProducerConfiguration: KafkaProducerConfiguration,
        repository: TransferRepository, logger: Logger
    ) throws(KafkaError) {
        deadLetters = try DeadLetterPublisher(sourceTopic: topic, producerConfiguration: deadLetterProducerConfiguration)
        let consumer = try KafkaConsumer(configuration: consumerConfiguration)
        try consumer.subscribe(topics: [topic])
        self.consumer = ConsumerBox(consumer)
        self.repository = repository
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

    /// Stops after the current event, commits the stored offsets and leaves the group.
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
            let message: KafkaMessage?
            do {
                message = try consumer.poll(timeout: .milliseconds(100))
            } catch {
                logger.warning("Kafka consumer error", metadata: ["error": "\(error)"])
                continue
            }
            guard let message else { continue }
            guard process(message) else { return }  // stopping before it was handled: it will be redelivered
            do {
                try consumer.storeOffset(of: message)
            } catch {
                logger.warning("cannot store the consumer offset", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Applies one message, or dead-letters it; false only when asked to stop before either succeeded.
    private func process(_ message: KafkaMessage) -> Bool {
        let event: Transfer
        do {
            event = try Transfer(json: message.value)
        } catch {
            return deadLetter(message, reason: "not a transfer event: \(error)")
        }
        return retryingUntilStopped("apply the event", transferID: event.id) { () throws(RepositoryError) -> Bool in
            do throws(RepositoryError) {
                log(try repository.complete(event, at: .now()), for: event)
                return true
            } catch .unreadableRecord(_, let reason) {
                return deadLetter(message, reason: "the stored record of transfer \(event.id) is unreadable: \(reason)")
            }
        }
    }

    /// Parks a message that can never be processed in the dead-letter topic; retried until Kafka confirms it.
    private func deadLetter(_ message: KafkaMessage, reason: String) -> Bool {
        logger.error(
            "dead-lettering a message that cannot be processed",
            metadata: ["partition": "\(message.partition)", "offset": "\(message.offset)", "reason": "\(reason)", "dlq": "\(deadLetters.topic)"]
        )
        return retryingUntilStopped("dead-letter the message", transferID: nil) { () throws(KafkaError) -> Bool in
            try deadLetters.deadLetter(message, reason: reason, timeout: .seconds(5))
            return true
        }
    }

    /// Runs `attempt` until it succeeds, backing off between failures (a dependency is down); false if asked to
    /// stop first.
    private func retryingUntilStopped<Failure: Error>(
        _ action: String, transferID: TransferID?, _ attempt: () throws(Failure) -> Bool
    ) -> Bool {
        var backoff = Duration.milliseconds(50)
        while true {
            do {
                return try attempt()
            } catch {
                logger.warning(
                    "cannot \(action) yet; retrying",
                    metadata: ["transfer_id": "\(transferID.map(\.rawValue) ?? "-")", "error": "\(error)", "retry_in": "\(backoff)"]
                )
            }
            guard sleep(backoff) else { return false }
            backoff = min(backoff * 2, .seconds(2))
        }
    }

    /// Sleeps in short steps so a stop request is noticed; false if one came.
    private func sleep(_ duration: Duration) -> Bool {
        var remaining = duration
        while remaining > .zero {
            if isStopping { return false }
            let step = min(remaining, .milliseconds(50))
            Thread.sleep(forTimeInterval: Double(step.components.attoseconds) / 1e18 + Double(step.components.seconds))
            remaining -= step
        }
        return !isStopping
    }

    private func log(_ outcome: CompletionOutcome, for event: Transfer) {
        let metadata: Logger.Metadata = ["transfer_id": "\(event.id)", "version": "\(event.version + 1)"]
        switch outcome {
        case .completed:
            logger.info("transfer completed", metadata: metadata)
        case .conflict(let storedVersion):
            logger.notice(
                "version conflict: event skipped",
                metadata: ["transfer_id": "\(event.id)", "event_version": "\(event.version)", "stored_version": "\(storedVersion)"]
            )
        case .recreated:
            logger.warning("transfer was not in Redis: recreated from its event as completed", metadata: metadata)
        }
    }
}

/// The consumer, used only from the processor's queue (and by `close` after that queue has finished).
private final class ConsumerBox: @unchecked Sendable {
    private let consumer: KafkaConsumer

    init(_ consumer: KafkaConsumer) {
        self.consumer = consumer
    }

    func poll(timeout: Duration) throws(KafkaError) -> KafkaMessage? { try consumer.poll(timeout: timeout) }
    func storeOffset(of message: KafkaMessage) throws(KafkaError) { try consumer.storeOffset(of: message) }
    func commit() throws(KafkaError) { try consumer.commit() }
    func close() { consumer.close() }
}
