import ExactJSON
import Foundation
import ServiceTestSupport
import Synchronization
import TestSupport
import Testing
import Transfers

/// Faults in sequences, chosen at random, in the spirit of Jepsen's nemesis and TigerBeetle's simulator: from a
/// seed, a schedule of faults (instances killed, stopped, joining and leaving; brokers down and slow; Redis stopped
/// and frozen) runs against one set of processes while clients create and cancel transfers at a steady rate. Then
/// everything is healed and the promise checked: every accepted transfer ends `completed` or `cancelled` exactly
/// once with a gapless history, no answer was a 500, a won cancel stayed won.
///
/// `FAULT_SCHEDULE_SECONDS` (default 100) sets how long faults are injected; `FAULT_SCHEDULE_SEED` replays a
/// schedule (the seed is printed at the start). `scripts/fault-schedule` runs long schedules.
extension FaultInjectionTests {
    @Test func randomFaultScheduleKeepsThePromise() throws {
        let environment = ProcessInfo.processInfo.environment
        let replayedSeed = environment["FAULT_SCHEDULE_SEED"].flatMap(UInt64.init)
        let seconds = environment["FAULT_SCHEDULE_SECONDS"].flatMap(Int.init) ?? 100
        guard let replayedSeed else {
            // When the broker under test dies, not the service, that schedule proves nothing either way, so another
            // one (fresh processes, fresh seed) takes its place, up to `MockCoordinatorAbort.replacements` times.
            var replaced = 0
            while true {
                do {
                    return try runFaultSchedule(seed: .random(in: 1...UInt64.max), seconds: seconds)
                } catch let abort as MockCoordinatorAbort where replaced < MockCoordinatorAbort.replacements {
                    replaced += 1
                    log("schedule", "\(abort.description); running another schedule with a fresh seed in its place (\(replaced) of \(MockCoordinatorAbort.replacements))")
                }
            }
        }
        try runFaultSchedule(seed: replayedSeed, seconds: seconds)
    }

    private func runFaultSchedule(seed: UInt64, seconds: Int) throws {
        log("schedule", "seed \(seed), \(seconds) s of faults (replay: FAULT_SCHEDULE_SEED=\(seed) scripts/fault-schedule --seconds \(seconds))")
        let deployment = try ServiceDeployment(
            name: "schedule",
            environment: ["REQUEST_TIMEOUT_MS": "2000", "RECONCILE_AFTER_MS": "10000", "LOG_LEVEL": "info"]
        )
        defer { deployment.tearDown() }
        let first = try deployment.addInstance(clientTimeout: .seconds(10))
        let second = try deployment.addInstance(start: false, clientTimeout: .seconds(10))
        let warmUp = try createTransfer(first.http)
        _ = try deployment.waitForStoredTransfer(warmUp) { $0.status == .completed }

        let clients = ChaosClients(targets: [first.http, second.http])
        clients.start()
        var nemesis = Nemesis(deployment: deployment, instances: [first, second], seed: seed)
        let end = ContinuousClock.now + .seconds(seconds)
        let report: ChaosClients.Report
        let verdict: ScheduleVerdict
        do {
            while ContinuousClock.now < end {
                try nemesis.step()
            }
            try nemesis.healAll()
            // A little healthy traffic after the faults, so the last fault's effects meet fresh requests.
            Thread.sleep(forTimeInterval: 3)
            report = clients.stop()
            log("schedule", "faults: \(nemesis.history.joined(separator: ", "))")
            log("schedule", "clients: \(report.summary)")
            verdict = try ScheduleVerdict.check(deployment: deployment, report: report)  // throws if dev-kafka died
        } catch {
            _ = clients.stop()  // at once if they were stopped already
            try MockCoordinatorAbort.check(deployment, seed: seed)
            throw error
        }
        #expect(report.serverErrors == 0, "500s: \(report.samples)")
        #expect(report.timedOut == 0, "requests without an answer: \(report.samples)")
        log("schedule", "verdict: \(verdict.summary)")
        #expect(verdict.unfinished.isEmpty, "accepted but not finished (seed \(seed)): \(verdict.unfinished.prefix(5))")
        #expect(verdict.brokenHistories.isEmpty, "histories with gaps or repeats (seed \(seed)): \(verdict.brokenHistories.prefix(5))")
        #expect(verdict.wonCancelsLost.isEmpty, "cancels answered 200 that did not stick (seed \(seed)): \(verdict.wonCancelsLost.prefix(5))")
        #expect(verdict.lostCancelsApplied.isEmpty, "cancels refused that still happened (seed \(seed)): \(verdict.lostCancelsApplied.prefix(5))")
        #expect(verdict.doubleApplied.isEmpty, "events applied twice (seed \(seed)): \(verdict.doubleApplied.prefix(5))")
    }
}

