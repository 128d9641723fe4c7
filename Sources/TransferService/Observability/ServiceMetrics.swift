import CoreMetrics
import Prometheus
import Synchronization

/// The service's Prometheus metrics, exposed by `GET /metrics`.
///
/// Nothing recorded per request or per event takes a lock shared across threads: the labeled and timed metrics
/// (requests, their durations, consumer outcomes, dependency errors) are `MetricFamily` tables of atomic counters
/// and histograms, and the plain counters and gauges are swift-prometheus ones, which are atomics too. To add a
/// plain counter or gauge, make it through `factory` in `init` like `transfersCreated`; to add a labeled or timed
/// one, add a `MetricFamily` and render it in `exposition()`.
///
/// Names follow Prometheus conventions (`_total` counters, `_seconds` histograms). Dimensions are bounded sets
/// (route templates, methods, statuses, outcomes), never ids.
public final class ServiceMetrics: Sendable {
    private let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    /// Gauges by label value, made on first sight of the value (a Redis primary, a partition): rare events, so a
    /// lock is fine here.
    private let redisUsedMemory = Mutex<[String: CoreMetrics.Gauge]>([:])
    private let consumerLagGauges = Mutex<[String: CoreMetrics.Gauge]>([:])
    private let consumerGroupLagGauges = Mutex<[String: CoreMetrics.Gauge]>([:])

    private struct RequestKey: Hashable, Sendable {
        var route: String
        var method: String
        var status: Int
    }

    private struct RouteKey: Hashable, Sendable {
        var route: String
        var method: String
    }

    /// Bucket bounds of every duration histogram.
    static let durationBuckets: [Duration] = [
        .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
        .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5),
    ]

    private let requests = MetricFamily<RequestKey, AtomicCounter>(
        name: "http_requests_total", help: "HTTP requests answered, by route template, method and status."
    ) { AtomicCounter() }
    private let requestDurations = MetricFamily<RouteKey, AtomicHistogram>(
        name: "http_request_duration_seconds", help: "Time from request to response."
    ) { AtomicHistogram(bounds: ServiceMetrics.durationBuckets) }
    private let consumedEvents = MetricFamily<String, AtomicCounter>(
        name: "consumer_events_processed_total", help: "Consumed events by outcome."
    ) { AtomicCounter() }
    private let dependencyErrors = MetricFamily<String, AtomicCounter>(
        name: "dependency_errors_total", help: "Failed calls to a dependency."
    ) { AtomicCounter() }

    let transfersCreated: CoreMetrics.Counter
    let transfersCompleted: CoreMetrics.Counter
    let transfersRecreated: CoreMetrics.Counter
    let transfersCancelled: CoreMetrics.Counter
    let versionConflicts: CoreMetrics.Counter
    let deadLettered: CoreMetrics.Counter
    let outboxOldestDueAge: CoreMetrics.Gauge
    let outboxResent: CoreMetrics.Counter
    let transfersReconciled: CoreMetrics.Counter
    let eventProcessingDuration = AtomicHistogram(bounds: ServiceMetrics.durationBuckets)
    /// Partition positions reset because their offset was no longer in the log: the events in between were skipped.
    let consumerOffsetResets: CoreMetrics.Counter
    /// Kafka producers replaced after a fatal error.
    let kafkaProducersReplaced: CoreMetrics.Counter
    /// Readiness checks run (concurrent `/readyz` probes share one).
    let readinessChecks: CoreMetrics.Counter

    /// Metrics recorded in a registry of their own.
    public init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = Self.durationBuckets
        self.factory = factory
        transfersCreated = CoreMetrics.Counter(label: "transfers_created_total", factory: factory)
        transfersCompleted = CoreMetrics.Counter(label: "transfers_completed_total", factory: factory)
        transfersRecreated = CoreMetrics.Counter(label: "transfers_recreated_total", factory: factory)
        transfersCancelled = CoreMetrics.Counter(label: "transfers_cancelled_total", factory: factory)
        versionConflicts = CoreMetrics.Counter(label: "transfer_version_conflicts_total", factory: factory)
        deadLettered = CoreMetrics.Counter(label: "transfer_events_dead_lettered_total", factory: factory)
        outboxOldestDueAge = CoreMetrics.Gauge(label: "transfer_outbox_oldest_due_age_seconds", factory: factory)
        outboxResent = CoreMetrics.Counter(label: "transfer_outbox_resent_total", factory: factory)
        transfersReconciled = CoreMetrics.Counter(label: "transfers_reconciled_total", factory: factory)
        consumerOffsetResets = CoreMetrics.Counter(label: "consumer_offset_resets_total", factory: factory)
        kafkaProducersReplaced = CoreMetrics.Counter(label: "kafka_producers_replaced_total", factory: factory)
        readinessChecks = CoreMetrics.Counter(label: "readiness_checks_total", factory: factory)
    }

    /// Records how much memory a Redis primary uses (`used_memory` of `INFO memory`), by node.
    func recordRedisUsedMemory(node: String, bytes: Int) {
        gauge(in: redisUsedMemory, label: "redis_used_memory_bytes", dimension: ("node", node)).record(bytes)
    }

    /// Counts one HTTP request and records its duration.
    func recordRequest(route: String, method: String, status: Int, duration: Duration) {
        requests.series(
            RequestKey(route: route, method: method, status: status),
            labels: [("route", route), ("method", method), ("status", String(status))]
        ).increment()
        requestDurations.series(RouteKey(route: route, method: method), labels: [("route", route), ("method", method)])
            .record(duration)
    }

    /// Counts one consumed event by outcome (completed, conflict, recreated, dead_lettered).
    func recordEvent(outcome: String, duration: Duration) {
        consumedEvents.series(outcome, labels: [("outcome", outcome)]).increment()
        eventProcessingDuration.record(duration)
    }

    /// Counts a failed call to a dependency ("redis" or "kafka").
    func recordDependencyError(_ dependency: String) {
        dependencyErrors.series(dependency, labels: [("dependency", dependency)]).increment()
    }

    /// Sets how many events of `partition` wait for this instance's consumer (0 for a partition it no longer has).
    func recordConsumerLag(partition: Int32, events: Int64) {
        gauge(in: consumerLagGauges, label: "consumer_lag", dimension: ("partition", String(partition))).record(events)
    }

    /// Sets how many events of `partition` come after the group's committed offset, whoever owns it.
    func recordConsumerGroupLag(partition: Int32, events: Int64) {
        gauge(in: consumerGroupLagGauges, label: "consumer_group_lag", dimension: ("partition", String(partition))).record(events)
    }

    private func gauge(
        in cache: borrowing Mutex<[String: CoreMetrics.Gauge]>, label: String, dimension: (name: String, value: String)
    ) -> CoreMetrics.Gauge {
        cache.withLock { gauges in
            if let gauge = gauges[dimension.value] { return gauge }
            let gauge = CoreMetrics.Gauge(label: label, dimensions: [(dimension.name, dimension.value)], factory: factory)
            gauges[dimension.value] = gauge
            return gauge
        }
    }

    /// Everything in the Prometheus text exposition format.
    public func exposition() -> [UInt8] {
        var text = ""
        requests.render(into: &text)
        requestDurations.render(into: &text)
        consumedEvents.render(into: &text)
        text += "# TYPE consumer_event_processing_duration_seconds histogram\n"
        eventProcessingDuration.render(name: "consumer_event_processing_duration_seconds", labels: "", into: &text)
        dependencyErrors.render(into: &text)
        return registry.emitToBuffer() + Array(text.utf8)
    }
}
