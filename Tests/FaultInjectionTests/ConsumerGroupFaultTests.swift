import Foundation
import ServiceTestSupport
import TestSupport
import Testing

extension FaultInjectionTests {
    /// The sequence that once left the surviving consumer with two of three partitions it never read again: a
    /// crash mid-burst, every broker away, Redis away, then a second member that joins the group and is stopped
    /// while the group is still forming. Every transfer accepted afterwards must still complete.
    @Test func consumerKeepsEveryPartitionAfterFaultsAndAMemberLeavingMidJoin() throws {
        let deployment = try ServiceDeployment(name: "rejoin", environment: Self.environment)
        defer { deployment.tearDown() }
        let first = try deployment.addInstance(clientTimeout: Self.clientTimeout)

        // 3,000 creates from 16 threads as fast as they go, with a SIGKILL and a restart in the middle.
        let burst = LoadGenerator(targets: [first.http], threads: 16, requestsPerSecond: 4_000, maxAttempts: 3_000)
        let burstReport = try withLoad(burst) {
            try burst.waitUntilAccepted(1_200)
            first.kill()
            Thread.sleep(forTimeInterval: 0.3)
            try first.start()
            try waitUntilEveryAttemptAnswered(burst, attempts: 3_000)
        }
        log("rejoin", "burst with a SIGKILL: \(burstReport.summary)")
        expectOnlyAcceptedOrUnavailable(burstReport)

        try deployment.kafka.inject("down all")
        Thread.sleep(forTimeInterval: 3)
        try deployment.kafka.inject("up all")
        deployment.stopRedis()
        Thread.sleep(forTimeInterval: 2)
        try deployment.restartRedis()
        log("rejoin", "every broker down 3 s, then Redis stopped 2 s and restarted")

        // A second member joins; it is stopped about 3 s after it started, while the group is still rebalancing
        // (dev-kafka holds a join for the session timeout less a second).
        let second = try deployment.addInstance(start: false, clientTimeout: Self.clientTimeout)
        let secondStarted = ContinuousClock.now
        try second.start()
        let pair = LoadGenerator(targets: [first.http, second.http], threads: 8, requestsPerSecond: 500, maxAttempts: 1_000)
        var exitStatus: Int32?
        let pairReport = try withLoad(pair) {
            let untilStop = secondStarted.duration(to: .now)
            if untilStop < .seconds(3) { Thread.sleep(forTimeInterval: 3 - seconds(untilStop)) }
            exitStatus = second.terminate(timeout: .seconds(15))
            log("rejoin", "SIGTERM to the second instance \(String(format: "%.1f", seconds(secondStarted.duration(to: .now)))) s after its start: "
                + "exit status \(exitStatus.map(String.init) ?? "none within 15 s")")
            try waitUntilEveryAttemptAnswered(pair, attempts: 1_000)
        }
        log("rejoin", "1,000 creates over both instances: \(pairReport.summary)")
        #expect(exitStatus == 0, "SIGTERM must end the joining instance with exit status 0")
        #expect(pairReport.unexpectedStatusCount == 0 && pairReport.timedOut == 0, "\(pairReport.samples)")
        // A member stopped before the group answered its join has no member id, so it cannot leave: dev-kafka (like
        // a broker with a crashed member) then hands it partitions that nobody reads until its session times out.
        let secondLog = second.logLines()
        #expect(secondLog.contains { $0.contains("leaving the consumer group") }, "the second instance did not leave the group")
        #expect(!secondLog.contains { $0.contains("cannot leave the group") }, "the second instance stopped without a member id")

        let check = try PromiseCheck.run(
            deployment: deployment, acceptedIDs: burstReport.acceptedIDs + pairReport.acceptedIDs, timeout: .seconds(90)
        )
        log("rejoin", "promise: \(check.summary)")
        check.expectKept()
        let assignments = first.logLines().filter { $0.contains("consumer group assigned partitions") }
        let last = assignments.last ?? ""
        log("rejoin", "the first instance was assigned partitions \(assignments.count) times, last: \(last)")
        #expect((0..<3).allSatisfy { last.contains("\(deployment.topic)[\($0)]") }, "the survivor does not own every partition: \(last)")

        // The survivor's statistics report every partition caught up (librdkafka reports every 5 s).
        // The group's committed lag, read every 15 s, reaches 0 too.
        func lag(_ partition: Int, in lines: [Substring], metric: String = "consumer_lag") -> Double? {
            let prefix = #"\#(metric){partition="\#(partition)"} "#
            return lines.first { $0.hasPrefix(prefix) }.flatMap { Double($0.dropFirst(prefix.count)) }
        }
        var lagLines: [Substring] = []
        func caughtUp(_ lines: [Substring]) -> Bool {
            (0..<3).allSatisfy { lag($0, in: lines) == 0 && lag($0, in: lines, metric: "consumer_group_lag") == 0 }
        }
        let deadline = ContinuousClock.now + .seconds(45)
        repeat {
            let metrics = try first.http.get("/metrics").bodyText
            lagLines = metrics.split(separator: "\n").filter {
                $0.hasPrefix("consumer_lag{") || $0.hasPrefix("consumer_group_lag{") || $0.hasPrefix("consumer_offset_resets_total ")
            }
            if caughtUp(lagLines) { break }
            Thread.sleep(forTimeInterval: 0.5)
        } while ContinuousClock.now < deadline
        log("rejoin", "the first instance's metrics: \(lagLines)")
        #expect(caughtUp(lagLines), "\(lagLines)")
        #expect(lagLines.contains("consumer_offset_resets_total 0"))
    }

    /// Waits until `load` has made and recorded all of its `attempts` (its cap), so a burst is over.
    func waitUntilEveryAttemptAnswered(_ load: LoadGenerator, attempts: Int, timeout: Duration = .seconds(120)) throws {
        let deadline = ContinuousClock.now + timeout
        while load.snapshot().attempts < attempts {
            guard ContinuousClock.now < deadline else {
                throw LoadError("only \(load.snapshot().attempts) of \(attempts) attempts answered: \(load.snapshot().summary)")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }
}

/// A duration in seconds, for sleeps and printed figures.
func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}