/// dev-kafka died on a known defect of librdkafka 2.0.2's mock cluster: its coordinator asserts that a member
/// rejoining has no JoinGroup answer pending (`rdkafka_mock_cgrp.c:567: ... Assertion '!member->resp' failed`),
/// which the rejoins after a broker outage can break. Seen once in about two hours of schedules on a quiet machine,
/// and twice in eleven minutes while other test processes loaded its two cores. Any other exit of dev-kafka is not
/// this.
struct MockCoordinatorAbort: Error, CustomStringConvertible {
    /// How many aborted schedules may be replaced by fresh ones before the test fails.
    static let replacements = 3
    static let signature = "rdkafka_mock_cgrp.c:567: rd_kafka_mock_cgrp_member_add: Assertion `!member->resp' failed"

    let seed: UInt64

    var description: String {
        "dev-kafka aborted on librdkafka's mock coordinator assertion (\(Self.signature)) during the schedule of seed \(seed)"
    }

    /// Throws when the deployment's dev-kafka has the known assertion on its stderr (it is then dead or dying).
    static func check(_ deployment: ServiceDeployment, seed: UInt64) throws {
        let process = deployment.kafka.process
        let errors = (try? String(contentsOfFile: process.stderrPath, encoding: .utf8)) ?? ""
        guard errors.contains(signature) else { return }
        _ = process.waitForExit(timeout: .seconds(10))
        throw MockCoordinatorAbort(seed: seed)
    }
}

// MARK: - The nemesis

/// Draws faults from a seeded generator and applies them one at a time, each for a random while.
struct Nemesis {
    let deployment: ServiceDeployment
    let instances: [ServiceInstance]
    var random: SplitMix64
    /// What was done, in order, for the report.
    private(set) var history: [String] = []

    init(deployment: ServiceDeployment, instances: [ServiceInstance], seed: UInt64) {
        self.deployment = deployment
        self.instances = instances
        random = SplitMix64(seed: seed)
    }

    enum Fault: CaseIterable {
        case killInstance, terminateInstance, secondInstanceJoinsAndLeaves, allBrokersDown, oneBrokerDown, brokerLatency,
            redisRestarted, redisFrozen
    }

    /// One fault, held for 0.5-4 s, then healed, then a quiet 0.2-2 s.
    mutating func step() throws {
        let fault = Fault.allCases[Int(random.next() % UInt64(Fault.allCases.count))]
        let hold = 0.5 + Double(random.next() % 3_500) / 1_000
        let started = ContinuousClock.now
        switch fault {
        case .killInstance, .terminateInstance:
            let instance = instances[Int(random.next() % UInt64(instances.count))]
            guard instance.isRunning else { return }
            if fault == .killInstance { instance.kill() } else { _ = instance.terminate(timeout: .seconds(15)) }
            Thread.sleep(forTimeInterval: hold)
            // The first instance always comes back; the second only if it was part of the deployment then.
            if instance === instances[0] || random.next() % 2 == 0 { try instance.start() }
        case .secondInstanceJoinsAndLeaves:
            let second = instances[1]
            if second.isRunning {
                _ = second.terminate(timeout: .seconds(15))
            } else {
                try second.start()
                Thread.sleep(forTimeInterval: hold)
                if random.next() % 2 == 0 { _ = second.terminate(timeout: .seconds(15)) }
            }
        case .allBrokersDown:
            try deployment.kafka.inject("down all")
            Thread.sleep(forTimeInterval: hold)
            try deployment.kafka.inject("up all")
        case .oneBrokerDown:
            let broker = 1 + Int(random.next() % UInt64(deployment.kafka.brokerCount))
            try deployment.kafka.inject("down \(broker)")
            Thread.sleep(forTimeInterval: hold)
            try deployment.kafka.inject("up \(broker)")
        case .brokerLatency:
            let milliseconds = 50 + random.next() % 450
            try deployment.kafka.inject("rtt all \(milliseconds)")
            Thread.sleep(forTimeInterval: hold)
            try deployment.kafka.inject("rtt all 0")
        case .redisRestarted:
            deployment.stopRedis()
            Thread.sleep(forTimeInterval: hold)
            try deployment.restartRedis()
        case .redisFrozen:
            deployment.freezeRedis()
            Thread.sleep(forTimeInterval: hold)
            deployment.thawRedis()
        }
        history.append("\(fault) \(String(format: "%.1f", Self.seconds(started.duration(to: .now)))) s")
        Thread.sleep(forTimeInterval: 0.2 + Double(random.next() % 1_800) / 1_000)
    }

