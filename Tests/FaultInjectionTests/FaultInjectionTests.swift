import Foundation
import KafkaClient
import ServiceTestSupport
import Synchronization
import TestSupport
import Testing
import Transfers

/// Crashes, restarts, outages and hostile traffic against real processes: each scenario starts its own dev-kafka,
/// redis-server (AOF) and service instances, applies bounded load while injecting one fault, then checks the promise
/// (`PromiseCheck`). Serialized: the scenarios would otherwise fight over two cores and blur each other's figures.
@Suite(.serialized)
struct FaultInjectionTests {
    /// What every instance gets: short request and consumer-session timeouts so faults resolve quickly.
    static let environment = ["REQUEST_TIMEOUT_MS": "3000", "LOG_LEVEL": "info"]
    /// Longer than REQUEST_TIMEOUT_MS plus slack: a request without an answer by then counts as hung.
    static let clientTimeout = Duration.seconds(10)

    @Test func serviceKilledMidBurstThenRestarted() throws {
        let deployment = try ServiceDeployment(name: "kill", environment: Self.environment)
        defer { deployment.tearDown() }
        let instance = try deployment.addInstance(clientTimeout: Self.clientTimeout)

        let load = LoadGenerator(targets: [instance.http])
        let report = try withLoad(load) {
            try load.waitUntilAccepted(300)
            // Three crashes at different moments: mid-burst, soon after a restart (while the consumer is still
            // joining its group), and again mid-burst.
            for (round, acceptedBetween) in [150, 20, 250].enumerated() {
                instance.kill()
                let acceptedBeforeKill = load.accepted
                Thread.sleep(forTimeInterval: 0.3)
                try instance.start()
                log("kill", "SIGKILL \(round + 1) after \(acceptedBeforeKill) accepted; serving again \(load.accepted - acceptedBeforeKill) accepts later")
                try load.waitUntilAccepted(load.accepted + acceptedBetween)
            }
        }
        log("kill", "load: \(report.summary)")
        expectOnlyAcceptedOrUnavailable(report)

        let check = try PromiseCheck.run(deployment: deployment, acceptedIDs: report.acceptedIDs)
        log("kill", "promise: \(check.summary)")
        check.expectKept()
    }

    @Test func kafkaBrokersDownAndSlow() throws {
        let deployment = try ServiceDeployment(name: "brokers", environment: Self.environment)
        defer { deployment.tearDown() }
        let instance = try deployment.addInstance(clientTimeout: Self.clientTimeout)
        // Let the consumer join its group first, so the outage hits a working pipeline.
        let warmUp = try createTransfer(instance.http)
        _ = try PromiseCheck.run(deployment: deployment, acceptedIDs: [warmUp], readTopics: false)

        let load = LoadGenerator(targets: [instance.http])
        var readinessDuringOutage: HTTPTestResponse?
        let report = try withLoad(load) {
            try load.waitUntilAccepted(200)
            try deployment.kafka.inject("down all")
            var acceptedBefore = load.accepted
            Thread.sleep(forTimeInterval: 1)
            readinessDuringOutage = try? instance.http.get("/readyz")
            Thread.sleep(forTimeInterval: 5)
            try deployment.kafka.inject("up all")
            log("brokers", "all \(deployment.kafka.brokerCount) brokers down for 6 s: \(load.accepted - acceptedBefore) accepted meanwhile")
            try load.waitUntilAccepted(load.accepted + 200)

            try deployment.kafka.inject("rtt all 500")
            acceptedBefore = load.accepted
            Thread.sleep(forTimeInterval: 4)
            try deployment.kafka.inject("rtt all 0")
            log("brokers", "500 ms added to every broker's responses for 4 s: \(load.accepted - acceptedBefore) accepted meanwhile")

            try deployment.kafka.inject("down 2")
            acceptedBefore = load.accepted
            Thread.sleep(forTimeInterval: 4)
            try deployment.kafka.inject("up 2")
            log("brokers", "broker 2 down for 4 s: \(load.accepted - acceptedBefore) accepted meanwhile")
            try load.waitUntilAccepted(load.accepted + 200)
        }
        log("brokers", "load: \(report.summary)")
        expectOnlyAcceptedOrUnavailable(report)
        #expect(report.statusCounts.keys.sorted() == [202], "POSTs need only Redis, so Kafka being down must not refuse them")
        log("brokers", "GET /readyz with every broker down: \(readinessDuringOutage.map { "\($0.status) \($0.bodyText)" } ?? "no answer")")
        #expect(readinessDuringOutage?.status == 503, "readiness must fail while no broker answers")
        #expect(readinessDuringOutage?.bodyText.lowercased().contains("kafka") == true, "the 503 must name Kafka")

        let check = try PromiseCheck.run(deployment: deployment, acceptedIDs: [warmUp] + report.acceptedIDs)
        log("brokers", "promise: \(check.summary)")
        check.expectKept()
    }

