import Foundation
import KafkaClient
import Logging
import Synchronization
import Transfers

/// The background consumer: reads transfer events and applies the versioned update to Redis, at least once.
///
/// Runs on its own Dispatch queue. A message's offset is stored for commit only after its update succeeded, so a
/// crash replays it, which the version check makes harmless. Redis being down is retried with backoff, never
/// skipped; a message that is not a transfer event is logged and skipped.
public final class TransferProcessor: Sendable {
    private let consumer: ConsumerBox
    private let repository: TransferRepository
    private let logger: Logger
    private let queue = DispatchQueue(label: "transfer-processor")
    private let stopRequested = Atomic<Bool>(false)
    private let finished = DispatchGroup()

    /// A processor subscribed to `topic` in the configured consumer group.
    public init(
        topic: String, consumerConfiguration: KafkaConsumerConfiguration, repository: TransferRepository, logger: Logger
    ) throws(KafkaError) {
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
        consumer.close()
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
            guard process(message) else { return }  // stopping before the update succeeded: it will be redelivered
            do {
                try consumer.storeOffset(of: message)
            } catch {
                logger.warning("cannot store the consumer offset", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Applies one message; false only when asked to stop while Redis was still failing.
    private func process(_ message: KafkaMessage) -> Bool {
        let event: Transfer
        do {
            event = try Transfer(json: message.value)
        } catch {
            logger.error(
                "skipping a message that is not a transfer event",
                metadata: ["partition": "\(message.partition)", "offset": "\(message.offset)", "reason": "\(error)"]
            )
            return true
        }
        var backoff = Duration.milliseconds(50)
        while true {
            do {
                let outcome = try repository.complete(event)
                log(outcome, for: event)
                return true
            } catch .unreadableRecord(let id, let reason) {
                logger.error("skipping an event whose stored record is unreadable", metadata: ["transfer_id": "\(id)", "reason": "\(reason)"])
                return true
            } catch {
                logger.warning(
                    "cannot apply the event yet; retrying",
                    metadata: ["transfer_id": "\(event.id)", "error": "\(error)", "retry_in": "\(backoff)"]
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
    func close() { consumer.close() }
}
