import Synchronization

// Metrics recorded from many threads at once without a lock: counters and histogram buckets are atomics, and
// the series of a labeled family are found in a table that readers search without a lock. The Prometheus text is
// rendered only when `/metrics` is scraped.

/// A monotonically increasing count.
public final class AtomicCounter: Sendable {
    private let count = Atomic<Int>(0)

    /// A counter at zero.
    public init() {}

    /// Adds `amount` (one by default).
    public func increment(by amount: Int = 1) {
        count.wrappingAdd(amount, ordering: .relaxed)
    }

    /// The current count.
    public var value: Int { count.load(ordering: .relaxed) }
}

/// A histogram of durations with fixed bucket bounds; each observation is two relaxed atomic additions.
public final class AtomicHistogram: @unchecked Sendable {
    /// Upper bounds (inclusive) in nanoseconds, ascending.
    let bounds: [Int64]
    /// Per-bucket (not cumulative) counts; the last one counts observations above every bound.
    private let counts: UnsafeMutablePointer<Atomic<Int>>
    private let sumNanoseconds = Atomic<Int>(0)

    /// A histogram with the given bucket upper bounds (sorted here).
    public init(bounds: [Duration]) {
        self.bounds = bounds.map(\.nanoseconds).sorted()
        counts = .allocate(capacity: self.bounds.count + 1)
        for index in 0...self.bounds.count {
            (counts + index).initialize(to: Atomic(0))
        }
    }

    deinit {
        counts.deinitialize(count: bounds.count + 1)
        counts.deallocate()
    }

    /// Records one observation.
    public func record(_ duration: Duration) {
        recordNanoseconds(duration.nanoseconds)
    }

    /// Records one observation in nanoseconds (swift-metrics' Timer spelling).
    public func recordNanoseconds(_ nanoseconds: Int64) {
        var bucket = 0
        while bucket < bounds.count && nanoseconds > bounds[bucket] { bucket += 1 }
        counts[bucket].wrappingAdd(1, ordering: .relaxed)
        sumNanoseconds.wrappingAdd(Int(clamping: nanoseconds), ordering: .relaxed)
    }

    /// Cumulative counts per bound (the last one, +Inf, is the total) and the sum in nanoseconds.
    var snapshot: (cumulative: [Int], sumNanoseconds: Int) {
        var running = 0
        let cumulative = (0...bounds.count).map { index in
            running += counts[index].load(ordering: .relaxed)
            return running
        }
        return (cumulative, sumNanoseconds.load(ordering: .relaxed))
    }
}

/// How a series appears in the Prometheus text format.
protocol PrometheusSeries: AnyObject, Sendable {
    /// The family's TYPE.
    static var prometheusType: String { get }
    /// Appends the series' sample lines; `labels` is the rendered label list without braces (may be empty).
    func render(name: String, labels: String, into text: inout String)
}

extension AtomicCounter: PrometheusSeries {
    static var prometheusType: String { "counter" }

    func render(name: String, labels: String, into text: inout String) {
        text += labels.isEmpty ? "\(name) \(value)\n" : "\(name){\(labels)} \(value)\n"
    }
}

extension AtomicHistogram: PrometheusSeries {
    static var prometheusType: String { "histogram" }

    func render(name: String, labels: String, into text: inout String) {
        let (cumulative, sum) = snapshot
        let prefix = labels.isEmpty ? "" : labels + ","
        for (index, bound) in bounds.enumerated() {
            text += "\(name)_bucket{\(prefix)le=\"\(Self.seconds(bound))\"} \(cumulative[index])\n"
        }
        let total = cumulative[bounds.count]
        text += "\(name)_bucket{\(prefix)le=\"+Inf\"} \(total)\n"
        let braced = labels.isEmpty ? "" : "{\(labels)}"
        text += "\(name)_sum\(braced) \(Self.seconds(Int64(sum)))\n"
        text += "\(name)_count\(braced) \(total)\n"
    }

