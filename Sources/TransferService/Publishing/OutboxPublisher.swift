import KafkaClient
import Logging
import Synchronization
import Transfers

/// Publishes transfer events to Kafka, so that a transfer answered 202 is never lost.
///
/// A new transfer's event is sent at once (`publish`). Its outbox entry (written with the transfer) is removed
/// only when Kafka's delivery report confirms it; an entry still there when its lease runs out (a failed
/// delivery, Kafka unreachable, or a crash before the report) is claimed by the `Sweeper` of some instance and
/// sent again. Resending is harmless: the consumer's version check turns a duplicate into a logged conflict.
public final class OutboxPublisher: Sendable {
    /// How long the producer keeps trying to deliver an event before reporting failure.
    public static let deliveryTimeout: Duration = .seconds(15)
    /// How long a sent entry is left alone before it is considered lost and sent again: longer than the delivery
    /// timeout, so an entry is never queued again while its first copy may still be delivered.
    public static let leaseMilliseconds: Int64 = 20_000
    /// How long the publisher may keep failing to deliver anything it sent before readiness fails.
    static let deliveryStallLimit: Duration = .seconds(30)

    private let topic: String
    private let repository: TransferRepository
    private let producer: KafkaProducer
    private let metrics: ServiceMetrics
    private let logger: Logger
    private let delivery: DeliveryTracker

    /// A publisher sending to `topic` through a producer configured from `producerConfiguration`.
    public init(
        topic: String, producerConfiguration: KafkaProducerConfiguration, repository: TransferRepository,
        metrics: ServiceMetrics, logger: Logger
    ) throws(KafkaError) {
        self.topic = topic
        self.metrics = metrics
        self.repository = repository
        self.logger = logger
        let delivery = DeliveryTracker()
        self.delivery = delivery
        var configuration = producerConfiguration
        configuration.deliveryTimeout = Self.deliveryTimeout
        producer = try KafkaProducer(
            configuration: configuration,
            onDeliveryReports: { [repository, metrics, logger] reports in
                OutboxPublisher.handle(reports, repository: repository, delivery: delivery, metrics: metrics, logger: logger)
            },
            onError: { [logger, metrics] error in
                logger.warning("Kafka producer error", metadata: ["error": "\(error)"])
                metrics.recordDependencyError("kafka")
            }
        )
    }

    /// Sends a transfer's event (at creation, or again by the sweeper). A failure here is only logged: the
    /// outbox entry or the pending index keeps the transfer, and the sweeper sends it again later.
    /// Returns false when the producer would not take it (Kafka has been away a while).
    @discardableResult
    public func publish(_ id: TransferID, json: String) -> Bool {
        send(Array(json.utf8), key: id.rawValue)
    }

    /// Sends an outbox entry again (the entry is the event JSON).
    func resend(_ entry: [UInt8]) -> Bool {
        // Its transfer id is the message key and picks the entry's outbox slot when it is removed.
        let key = (try? Transfer(json: entry))?.id.rawValue
        return send(entry, key: key)
    }

    /// Throws when no Kafka broker answers a metadata request within `timeout`.
    public func checkKafkaReachable(timeout: Duration) throws(KafkaError) {
        try producer.checkClusterReachable(timeout: timeout)
    }

    /// Throws when events have been sent for longer than `deliveryStallLimit` without any being delivered.
    func checkDelivering() throws(KafkaError) {
        if let stalled = delivery.stalledFor(), stalled > Self.deliveryStallLimit {
            throw KafkaError(code: -192, name: "_MSG_TIMED_OUT", message: "no event delivered for \(stalled) while events wait")
        }
    }

    /// Waits up to `timeout` for outstanding deliveries (whose entries are then removed), then stops the producer.
    public func shutdown(timeout: Duration) {
        producer.shutdown(timeout: timeout)
    }

    /// Hands the event to the producer; false when it would not take it.
    private func send(_ event: [UInt8], key: String?) -> Bool {
        delivery.sent()
        do {
            // No waiting for room in a full queue (Kafka has been away a while): the caller may be an HTTP request,
            // and the sweeper sends the event again later anyway.
            try producer.send(topic: topic, key: key.map { Array($0.utf8) }, value: event, waitForRoom: false)
            return true
        } catch {
            // Debug, not warning: in an outage this happens for every transfer; the producer's own errors, the
            // dependency error counter and the outbox age already tell the operator.
            logger.debug(
                "cannot hand the event to Kafka yet; the outbox will resend it",
                metadata: ["transfer_id": "\(key ?? "?")", "error": "\(error)"]
            )
            metrics.recordDependencyError("kafka")
            return false
        }
    }

    /// Removes the outbox entries of delivered events, in one Redis request per batch of reports.
    private static func handle(
        _ reports: [KafkaDeliveryReport], repository: TransferRepository, delivery: DeliveryTracker, metrics: ServiceMetrics,
        logger: Logger
    ) {
        var delivered: [(id: TransferID, event: [UInt8])] = []
        delivered.reserveCapacity(reports.count)
        for report in reports {
            let id = report.key.flatMap { TransferID(String(decoding: $0, as: UTF8.self)) }
            if let error = report.error {
                metrics.recordDependencyError("kafka")
                logger.warning(
                    "Kafka did not take the event; the outbox will resend it",
                    metadata: ["transfer_id": "\(id.map(\.rawValue) ?? "?")", "error": "\(error)"]
                )
            } else if let id {
                delivered.append((id, report.value))
            }
        }
        if !delivered.isEmpty { delivery.delivered() }
        repository.removeOutboxEntries(delivered) { failure in
            // The entries stay and are sent again later; the consumer's version check absorbs the duplicates.
            if let failure {
                logger.warning("cannot remove delivered events from the outbox", metadata: ["error": "\(failure)"])
            }
        }
    }
}

/// Whether the producer delivers what it is given: the instant of the first send since the last delivery.
private final class DeliveryTracker: Sendable {
    /// Nanoseconds on the continuous clock of the first send not followed by any delivery; 0: none waiting.
    private let firstUndeliveredSend = Atomic<Int64>(0)
    private let origin = ContinuousClock.now

    func sent() {
        _ = firstUndeliveredSend.compareExchange(expected: 0, desired: max(1, elapsedNanoseconds()), ordering: .relaxed)
    }

    func delivered() {
        firstUndeliveredSend.store(0, ordering: .relaxed)
    }

    /// How long sends have gone without a delivery; nil when nothing waits.
    func stalledFor() -> Duration? {
        let since = firstUndeliveredSend.load(ordering: .relaxed)
        return since == 0 ? nil : .nanoseconds(elapsedNanoseconds() - since)
    }

    private func elapsedNanoseconds() -> Int64 {
        (ContinuousClock.now - origin).nanoseconds
    }
}
