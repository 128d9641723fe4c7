import Dispatch
import Logging
import RedisClient
import Synchronization
import Transfers

/// The background walk that makes sure no transfer is stuck in `initiated`: on a timer it walks the slots of
/// every Redis primary (and samples each primary's memory use), resends the outbox entries whose lease ran out (Kafka was down, an instance crashed
/// before the delivery report), and publishes again the event of every transfer still pending after the
/// reconcile wait (an event lost past Kafka's retention, skipped by a consumer, or whose outbox entry was lost).
/// The events go out at the transfer's current version, which the version rule makes harmless to repeat.
///
/// Every instance runs one; a lease per primary lets one instance at a time walk a primary, and each claim leases
/// its entries, so no work is done twice. The walk costs a few Redis calls per 256 slots, whatever the number of
/// transfers stored.
final class Sweeper: Sendable {
    /// Slots claimed in one script call: a bound on how long the call holds Redis (about 1 ms).
    static let slotsPerCall = 256
    /// The most entries of each kind one call claims.
    static let claimLimit = 500

    private let repository: TransferRepository
    private let publisher: OutboxPublisher
    private let reconcileAfterMilliseconds: Int64
    private let interval: Duration
    private let holder: String
    private let metrics: ServiceMetrics
    private let logger: Logger
    private let queue = DispatchQueue(label: "sweeper")
    private let isStopped = Atomic<Bool>(false)

    /// A sweeper publishing through `publisher` transfers pending longer than `reconcileAfterMilliseconds`.
    init(
        repository: TransferRepository, publisher: OutboxPublisher, reconcileAfterMilliseconds: Int, metrics: ServiceMetrics,
        logger: Logger
    ) {
        self.repository = repository
        self.publisher = publisher
        self.reconcileAfterMilliseconds = Int64(reconcileAfterMilliseconds)
        // Often enough that a stuck transfer waits little beyond its reconcile wait, rarely enough to cost nothing.
        interval = min(.seconds(5), max(.milliseconds(250), .milliseconds(reconcileAfterMilliseconds / 4)))
        holder = TransferID.random().rawValue
        self.metrics = metrics
        self.logger = logger
    }

    /// Starts sweeping, first after one interval.
    func start() {
        queue.asyncAfter(deadline: .now() + .milliseconds(Int(interval.nanoseconds / 1_000_000))) { [self] in
            guard !isStopped.load(ordering: .relaxed) else { return }
            sweep()
            start()
        }
    }

    /// Stops sweeping, after the walk in progress.
    func stop() {
        isStopped.store(true, ordering: .relaxed)
        queue.sync {}
    }

    /// One walk over every primary this instance gets the lease of.
    func sweep() {
        let primaries: [RedisNodeDescription]
        do {
            primaries = try repository.redis.primaries()
        } catch {
            logger.warning("cannot learn the Redis primaries to sweep", metadata: ["error": "\(error)"])
            return
        }
        var oldestDueAge: Duration = .zero
        for primary in primaries {
            if let bytes = try? repository.usedMemory(on: primary.id) {
                metrics.recordRedisUsedMemory(node: primary.id.description, bytes: bytes)
            }
            do {
                // The lease lasts a little less than the interval, so the next walk is open to every instance.
                guard try repository.takeSweepLease(on: primary, holder: holder, milliseconds: interval.milliseconds * 9 / 10) else { continue }
                oldestDueAge = max(oldestDueAge, try sweep(primary))
            } catch {
                logger.warning("cannot sweep a Redis primary", metadata: ["node": "\(primary.id)", "error": "\(error)"])
            }
        }
        metrics.outboxOldestDueAge.record(oldestDueAge.seconds)
    }

    /// Walks one primary's slots; returns the age of the oldest outbox entry found due (since its creation).
    private func sweep(_ primary: RedisNodeDescription) throws(RepositoryError) -> Duration {
        var oldestDueAge: Duration = .zero
        let now = UnixMilliseconds.now()
        for range in primary.slots {
            for start in stride(from: range.lowerBound, through: range.upperBound, by: Self.slotsPerCall) {
                let slots = start...min(start + Self.slotsPerCall - 1, range.upperBound)
                let claims = try repository.claimDue(
                    on: primary.id, slots: slots, pendingAfterMilliseconds: reconcileAfterMilliseconds, limit: Self.claimLimit
                )
                if !claims.outboxEntries.isEmpty {
                    logger.info("resending outbox entries", metadata: ["count": "\(claims.outboxEntries.count)"])
                    metrics.outboxResent.increment(by: claims.outboxEntries.count)
                }
                for entry in claims.outboxEntries {
                    if let created = (try? Transfer(json: entry))?.createdAt.flatMap(UnixMilliseconds.init(rfc3339:)) {
                        oldestDueAge = max(oldestDueAge, .milliseconds(now.value - created.value))
                    }
                    // Kafka is not taking events: the rest stays leased and comes round again.
                    guard publisher.resend(entry) else { break }
                }
                try reconcile(claims.pendingIDs, claimedAt: claims.claimedAt)
            }
        }
        return oldestDueAge
    }

    /// Publishes again the events of claimed pending transfers that are still `initiated`, and schedules the next
    /// claim of each one Kafka took (see `nextClaim`).
    private func reconcile(_ ids: [TransferID], claimedAt: Int64) throws(RepositoryError) {
        guard !ids.isEmpty else { return }
        var published: [(id: TransferID, at: Int64)] = []
        for transfer in try repository.stillInitiated(ids) {
            logger.info(
                "transfer still initiated after the reconcile wait: publishing its event again",
                metadata: ["transfer_id": "\(transfer.id)", "version": "\(transfer.version)"]
            )
            metrics.transfersReconciled.increment()
            // Kafka is not taking events: the rest stay claimed for one reconcile wait and come round again.
            guard publisher.publish(transfer.id, json: transfer.json) else { break }
            let createdAt = transfer.createdAt.flatMap(UnixMilliseconds.init(rfc3339:))?.value
            published.append((transfer.id, Self.nextClaim(claimedAt: claimedAt, createdAt: createdAt, reconcileAfter: reconcileAfterMilliseconds)))
        }
        repository.postponeReconcile(published, reconcileAfterMilliseconds: reconcileAfterMilliseconds)
    }

    /// The longest wait between two republications of a pending transfer, in reconcile waits.
    static let longestRepublishWait: Int64 = 8

    /// When a transfer whose event was just published again is claimed next (Unix milliseconds): after as long as
    /// it has existed (so at about 1, 2, 4, 8... reconcile waits of age), at least one reconcile wait and at most
    /// `longestRepublishWait` of them. A transfer still pending is usually one whose event Kafka holds behind a
    /// consumer that is stopped or behind: a copy every reconcile wait would add a full copy of that backlog to
    /// Kafka each time, all for the consumer to skip as conflicts once it catches up. A transfer without a
    /// readable `created_at` (written by another producer) keeps the plain reconcile wait.
    static func nextClaim(claimedAt: Int64, createdAt: Int64?, reconcileAfter: Int64) -> Int64 {
        let age = createdAt.map { claimedAt - $0 } ?? 0
        return claimedAt + min(max(age, reconcileAfter), reconcileAfter * longestRepublishWait)
    }
}

extension Duration {
    /// Whole milliseconds.
    var milliseconds: Int64 { nanoseconds / 1_000_000 }
    /// Seconds as a floating-point number, for gauges.
    var seconds: Double { Double(nanoseconds) / 1e9 }
}