    /// Nanoseconds as decimal seconds without floating-point noise ("0.00025", "2.5", "1").
    static func seconds(_ nanoseconds: Int64) -> String {
        let whole = nanoseconds / 1_000_000_000
        var fraction = String(nanoseconds % 1_000_000_000)
        guard fraction != "0" else { return String(whole) }
        fraction = String(repeating: "0", count: 9 - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return "\(whole).\(fraction)"
    }
}

/// A named metric with one series per label combination, e.g. `http_requests_total{route,method,status}`.
///
/// `series(_:labels:)` is what recording threads call: it searches an insert-only open-addressing table without
/// a lock (each slot is an atomic reference, set once). Only the first use of a label combination takes the
/// family's lock, to insert. Label sets must be bounded (route templates, statuses, outcomes, never ids); should
/// the table ever fill, further combinations share one overflow series per family, labelled `overflow="true"`.
final class MetricFamily<Key: Hashable & Sendable, Series: PrometheusSeries>: @unchecked Sendable {
    let name: String
    private let help: String
    private let makeSeries: @Sendable () -> Series

    private final class Entry: Sendable {
        let key: Key
        let labels: String
        let series: Series
        init(key: Key, labels: String, series: Series) {
            self.key = key
            self.labels = labels
            self.series = series
        }
    }

    private let capacity: Int
    /// Each slot is empty or holds an Entry retained by `entries` for the family's lifetime.
    private let slots: UnsafeMutablePointer<Atomic<UnsafeRawPointer?>>
    /// Inserts, in order; also what keeps the entries alive.
    private let entries = Mutex<[Entry]>([])
    private let maxEntries: Int
    /// Shared by the label combinations past `maxEntries`.
    private let overflow: Series

    /// A family named `name`; `capacity` bounds the number of label combinations (a power of two is not needed).
    init(name: String, help: String, capacity: Int = 1024, makeSeries: @escaping @Sendable () -> Series) {
        self.name = name
        self.help = help
        self.makeSeries = makeSeries
        self.capacity = capacity * 2  // at most half full, so probes stay short
        slots = .allocate(capacity: self.capacity)
        for index in 0..<self.capacity {
            (slots + index).initialize(to: Atomic(nil))
        }
        maxEntries = capacity
        overflow = makeSeries()
    }

    deinit {
        slots.deinitialize(count: capacity)
        slots.deallocate()
    }

    /// The series for `key`, made (with the rendered `labels`) on its first use.
    func series(_ key: Key, labels: @autoclosure () -> [(name: String, value: String)]) -> Series {
        let start = Int(UInt(bitPattern: key.hashValue) % UInt(capacity))
        var index = start
        while let raw = slots[index].load(ordering: .acquiring) {
            let entry = Unmanaged<Entry>.fromOpaque(raw).takeUnretainedValue()
            if entry.key == key { return entry.series }
            index = (index + 1) % capacity
        }
        return insert(key, labels: labels())
    }

    private func insert(_ key: Key, labels: [(name: String, value: String)]) -> Series {
        entries.withLock { entries in
            // Search again under the lock: another thread may have inserted it, or another key the slot we saw empty.
            var index = Int(UInt(bitPattern: key.hashValue) % UInt(capacity))
            while let raw = slots[index].load(ordering: .acquiring) {
                let entry = Unmanaged<Entry>.fromOpaque(raw).takeUnretainedValue()
                if entry.key == key { return entry.series }
                index = (index + 1) % capacity
            }
            guard entries.count < maxEntries else { return overflow }
            let entry = Entry(key: key, labels: Self.render(labels), series: makeSeries())
            entries.append(entry)
            slots[index].store(UnsafeRawPointer(Unmanaged.passUnretained(entry).toOpaque()), ordering: .releasing)
            return entry.series
        }
    }

    /// HELP, TYPE and every series' samples, in the order the label combinations first appeared.
    func render(into text: inout String) {
        let all = entries.withLock { $0 }
        guard !all.isEmpty else { return }
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(Series.prometheusType)\n"
        for entry in all {
            entry.series.render(name: name, labels: entry.labels, into: &text)
        }
        if all.count == maxEntries {
            overflow.render(name: name, labels: #"overflow="true""#, into: &text)
        }
    }

    /// `name="value",...` with values escaped as the text format requires.
    private static func render(_ labels: [(name: String, value: String)]) -> String {
        labels.map { label in
            var escaped = ""
            for character in label.value {
                switch character {
                case "\\": escaped += "\\\\"
                case "\"": escaped += "\\\""
                case "\n": escaped += "\\n"
                default: escaped.append(character)
                }
            }
            return "\(label.name)=\"\(escaped)\""
        }.joined(separator: ",")
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