    /// SIGTERM while no broker answers: the consumer can neither commit its offsets nor leave its group (and
    /// librdkafka's synchronous commit waits for a coordinator without a time limit). The stop gives Kafka a few
    /// seconds, then goes on without it and exits 0 within the 10 s that `docker stop` allows; the uncommitted
    /// events are delivered again later, which the version rule makes harmless.
    @Test func stoppedWhileEveryBrokerIsDown() throws {
        let deployment = try ServiceDeployment(name: "stopdown", environment: Self.environment)
        defer { deployment.tearDown() }
        let instance = try deployment.addInstance(clientTimeout: Self.clientTimeout)
        let warmUp = try createTransfer(instance.http)
        _ = try PromiseCheck.run(deployment: deployment, acceptedIDs: [warmUp], readTopics: false)

        try deployment.kafka.inject("down all")
        Thread.sleep(forTimeInterval: 1)
        let createdWhileDown = try createTransfer(instance.http)
        let stopStarted = ContinuousClock.now
        let exitStatus = instance.terminate(timeout: .seconds(10))
        let stopTook = stopStarted.duration(to: .now)
        log("stopdown", "SIGTERM with every broker down: exit status \(exitStatus.map(String.init) ?? "none within 10 s") after \(stopTook)")
        #expect(exitStatus == 0, "SIGTERM must end the instance with exit status 0 within 10 s while Kafka is down")
        #expect(instance.logLines().contains { $0.contains("Kafka did not answer") }, "the stop must say it went on without Kafka")

        try deployment.kafka.inject("up all")
        try instance.start()
        let createdAfter = try createTransfer(instance.http)
        let check = try PromiseCheck.run(deployment: deployment, acceptedIDs: [warmUp, createdWhileDown, createdAfter])
        log("stopdown", "promise: \(check.summary)")
        check.expectKept()
    }

    @Test func redisStoppedDuringLoadThenRestartedWithItsData() throws {
        let deployment = try ServiceDeployment(name: "redis", environment: Self.environment)
        defer { deployment.tearDown() }
        let instance = try deployment.addInstance(clientTimeout: Self.clientTimeout)

        let load = LoadGenerator(targets: [instance.http])
        var acceptedDuringOutage = 0
        var liveness: HTTPTestResponse?
        var readiness: HTTPTestResponse?
        let report = try withLoad(load) {
            try load.waitUntilAccepted(200)
            deployment.stopRedis()
            let acceptedBeforeOutage = load.accepted
            let unavailableBefore = load.snapshot().statusCounts[503, default: 0]
            Thread.sleep(forTimeInterval: 1)
            liveness = try? instance.http.get("/healthz")
            readiness = try? instance.http.get("/readyz")
            Thread.sleep(forTimeInterval: 3)
            let during = load.snapshot()
            acceptedDuringOutage = load.accepted - acceptedBeforeOutage
            log("redis", "Redis down 4 s: \(during.statusCounts[503, default: 0] - unavailableBefore) answered 503, \(acceptedDuringOutage) accepted")
            try deployment.restartRedis()
            // The service must find Redis again by itself: no restart, just more 202s.
            try load.waitUntilAccepted(load.accepted + 200, timeout: .seconds(60))
        }
        log("redis", "load: \(report.summary)")
        expectOnlyAcceptedOrUnavailable(report)
        #expect(report.statusCounts[503, default: 0] > 0, "Redis was down for 4 s under load, yet no request was answered 503")
        #expect(report.refused == 0 && report.broken == 0, "the service itself must stay up while Redis is away")
        #expect(instance.process?.isRunning == true, "the service exited while Redis was away")
        log("redis", "with Redis down: GET /healthz \(liveness.map { "\($0.status)" } ?? "no answer"), GET /readyz \(readiness.map { "\($0.status) \($0.bodyText)" } ?? "no answer")")
        #expect(liveness?.status == 200, "the process is alive, so /healthz must say so")
        #expect(readiness?.status == 503, "readiness must fail while Redis is down")
        #expect(readiness?.bodyText.lowercased().contains("redis") == true, "the 503 must name Redis")

        let check = try PromiseCheck.run(deployment: deployment, acceptedIDs: report.acceptedIDs)
        log("redis", "promise: \(check.summary)")
        check.expectKept()
    }

