import Dispatch
import KafkaClient
import Logging
import Synchronization
import Transfers
#if canImport(Glibc)
import Glibc
#endif

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
    private let producer: ReplaceableProducer
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
        producer = try ReplaceableProducer(
            configuration: configuration,
            onDeliveryReports: { [repository, metrics, logger] reports in
                OutboxPublisher.handle(reports, repository: repository, delivery: delivery, metrics: metrics, logger: logger)
            },
            metrics: metrics, logger: logger
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
        try producer.current().checkClusterReachable(timeout: timeout)
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
            try producer.current().send(topic: topic, key: key.map { Array($0.utf8) }, value: event, waitForRoom: false)
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

/// The outbox's Kafka producer, replaced by a new one when librdkafka reports a fatal error: an idempotent
/// producer that lost track of its sequence numbers takes nothing more, and would otherwise leave every new event to
/// the outbox's resends, which fail the same way. What the old producer still held gets failed delivery reports
/// (the entries stay in the outbox and are sent again once their lease runs out).
private final class ReplaceableProducer: Sendable {
    private let configuration: KafkaProducerConfiguration
    private let onDeliveryReports: @Sendable ([KafkaDeliveryReport]) -> Void
    private let metrics: ServiceMetrics
    private let logger: Logger
    private let producer = Mutex<KafkaProducer?>(nil)
    /// Replacements run here, off the failed producer's poll thread, which its shutdown joins.
    private let replacementQueue = DispatchQueue(label: "outbox-producer-replacement")
    private let replacing = Atomic<Bool>(false)
    private let isShutDown = Atomic<Bool>(false)

    init(
        configuration: KafkaProducerConfiguration, onDeliveryReports: @escaping @Sendable ([KafkaDeliveryReport]) -> Void,
        metrics: ServiceMetrics, logger: Logger
    ) throws(KafkaError) {
        self.configuration = configuration
        self.onDeliveryReports = onDeliveryReports
        self.metrics = metrics
        self.logger = logger
        let first = try makeProducer()
        producer.withLock { $0 = first }
    }

    /// The producer to use now; a caller holding one that gets replaced meanwhile sees its sends fail (the outbox
    /// resends those events).
    func current() throws(KafkaError) -> KafkaProducer {
        guard let current = producer.withLock({ $0 }) else { throw KafkaError(code: -172, name: "_STATE", message: "the outbox producer is shut down") }
        return current
    }

    func shutdown(timeout: Duration) {
        isShutDown.store(true, ordering: .relaxed)
        replacementQueue.sync {}  // lets a replacement in progress finish
        producer.withLock { producer in defer { producer = nil }; return producer }?.shutdown(timeout: timeout)
    }

    private func makeProducer() throws(KafkaError) -> KafkaProducer {
        try KafkaProducer(configuration: configuration, onDeliveryReports: onDeliveryReports, onError: { [weak self] error in
            self?.handle(error)
        })
    }

    /// Runs on the producer's poll thread.
    private func handle(_ error: KafkaError) {
        metrics.recordDependencyError("kafka")
        guard error.isFatal else {
            logger.warning("Kafka producer error", metadata: ["error": "\(error)"])
            return
        }
        logger.error("Kafka producer failed fatally; replacing it with a new one", metadata: ["error": "\(error)"])
        guard !replacing.exchange(true, ordering: .acquiringAndReleasing) else { return }
        replacementQueue.async { [self] in replace() }
    }

    private func replace() {
        defer { replacing.store(false, ordering: .releasing) }
        var backoffMilliseconds: UInt32 = 100
        while !isShutDown.load(ordering: .relaxed) {
            do {
                let fresh = try makeProducer()
                let failed = producer.withLock { producer in defer { producer = fresh }; return producer }
                // Nothing more gets through the failed one: fail what it holds now, so the outbox resends it.
                failed?.shutdown(timeout: .zero)
                metrics.kafkaProducersReplaced.increment()
                logger.notice("new Kafka producer in place of the failed one; the outbox resends what the old one had not delivered")
                return
            } catch {
                logger.error("cannot create a new Kafka producer yet; retrying", metadata: ["error": "\(error)", "retry_in_ms": "\(backoffMilliseconds)"])
                usleep(backoffMilliseconds * 1000)
                backoffMilliseconds = min(backoffMilliseconds * 2, 5_000)
            }
        }
    }
}
