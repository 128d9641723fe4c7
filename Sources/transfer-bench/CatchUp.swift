import Foundation
import KafkaClient
import KafkaDevSupport
import RedisClient
import Transfers

/// Varied but reproducible transfer requests, as a client population would send them.
struct TransferMix {
    private var generator: SplitMix64

    init(seed: UInt64) { generator = SplitMix64(seed: seed) }

    /// The next request: one of 10,000 accounts to another, 0.01 to 99,999.99 with 0 to 2 decimals.
    mutating func next() -> TransferRequest {
        let sender = Int.random(in: 0..<10_000, using: &generator)
        let receiver = (sender + Int.random(in: 1..<10_000, using: &generator)) % 10_000
        var cents = Int64.random(in: 1...9_999_999, using: &generator)
        switch cents % 3 {
        case 0: cents = max(100, cents / 100 * 100)  // whole amount
        case 1: cents = max(10, cents / 10 * 10)  // one decimal
        default: break
        }
        return TransferRequest(senderID: "account-\(sender)", receiverID: "account-\(receiver)", amount: Amount(minorUnits: cents))
    }
}

/// A small, fast, seedable generator (SplitMix64).
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// `fill-catchup`: stores `count` initiated transfers in Redis and publishes their events to a topic, as if the
/// service had accepted them while its consumer was down; writes which transfers come first and last in each
/// partition to `--state` for `watch-catchup`.
enum CatchUpFill {
    static func run(_ options: FillCatchUpCommand) throws {
        let count = options.count
        let topic = options.topic
        let redis = try options.redis.deployment()
        defer { redis.shutdown() }
        var mix = TransferMix(seed: 42)
        var idGenerator = SplitMix64(seed: 7)
        var transfers: [Transfer] = []
        transfers.reserveCapacity(count)
        let started = monotonicNanoseconds()
        var batch: [RedisCommand] = []
        for index in 0..<count {
            let transfer = Transfer.initiate(mix.next(), id: .random(using: &idGenerator), at: benchTimestamp)
            transfers.append(transfer)
            let key = "transfer:\(transfer.id.rawValue)"
            batch.append(.command(["SET", key, transfer.json], key: key))
            if batch.count == 1_000 || index == count - 1 {
                try execute(batch, on: redis)
                batch.removeAll(keepingCapacity: true)
            }
        }
        let stored = monotonicNanoseconds()

        let reports = Locked<[KafkaDeliveryReport]>([])
        var configuration = KafkaProducerConfiguration(bootstrapServers: options.bootstrap)
        configuration.properties["queue.buffering.max.messages"] = "1000000"
        let producer = try KafkaProducer(configuration: configuration, onDeliveryReports: { batch in
            reports.withLock { $0.append(contentsOf: batch) }
        })
        for transfer in transfers {
            try producer.send(topic: topic, key: Array(transfer.id.rawValue.utf8), value: Array(transfer.json.utf8))
        }
        guard producer.flush(timeout: .seconds(120)) else { throw BenchError("Kafka did not confirm every event within 120 s") }
        producer.shutdown(timeout: .seconds(5))
        let published = monotonicNanoseconds()

        let delivered = reports.withLock { $0 }
        let failures = delivered.filter { $0.error != nil }
        guard failures.isEmpty, delivered.count == count else {
            throw BenchError("\(failures.count) of \(delivered.count) events failed: \(failures.first?.error.map { "\($0)" } ?? "missing reports")")
        }
        var partitions: [[String: Any]] = []
        for (partition, reports) in Dictionary(grouping: delivered, by: \.partition).sorted(by: { $0.key < $1.key }) {
            let ordered = reports.sorted { $0.offset < $1.offset }
            partitions.append([
                "partition": Int(partition), "count": ordered.count,
                "first": String(decoding: ordered.first!.key ?? [], as: UTF8.self),
                "last": String(decoding: ordered.last!.key ?? [], as: UTF8.self),
            ])
        }
        let state: [String: Any] = ["topic": topic, "count": count, "partitions": partitions]
        try JSONSerialization.data(withJSONObject: state, options: [.sortedKeys]).write(to: URL(fileURLWithPath: options.state))
        log(String(format: "filled %d records in %.1f s and %d events in %.1f s", count, Double(stored - started) / 1e9, count, Double(published - stored) / 1e9))
    }
}

/// Runs `commands` (one pipeline per node) and throws on any failure or error reply.
func execute(_ commands: [RedisCommand], on redis: any RedisDeployment) throws {
    for reply in redis.execute(RedisRequest(commands, timeout: .seconds(30))).replies {
        if case .error(let message) = try reply.get() { throw BenchError("Redis answered \(message)") }
    }
}

