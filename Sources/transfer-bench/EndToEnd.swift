import Foundation
import RedisClient

/// `e2e`: a fixed-rate open loop of POST /transfers over keep-alive connections, timing each transfer from the
/// POST's answer to the moment its record is written as completed.
///
/// The completion moment comes from Redis keyspace notifications (enabled on the benchmark's own Redis only, on
/// every primary of a cluster):
/// each transfer's key is SET twice, once by the create script and once by the consumer's compare-and-set, so the
/// second `set` notification for a key is the moment a GET would first read `completed`. No polling load.
enum EndToEnd {
    /// One accepted POST, as a worker saw it.
    struct Accepted {
        var id: String
        var answeredAt: UInt64
    }

    static func run(_ options: EndToEndCommand) throws {
        let httpPort = options.httpPort
        let redisPorts = options.redisPort
        let rate = options.rate
        let seconds = options.duration
        let connections = options.connections
        let total = Int(rate * seconds)
        guard rate > 0, total > 0 else { throw BenchError("--rate and --duration must be positive", isUsage: true) }

        // Notifications are per server: in a cluster, each primary reports the keys of its own slots.
        var admins: [RedisConnection] = []
        for port in redisPorts {
            let admin = try RedisConnection(configuration: RedisConfiguration(host: "127.0.0.1", port: port))
            _ = try admin.command(["CONFIG", "SET", "notify-keyspace-events", "K$"])
            admins.append(admin)
        }
        defer { for admin in admins { _ = try? admin.command(["CONFIG", "SET", "notify-keyspace-events", ""]) } }

        // A subscriber per server records, per key, when it saw the second SET; each runs until told to stop.
        let stopSubscriber = Locked(false)
        let completions = Locked<[String: UInt64]>([:])
        let subscriberFailure = Locked<String?>(nil)
        let subscribersDone = DispatchGroup()
        for port in redisPorts {
            let pushReader = UncheckedBox(try RedisPushReader(port: port, pattern: "__keyspace@0__:transfer:*"))
            subscribersDone.enter()
            Thread.detachNewThread {
                var setsSeen: [String: Int] = [:]
                let prefix = "__keyspace@0__:transfer:"
                while !stopSubscriber.withLock({ $0 }) {
                    do {
                        guard let push = try pushReader.value.readArray() else { continue }
                        let now = monotonicNanoseconds()
                        guard push.count == 4, String(decoding: push[3], as: UTF8.self) == "set" else { continue }
                        let id = String(String(decoding: push[2], as: UTF8.self).dropFirst(prefix.count))
                        let seen = setsSeen[id, default: 0] + 1
                        setsSeen[id] = seen
                        if seen == 2 { completions.withLock { $0[id] = now } }
                    } catch {
                        subscriberFailure.withLock { $0 = "\(error)" }
                        break
                    }
                }
                subscribersDone.leave()
            }
        }

        // Workers take the next slot of the schedule, wait for its time, send, and note when the answer came.
        let bodies: [[UInt8]] = {
            var mix = TransferMix(seed: 1_234)
            return (0..<min(total, 10_000)).map { _ in
                let request = mix.next()
                return Array(#"{"sender_id":"\#(request.senderID)","receiver_id":"\#(request.receiverID)","amount":\#(request.amount.jsonNumber)}"#.utf8)
            }
        }()
        let nextSlot = Locked(0)
        let accepted = Locked<[Accepted]>([])
        let failures = Locked(0)
        let lateSends = Locked(0)
        let firstFailure = Locked<String?>(nil)
        let interval = 1e9 / rate
        let start = monotonicNanoseconds() + 100_000_000
        runThreads(connections) { _ in
            var mine: [Accepted] = []
            var connection: KeepAliveHTTPConnection?
            while true {
                let slot = nextSlot.withLock { slot in defer { slot += 1 }; return slot }
                guard slot < total else { break }
                let due = start + UInt64(Double(slot) * interval)
                let now = monotonicNanoseconds()
                if now > due + 1_000_000 { lateSends.withLock { $0 += 1 } } else { sleep(untilMonotonic: due) }
                do {
                    if connection == nil { connection = try KeepAliveHTTPConnection(port: httpPort) }
                    let response = try connection!.send(method: "POST", path: "/transfers", jsonBody: bodies[slot % bodies.count])
                    let answeredAt = monotonicNanoseconds()
                    guard response.status == 202, let location = response.location else {
                        throw BenchError("POST answered \(response.status): \(String(decoding: response.body, as: UTF8.self))")
                    }
                    mine.append(Accepted(id: String(location.dropFirst("/transfers/".count)), answeredAt: answeredAt))
                } catch {
                    connection = nil
                    failures.withLock { $0 += 1 }
                    firstFailure.withLock { $0 = $0 ?? "\(error)" }
                }
            }
            accepted.withLock { $0.append(contentsOf: mine) }
        }
        let loadEnded = monotonicNanoseconds()

        // Wait (bounded) for the consumer to complete every accepted transfer.
        let all = accepted.withLock { $0 }
        let drainDeadline = monotonicNanoseconds() + 60_000_000_000
        while monotonicNanoseconds() < drainDeadline {
            let done = completions.withLock { map in all.reduce(0) { $0 + (map[$1.id] != nil ? 1 : 0) } }
            if done == all.count || subscriberFailure.withLock({ $0 }) != nil { break }
            sleep(untilMonotonic: monotonicNanoseconds() + 50_000_000)
        }
        stopSubscriber.withLock { $0 = true }
        subscribersDone.wait()

        let completedAt = completions.withLock { $0 }
        var latencies: [Double] = []
        var answeredAfterCompletion = 0
        for transfer in all {
            guard let done = completedAt[transfer.id] else { continue }
            if done < transfer.answeredAt { answeredAfterCompletion += 1 }
            latencies.append(done > transfer.answeredAt ? Double(done - transfer.answeredAt) / 1e6 : 0)
        }
        latencies.sort()
        var result: [String: Any] = [
            "target_rate": rate,
            "achieved_rate": Double(all.count) / (Double(loadEnded - start) / 1e9),
            "sent": total,
            "accepted": all.count,
            "failed": failures.withLock { $0 },
            "late_sends": lateSends.withLock { $0 },
            "completed": latencies.count,
            "not_completed": all.count - latencies.count,
            "completed_before_answer": answeredAfterCompletion,
            "connections": connections,
        ]
        result["p50_ms"] = quantile(latencies, 0.50)
        result["p99_ms"] = quantile(latencies, 0.99)
        result["max_ms"] = latencies.last
        if let failure = firstFailure.withLock({ $0 }) { result["first_failure"] = failure }
        if let failure = subscriberFailure.withLock({ $0 }) { result["subscriber_failure"] = failure }
        try printJSON(result)
    }
}

/// Hands a non-Sendable value to exactly one other thread, which then owns it.
final class UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
