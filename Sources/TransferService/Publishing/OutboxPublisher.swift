import Dispatch
import KafkaClient
import Logging
import Synchronization
import Transfers
#if canImport(Glibc)
import Glibc
#endif

/// Publishes transfer events to Kafka from the Redis outbox, so that a transfer answered 202 is never lost.
///
/// A new transfer's event is sent at once (`publish`). Its outbox entry is removed only when Kafka's delivery
/// report confirms it; an entry still there when its lease runs out (a failed delivery, Kafka unreachable, or a
/// crash before the report) is claimed by the sweeper of any instance and sent again. Resending is harmless: the
/// consumer's version check turns a duplicate into a logged conflict.
public final class OutboxPublisher: Sendable {
    /// How long a sent entry is left alone before it is considered lost and sent again.
    public static let leaseMilliseconds: Int64 = 5_000
    /// How often the sweeper looks for due entries.
    static let sweepInterval: DispatchTimeInterval = .seconds(1)
    static let sweepBatchSize = 500

    private let topic: String
    private let repository: TransferRepository
    private let producer: ReplaceableProducer
    private let metrics: ServiceMetrics
    private let logger: Logger
    private let sweepQueue = DispatchQueue(label: "outbox-sweeper")
    private let isShutDown = Atomic<Bool>(false)

    /// A publisher sending to `topic` through a producer configured from `producerConfiguration`.
    public init(
        topic: String, producerConfiguration: KafkaProducerConfiguration, repository: TransferRepository,
        metrics: ServiceMetrics, logger: Logger
    ) throws(KafkaError) {
        self.topic = topic
        self.metrics = metrics
        self.repository = repository
        self.logger = logger
        producer = try ReplaceableProducer(
            configuration: producerConfiguration,
            onDeliveryReports: { [repository, metrics, logger] reports in
                OutboxPublisher.handle(reports, repository: repository, metrics: metrics, logger: logger)
            },
            metrics: metrics, logger: logger
        )
    }

    /// Sends a just-created transfer's event. A failure here is only logged: the outbox entry stays, and the
    /// sweeper sends it again once its lease runs out.
    public func publish(_ id: TransferID, json: String) {
        send(Array(json.utf8), key: id.rawValue)
    }

    /// Throws when no Kafka broker answers a metadata request within `timeout`.
    public func checkKafkaReachable(timeout: Duration) throws(KafkaError) {
        try producer.current().checkClusterReachable(timeout: timeout)
    }

    /// Starts the periodic sweep of due outbox entries.
    public func startSweeping() {
        sweepQueue.asyncAfter(deadline: .now() + Self.sweepInterval) { [self] in
            guard !isShutDown.load(ordering: .relaxed) else { return }
            sweep()
            startSweeping()
        }
    }

    /// Stops sweeping and waits up to `timeout` for outstanding deliveries (whose entries are then removed).
    public func shutdown(timeout: Duration) {
        isShutDown.store(true, ordering: .relaxed)
        sweepQueue.sync {}  // lets a sweep in progress finish
        producer.shutdown(timeout: timeout)
    }

    /// Sends every entry that is due, in batches, until none is left; then reports the outbox depth.
    func sweep() {
        defer {
            if let depth = try? repository.outboxDepth() { metrics.outboxDepth.record(depth) }
        }
        while true {
            let entries: [[UInt8]]
            do {
                entries = try repository.claimDueOutboxEntries(
                    now: .now(), leaseMilliseconds: Self.leaseMilliseconds, limit: Self.sweepBatchSize
                )
            } catch {
                logger.warning("cannot read the outbox", metadata: ["error": "\(error)"])
                return
            }
            guard !entries.isEmpty else { return }
            logger.info("resending outbox entries", metadata: ["count": "\(entries.count)"])
            for entry in entries {
                // The entry is the event JSON; its transfer id is the message key.
                let key = (try? Transfer(json: entry))?.id.rawValue
                // Kafka is not taking events: stop here, the rest stays leased and comes round again.
                guard send(entry, key: key) else { return }
            }
            if entries.count < Self.sweepBatchSize { return }
        }
    }

    /// Hands the event to the producer; false when it would not take it.
    @discardableResult
    private func send(_ event: [UInt8], key: String?) -> Bool {
        do {
            // No waiting for room in a full queue (Kafka has been away a while): the caller may be an HTTP request,
            // and the outbox sends the event again later anyway.
            try producer.current().send(topic: topic, key: key.map { Array($0.utf8) }, value: event, waitForRoom: false)
            return true
        } catch {
            // Debug, not warning: in an outage this happens for every transfer; the producer's own errors, the
            // dependency error counter and the outbox depth already tell the operator.
            logger.debug(
                "cannot hand the event to Kafka yet; the outbox will resend it",
                metadata: ["transfer_id": "\(key ?? "?")", "error": "\(error)"]
            )
            metrics.recordDependencyError("kafka")
            return false
        }
    }

    /// Removes the outbox entries of delivered events, in one Redis call per batch of reports.
    private static func handle(
        _ reports: [KafkaDeliveryReport], repository: TransferRepository, metrics: ServiceMetrics, logger: Logger
    ) {
        var delivered: [[UInt8]] = []
        delivered.reserveCapacity(reports.count)
        for report in reports {
            if let error = report.error {
                metrics.recordDependencyError("kafka")
                logger.warning(
                    "Kafka did not take the event; the outbox will resend it",
                    metadata: ["transfer_id": "\(report.key.map { String(decoding: $0, as: UTF8.self) } ?? "?")", "error": "\(error)"]
                )
            } else {
                delivered.append(report.value)
            }
        }
        do {
            try repository.removeOutboxEntries(delivered)
        } catch {
            // The entries stay and are sent again later; the consumer's version check absorbs the duplicates.
            logger.warning("cannot remove delivered events from the outbox", metadata: ["error": "\(error)"])
        }
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