    /// Everything up: brokers, Redis, the first instance (the second stays as it is).
    func healAll() throws {
        try deployment.kafka.inject("up all")
        try deployment.kafka.inject("rtt all 0")
        deployment.thawRedis()
        if !instances[0].isRunning { try instances[0].start() }
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}

/// A small, fast, seedable generator (SplitMix64), so a schedule replays exactly from its seed.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

// MARK: - The clients

/// Threads that create transfers at a steady rate and cancel about a third of those accepted, a moment later,
/// recording every answer.
final class ChaosClients: Sendable {
    struct Report: Sendable {
        /// Transfers answered 202, and those a 503 named as of unknown outcome (they may exist).
        var accepted: [String] = []
        var unknownOutcome: [String] = []
        /// Cancels by outcome: won (200), refused (409/412), unknown (503 or no answer).
        var cancelsWon: [String] = []
        var cancelsRefused: [String] = []
        var statusCounts: [Int: Int] = [:]
        var serverErrors = 0
        var timedOut = 0
        var samples: [String] = []

        var summary: String {
            let statuses = statusCounts.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
            return "answers [\(statuses)]; accepted \(accepted.count), outcome unknown \(unknownOutcome.count); "
                + "cancels won \(cancelsWon.count), refused \(cancelsRefused.count); timed out \(timedOut)"
        }

        mutating func sample(_ text: String) {
            if samples.count < 8 { samples.append(String(text.prefix(300))) }
        }
    }

    private let targets: [HTTPTestClient]
    private let report = Mutex(Report())
    private let stopRequested = Atomic<Bool>(false)
    private let finished = DispatchGroup()

    init(targets: [HTTPTestClient]) {
        self.targets = targets
    }

    /// Four threads, each about 25 requests a second.
    func start() {
        for index in 0..<4 {
            finished.enter()
            Thread { [self] in
                run(thread: index)
                finished.leave()
            }.start()
        }
    }

    func stop() -> Report {
        stopRequested.store(true, ordering: .relaxed)
        finished.wait()
        return report.withLock { $0 }
    }

    private func run(thread: Int) {
        var sequence = 0
        var toCancel: [String] = []
        while !stopRequested.load(ordering: .relaxed) {
            sequence += 1
            let target = targets[(thread + sequence) % targets.count]
            if let id = toCancel.first, sequence % 2 == 0 {
                toCancel.removeFirst()
                cancel(id, via: target)
            } else if let id = create(via: target, sender: "chaos-\(thread)-\(sequence)"), sequence % 3 == 0 {
                toCancel.append(id)
            }
            Thread.sleep(forTimeInterval: 0.04)
        }
    }

    private func create(via target: HTTPTestClient, sender: String) -> String? {
        let body = #"{"sender_id": "\#(sender)", "receiver_id": "bob", "amount": 12.34}"#
        guard let response = answer(try target.postJSON("/transfers", body)) else { return nil }
        let id = Self.transferID(in: response)
        report.withLock { report in
            switch (response.status, id) {
            case (202, let id?): report.accepted.append(id)
            case (503, let id?): report.unknownOutcome.append(id)
            case (202, nil): report.sample("202 without an id: \(response.bodyText)")
            default: break
            }
        }
        return response.status == 202 ? id : nil
    }

    private func cancel(_ id: String, via target: HTTPTestClient) {
        guard let response = answer(try target.postJSON("/transfers/\(id)/cancel", "", headers: [("If-Match", "\"1\"")])) else { return }
        report.withLock { report in
            switch response.status {
            case 200: report.cancelsWon.append(id)
            case 409, 412: report.cancelsRefused.append(id)
            default: break
            }
        }
    }

