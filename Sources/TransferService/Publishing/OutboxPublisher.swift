import Dispatch
import KafkaClient
import Logging
import Synchronization
import Transfers

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
    private let producer: KafkaProducer
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
        producer = try KafkaProducer(
            configuration: producerConfiguration,
            onDeliveryReports: { [repository, metrics, logger] reports in
                OutboxPublisher.handle(reports, repository: repository, metrics: metrics, logger: logger)
            },
            onError: { [logger, metrics] error in
                logger.warning("Kafka producer error", metadata: ["error": "\(error)"])
                metrics.recordDependencyError("kafka")
            }
        )
    }

    /// Sends a just-created transfer's event. A failure here is only logged: the outbox entry stays, and the
    /// sweeper sends it again once its lease runs out.
    public func publish(_ id: TransferID, json: String) {
        send(Array(json.utf8), key: id.rawValue)
    }

    /// Throws when no Kafka broker answers a metadata request within `timeout`.
    public func checkKafkaReachable(timeout: Duration) throws(KafkaError) {
        try producer.checkClusterReachable(timeout: timeout)
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
            try producer.send(topic: topic, key: key.map { Array($0.utf8) }, value: event, waitForRoom: false)
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
