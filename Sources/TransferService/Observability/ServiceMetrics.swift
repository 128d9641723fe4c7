import CoreMetrics
import Prometheus
import Synchronization

/// The service's Prometheus metrics, made through swift-metrics and exposed by `GET /metrics`.
///
/// Names follow Prometheus conventions (`_total` counters, `_seconds` histograms). Dimensions are bounded sets
/// (route templates, methods, statuses, outcomes), never ids.
public final class ServiceMetrics: Sendable {
    private let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    /// Metric handles by label and dimensions: making one through the factory sanitizes names and searches the
    /// registry, far too slow for every request, so each is made once.
    private let requestMetrics = Mutex<[RequestKey: (count: CoreMetrics.Counter, duration: CoreMetrics.Timer)]>([:])
    private let eventCounters = Mutex<[String: CoreMetrics.Counter]>([:])
    private let dependencyErrorCounters = Mutex<[String: CoreMetrics.Counter]>([:])
    private let consumerLagGauges = Mutex<[Int32: CoreMetrics.Gauge]>([:])
    private let consumerGroupLagGauges = Mutex<[Int32: CoreMetrics.Gauge]>([:])

    private struct RequestKey: Hashable {
        var route: String
        var method: String
        var status: Int
    }

    let transfersCreated: CoreMetrics.Counter
    let transfersCompleted: CoreMetrics.Counter
    let transfersRecreated: CoreMetrics.Counter
    let transfersCancelled: CoreMetrics.Counter
    let versionConflicts: CoreMetrics.Counter
    let deadLettered: CoreMetrics.Counter
    let outboxDepth: CoreMetrics.Gauge
    let eventProcessingDuration: CoreMetrics.Timer
    /// Partition positions reset because their offset was no longer in the log: the events in between were skipped.
    let consumerOffsetResets: CoreMetrics.Counter
    /// Kafka producers replaced after a fatal error.
    let kafkaProducersReplaced: CoreMetrics.Counter

    /// Metrics recorded in a registry of their own.
    public init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
            .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5),
        ]
        self.factory = factory
        transfersCreated = CoreMetrics.Counter(label: "transfers_created_total", factory: factory)
        transfersCompleted = CoreMetrics.Counter(label: "transfers_completed_total", factory: factory)
        transfersRecreated = CoreMetrics.Counter(label: "transfers_recreated_total", factory: factory)
        transfersCancelled = CoreMetrics.Counter(label: "transfers_cancelled_total", factory: factory)
        versionConflicts = CoreMetrics.Counter(label: "transfer_version_conflicts_total", factory: factory)
        deadLettered = CoreMetrics.Counter(label: "transfer_events_dead_lettered_total", factory: factory)
        outboxDepth = CoreMetrics.Gauge(label: "transfer_outbox_depth", factory: factory)
        eventProcessingDuration = CoreMetrics.Timer(label: "consumer_event_processing_duration_seconds", factory: factory)
        consumerOffsetResets = CoreMetrics.Counter(label: "consumer_offset_resets_total", factory: factory)
        kafkaProducersReplaced = CoreMetrics.Counter(label: "kafka_producers_replaced_total", factory: factory)
    }

    /// Counts one HTTP request and records its duration.
    func recordRequest(route: String, method: String, status: Int, duration: Duration) {
        let key = RequestKey(route: route, method: method, status: status)
        let metrics = requestMetrics.withLock { cache in
            if let cached = cache[key] { return cached }
            let made = (
                count: CoreMetrics.Counter(
                    label: "http_requests_total", dimensions: [("route", route), ("method", method), ("status", String(status))],
                    factory: factory
                ),
                duration: CoreMetrics.Timer(
                    label: "http_request_duration_seconds", dimensions: [("route", route), ("method", method)], factory: factory
                )
            )
            cache[key] = made
            return made
        }
        metrics.count.increment()
        metrics.duration.recordNanoseconds(duration.nanoseconds)
    }

    /// Counts one consumed event by outcome (completed, conflict, recreated, dead_lettered).
    func recordEvent(outcome: String, duration: Duration) {
        counter(in: eventCounters, label: "consumer_events_processed_total", dimension: ("outcome", outcome)).increment()
        eventProcessingDuration.recordNanoseconds(duration.nanoseconds)
    }

    /// Counts a failed call to a dependency ("redis" or "kafka").
    func recordDependencyError(_ dependency: String) {
        counter(in: dependencyErrorCounters, label: "dependency_errors_total", dimension: ("dependency", dependency)).increment()
    }

    /// Sets how many events of `partition` wait for this instance's consumer (0 for a partition it no longer has).
    func recordConsumerLag(partition: Int32, events: Int64) {
        partitionGauge(in: consumerLagGauges, label: "consumer_lag", partition: partition).record(events)
    }

    /// Sets how many events of `partition` come after the group's committed offset, whoever owns it.
    func recordConsumerGroupLag(partition: Int32, events: Int64) {
        partitionGauge(in: consumerGroupLagGauges, label: "consumer_group_lag", partition: partition).record(events)
    }

    private func partitionGauge(
        in cache: borrowing Mutex<[Int32: CoreMetrics.Gauge]>, label: String, partition: Int32
    ) -> CoreMetrics.Gauge {
        cache.withLock { gauges in
            if let gauge = gauges[partition] { return gauge }
            let gauge = CoreMetrics.Gauge(label: label, dimensions: [("partition", String(partition))], factory: factory)
            gauges[partition] = gauge
            return gauge
        }
    }

    private func counter(
        in cache: borrowing Mutex<[String: CoreMetrics.Counter]>, label: String, dimension: (name: String, value: String)
    ) -> CoreMetrics.Counter {
        cache.withLock { counters in
            if let counter = counters[dimension.value] { return counter }
            let counter = CoreMetrics.Counter(label: label, dimensions: [(dimension.name, dimension.value)], factory: factory)
            counters[dimension.value] = counter
            return counter
        }
    }

    /// Everything in the Prometheus text exposition format.
    public func exposition() -> [UInt8] {
        registry.emitToBuffer()
    }
}

extension Duration {
    /// The duration in whole nanoseconds (saturating), as swift-metrics' timers take it.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds.multipliedReportingOverflow(by: 1_000_000_000).overflow
            ? .max : seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