    @Test func twoInstancesOneStoppedOneKilledMidLoad() throws {
        let deployment = try ServiceDeployment(name: "pair", environment: Self.environment)
        defer { deployment.tearDown() }
        let first = try deployment.addInstance(clientTimeout: Self.clientTimeout)
        let second = try deployment.addInstance(clientTimeout: Self.clientTimeout)

        let load = LoadGenerator(targets: [first.http, second.http])
        var exitStatus: Int32?
        let report = try withLoad(load) {
            try load.waitUntilAccepted(250)
            let brokenBefore = load.snapshot().broken
            exitStatus = first.terminate(timeout: .seconds(10))
            log("pair", "SIGTERM to the first instance after \(load.accepted) accepted: exit status \(exitStatus.map(String.init) ?? "none within 10 s"); "
                + "connections broken meanwhile: \(load.snapshot().broken - brokenBefore)")
            try load.waitUntilAccepted(load.accepted + 200)
            try first.start()
            try load.waitUntilAccepted(load.accepted + 200)
            second.kill()
            log("pair", "SIGKILL to the second instance after \(load.accepted) accepted")
            try load.waitUntilAccepted(load.accepted + 300)
        }
        log("pair", "load: \(report.summary)")
        #expect(exitStatus == 0, "SIGTERM must end the instance with exit status 0 within 10 s")
        expectOnlyAcceptedOrUnavailable(report)

        // Only the first instance is left to take over the killed one's partitions (after its 6 s session timeout).
        let check = try PromiseCheck.run(deployment: deployment, acceptedIDs: report.acceptedIDs)
        log("pair", "promise: \(check.summary)")
        check.expectKept()
    }

    // MARK: Helpers

    /// Runs `body` while `load` runs, then stops the load (also when `body` throws) and returns its report.
    func withLoad(_ load: LoadGenerator, _ body: () throws -> Void) throws -> LoadGenerator.Report {
        load.start()
        do {
            try body()
        } catch {
            let report = load.stop()
            throw LoadError("\(error)\nload so far: \(report.summary) \(report.samples)")
        }
        return load.stop()
    }

    /// Every answer was 202 or a well-formed 503, and none took longer than the client's timeout.
    func expectOnlyAcceptedOrUnavailable(_ report: LoadGenerator.Report, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(report.unexpectedStatusCount == 0, "answers other than 202/503: \(report.samples)", sourceLocation: sourceLocation)
        #expect(report.timedOut == 0, "requests without an answer within \(Self.clientTimeout): \(report.samples)", sourceLocation: sourceLocation)
        #expect(report.malformedUnavailable == 0, "\(report.samples)", sourceLocation: sourceLocation)
        #expect(report.malformedAccepted == 0, "\(report.samples)", sourceLocation: sourceLocation)
    }
}

/// Creates one transfer and returns its id.
func createTransfer(_ http: HTTPTestClient, sender: String = "alice") throws -> String {
    let response = try http.postJSON("/transfers", #"{"sender_id": "\#(sender)", "receiver_id": "bob", "amount": 100.5}"#)
    guard response.status == 202, let range = response.bodyText.range(of: #""transfer_id":""#) else {
        throw LoadError("POST /transfers answered \(response.status): \(response.bodyText)")
    }
    return String(response.bodyText[range.upperBound...].prefix(36))
}

/// Prints one line of a scenario's progress or figures.
func log(_ scenario: String, _ message: String) {
    print("[fault:\(scenario)] \(message)")
}