    /// The response, counted; nil for a refused or broken connection (an instance is down).
    private func answer(_ send: @autoclosure () throws -> HTTPTestResponse) -> HTTPTestResponse? {
        do {
            let response = try send()
            report.withLock { report in
                report.statusCounts[response.status, default: 0] += 1
                if response.status >= 500 && response.status != 503 {
                    report.serverErrors += 1
                    report.sample("\(response.status): \(response.bodyText)")
                }
            }
            return response
        } catch {
            if "\(error)".contains("no response") {
                report.withLock { $0.timedOut += 1; $0.sample("no answer: \(error)") }
            }
            return nil
        }
    }

    private static func transferID(in response: HTTPTestResponse) -> String? {
        guard case .object(let object)? = try? JSONValue.parse(response.body), case .string(let id)? = object["transfer_id"] else {
            return nil
        }
        return id
    }
}

// MARK: - The verdict

/// The promise after a schedule, counted from Redis and the instances' logs.
struct ScheduleVerdict {
    var finished = 0
    var cancelled = 0
    var unfinished: [String] = []
    var brokenHistories: [String] = []
    var wonCancelsLost: [String] = []
    var lostCancelsApplied: [String] = []
    var doubleApplied: [String] = []
    var secondsToSettle = 0.0

    var summary: String {
        "finished \(finished) (cancelled \(cancelled)), unfinished \(unfinished.count), broken histories \(brokenHistories.count), "
            + "won cancels lost \(wonCancelsLost.count), refused cancels applied \(lostCancelsApplied.count), "
            + "applied twice \(doubleApplied.count); settled \(String(format: "%.1f", secondsToSettle)) s after the heal"
    }

    /// Waits (up to 3 minutes: a transfer whose event was lost waits for the reconciler) until every accepted
    /// transfer, and every one of unknown outcome that exists, is finished; then checks histories and cancels.
    static func check(deployment: ServiceDeployment, report: ChaosClients.Report) throws -> ScheduleVerdict {
        var verdict = ScheduleVerdict()
        let started = ContinuousClock.now
        let deadline = started + .seconds(180)
        var records: [String: String] = [:]
        while true {
            try deployment.checkKafkaRunning()
            records = try deployment.storedRecords(of: report.accepted + report.unknownOutcome)
            let open = records.values.filter { !Self.isFinished($0) }
            let missing = report.accepted.filter { records[$0] == nil }
            if open.isEmpty && missing.isEmpty || ContinuousClock.now >= deadline { break }
            Thread.sleep(forTimeInterval: 0.5)
        }
        verdict.secondsToSettle = Nemesis.seconds(started.duration(to: .now))
        for id in report.accepted + report.unknownOutcome {
            guard let record = records[id] else {
                if report.accepted.contains(id) { verdict.unfinished.append("\(id): not in Redis") }
                continue
            }
            guard let transfer = try? Transfer(json: Array(record.utf8)), Self.isFinished(record), transfer.version == 2 else {
                verdict.unfinished.append("\(id): \(record)")
                continue
            }
            verdict.finished += 1
            if transfer.status == .cancelled { verdict.cancelled += 1 }
            let historyKey = "{transfer:\(id)}:history"
            let history = try deployment.command(["LRANGE", historyKey, "0", "-1"], key: historyKey).array ?? []
            let versions = history.compactMap { $0.bytes.flatMap { try? Transfer(json: $0) }?.version }
            if versions != [1, 2] { verdict.brokenHistories.append("\(id): versions \(versions)") }
        }
        let won = Set(report.cancelsWon)
        for id in won where records[id].flatMap({ try? Transfer(json: Array($0.utf8)) })?.status != .cancelled {
            verdict.wonCancelsLost.append("\(id): \(records[id] ?? "missing")")
        }
        for id in report.cancelsRefused where records[id].flatMap({ try? Transfer(json: Array($0.utf8)) })?.status == .cancelled {
            verdict.lostCancelsApplied.append(id)
        }
        let applied = deployment.appliedLogCounts()
        for (id, count) in applied.completed where count > 1 {
            verdict.doubleApplied.append("\(id) completed \(count) times")
        }
        return verdict
    }

    static func isFinished(_ record: String) -> Bool {
        record.contains(#""status":"completed""#) || record.contains(#""status":"cancelled""#)
    }
}