/// `watch-catchup`: started right after the service (cold consumer), measures how fast the backlog written by
/// `fill-catchup` is completed, then waits until the group's committed lag is 0.
///
/// Each partition is consumed in offset order, so the backlog is done when the last event of every partition has
/// completed its record. Progress is sampled by reading those few records every 5 ms (a negligible load); the
/// committed lag is exact but moves only when the consumer auto-commits (every 5 s by default).
enum CatchUpWatch {
    static func run(_ options: WatchCatchUpCommand) throws {
        let startedAt = monotonicNanoseconds()
        let timeout = UInt64(options.timeoutSeconds) * 1_000_000_000
        let stateData = try Data(contentsOf: URL(fileURLWithPath: options.state))
        guard let state = try JSONSerialization.jsonObject(with: stateData) as? [String: Any],
            let count = state["count"] as? Int, let topic = state["topic"] as? String,
            let partitions = state["partitions"] as? [[String: Any]]
        else { throw BenchError("unreadable state file") }
        // Optional: fail at once, not at the timeout, when the service dies (or is killed by someone else).
        let servicePID = options.servicePid
        let firstKeys = partitions.compactMap { $0["first"] as? String }.map { "transfer:\($0)" }
        let lastKeys = partitions.compactMap { $0["last"] as? String }.map { "transfer:\($0)" }
        let redis = try options.redis.deployment()
        defer { redis.shutdown() }

        func completedCount(_ keys: [String]) throws -> Int {
            let response = redis.execute(RedisRequest(keys.map { .command(["GET", $0], key: $0) }, timeout: .seconds(5)))
            return try response.replies.filter { result in
                try result.get().string.map { $0.contains(#""status":"completed""#) } ?? false
            }.count
        }
        var firstCompletedAt: UInt64?
        var allCompletedAt: UInt64?
        while allCompletedAt == nil {
            let now = monotonicNanoseconds()
            guard now - startedAt < timeout else { throw BenchError("the backlog was not completed within the timeout") }
            if let pid = servicePID, !FileManager.default.fileExists(atPath: "/proc/\(pid)") {
                throw BenchError("the service (pid \(pid)) exited before the backlog was completed")
            }
            if firstCompletedAt == nil, try completedCount(firstKeys) > 0 { firstCompletedAt = now }
            if firstCompletedAt != nil, try completedCount(lastKeys) == lastKeys.count { allCompletedAt = now }
            if allCompletedAt == nil { sleep(untilMonotonic: now + 5_000_000) }
        }

        let lagReader = try KafkaGroupLagReader(bootstrapServers: options.bootstrap, groupId: options.group)
        var lagZeroAt: UInt64?
        var lastLag: Int64 = -1
        while lagZeroAt == nil {
            let now = monotonicNanoseconds()
            guard now - startedAt < timeout else { throw BenchError("the group's lag stayed at \(lastLag) until the timeout") }
            if let lag = try? lagReader.lag(topic: topic, timeout: .seconds(5)) {
                lastLag = lag.map(\.lag).reduce(0, +)
                if lastLag == 0 { lagZeroAt = now }
            }
            if lagZeroAt == nil { sleep(untilMonotonic: now + 100_000_000) }
        }

        let first = firstCompletedAt!, done = allCompletedAt!, lagZero = lagZeroAt!
        let processingSeconds = Double(done - first) / 1e9
        try printJSON([
            "events": count,
            "events_per_second": Double(count) / max(processingSeconds, 1e-9),
            "seconds_first_to_last_completed": processingSeconds,
            "seconds_start_to_first_completed": Double(first - startedAt) / 1e9,
            "seconds_start_to_last_completed": Double(done - startedAt) / 1e9,
            "seconds_start_to_lag_zero": Double(lagZero - startedAt) / 1e9,
            "events_per_second_from_start_to_lag_zero": Double(count) / (Double(lagZero - startedAt) / 1e9),
        ])
    }
}

/// `wait-lag`: waits until a group's committed lag on a topic is 0 (so an earlier phase's backlog does not
/// spill into the next); prints the seconds it took and exits 1 on timeout.
enum WaitForLag {
    static func run(_ options: WaitLagCommand) throws {
        let startedAt = monotonicNanoseconds()
        let timeout = UInt64(options.timeoutSeconds) * 1_000_000_000
        let reader = try KafkaGroupLagReader(bootstrapServers: options.bootstrap, groupId: options.group)
        let topic = options.topic
        var lag: Int64 = -1
        while monotonicNanoseconds() - startedAt < timeout {
            if let partitions = try? reader.lag(topic: topic, timeout: .seconds(5)) {
                lag = partitions.map(\.lag).reduce(0, +)
                if lag == 0 {
                    try printJSON(["seconds": Double(monotonicNanoseconds() - startedAt) / 1e9])
                    return
                }
            }
            sleep(untilMonotonic: monotonicNanoseconds() + 200_000_000)
        }
        throw BenchError("the lag of group \(options.group) on \(topic) is still \(lag)")
    }
}
