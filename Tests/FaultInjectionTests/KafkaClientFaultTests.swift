import Foundation
import Synchronization
import ServiceTestSupport
import TestSupport
import Testing

extension FaultInjectionTests {
    /// dev-kafka answers one produce request with OUT_OF_ORDER_SEQUENCE_NUMBER: the outbox's idempotent producer
    /// fails fatally and takes nothing more. The service must replace it, and every transfer must still complete.
    @Test func outboxProducerFailingFatallyIsReplacedAndCreatesStillComplete() throws {
        let deployment = try ServiceDeployment(name: "fatal", environment: Self.environment)
        defer { deployment.tearDown() }
        let instance = try deployment.addInstance(clientTimeout: Self.clientTimeout)
        let warmUp = try createTransfer(instance.http)
        _ = try PromiseCheck.run(deployment: deployment, acceptedIDs: [warmUp], readTopics: false)

        try deployment.kafka.inject("error produce 45")
        let load = LoadGenerator(targets: [instance.http], requestsPerSecond: 100)
        let report = try withLoad(load) { try load.waitUntilAccepted(300) }
        log("fatal", "load after the injected error: \(report.summary)")
        expectOnlyAcceptedOrUnavailable(report)
        #expect(report.statusCounts.keys.sorted() == [202], "creates need only Redis; a Kafka producer failing must not refuse them")

        let check = try PromiseCheck.run(deployment: deployment, acceptedIDs: [warmUp] + report.acceptedIDs)
        log("fatal", "promise: \(check.summary)")
        check.expectKept()
        let lines = instance.logLines()
        let failures = lines.filter { $0.contains("Kafka producer failed fatally") }
        let replacements = lines.filter { $0.contains("new Kafka producer in place of the failed one") }
        log("fatal", "fatal errors logged \(failures.count), producers replaced \(replacements.count): \(failures.first ?? "")")
        #expect(failures.count == 1, "one fatal error was injected")
        #expect(replacements.count == 1)
        let metrics = try instance.http.get("/metrics").bodyText
        #expect(metrics.contains("kafka_producers_replaced_total 1"), "\(metrics.split(separator: "\n").filter { $0.contains("kafka_producers") })")
    }
}

extension FaultInjectionTests {
    /// The deployment lacks its dead-letter topic. The service must not create it (nor skip poison messages): it
    /// says so once, fails readiness naming the topic, and parks the waiting message once the topic exists.
    @Test func missingDeadLetterTopicFailsReadinessAndPoisonWaitsUntilItExists() throws {
        let deployment = try ServiceDeployment(name: "nodlq", environment: Self.environment, deadLetterTopic: false)
        defer { deployment.tearDown() }
        let dlq = deployment.topic + ".dlq"
        let instance = try deployment.addInstance(start: false, clientTimeout: Self.clientTimeout)
        try instance.startWithoutWaitingForReadiness()

        let readinessWithout = try instance.http.get("/readyz")
        log("nodlq", "GET /readyz without \(dlq): \(readinessWithout.status) \(readinessWithout.bodyText)")
        #expect(readinessWithout.status == 503)
        #expect(readinessWithout.bodyText.contains(dlq), "the 503 must name the dead-letter topic")
        // Transfers do not need the dead-letter topic.
        let first = try createTransfer(instance.http)
        let firstCheck = try PromiseCheck.run(deployment: deployment, acceptedIDs: [first], readTopics: false, timeout: .seconds(60))
        #expect(firstCheck.lost.isEmpty, "a transfer did not complete although only the dead-letter topic is missing")

        try deployment.publish(key: "poison-waiting", value: Array("not a transfer".utf8))
        let missingLine = "the dead-letter topic does not exist"
        #expect(waitForLogLine(instance, containing: missingLine), "the missing topic was never reported")
        // The consumer keeps retrying (every 2 s at most) but says it once.
        Thread.sleep(forTimeInterval: 5)
        let reports = instance.logLines().filter { $0.contains(missingLine) }
        log("nodlq", "reported \(reports.count) time(s): \(reports.first ?? "")")
        #expect(reports.count == 1)
        #expect(reports.first?.contains(dlq) == true)
        #expect(try deployment.createTopic(dlq), "the service created the dead-letter topic itself")

        let second = try createTransfer(instance.http)
        let check = try PromiseCheck.run(deployment: deployment, acceptedIDs: [first, second], readTopics: false)
        #expect(check.lost.isEmpty, "transfers after the topic was created did not complete: \(check.lost)")
        #expect(waitForLogLine(instance, containing: "the dead-letter topic exists now"))
        var contents = TopicContents()
        let deadline = ContinuousClock.now + .seconds(60)
        repeat {
            contents = try deployment.readTopics(expectedKeys: [], quiet: .milliseconds(500))
        } while contents.deadLetters.count < 2 && ContinuousClock.now < deadline
        let deadLetterKeys = contents.deadLetters.compactMap { $0.key.map { String(decoding: $0, as: UTF8.self) } }
        #expect(deadLetterKeys.filter { $0 != ServiceDeployment.creationProbeKey } == ["poison-waiting"])
        var readinessWith = try instance.http.get("/readyz")
        while readinessWith.status != 200 && ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.2)
            readinessWith = try instance.http.get("/readyz")
        }
        log("nodlq", "after creating \(dlq): GET /readyz \(readinessWith.status); dead letters \(contents.deadLetters.count)")
        #expect(readinessWith.status == 200)
    }

    /// Waits (bounded) until a line of the instance's log contains `text`.
    func waitForLogLine(_ instance: ServiceInstance, containing text: String, timeout: Duration = .seconds(60)) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if instance.logLines().contains(where: { $0.contains(text) }) { return true }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return false
    }
}

extension FaultInjectionTests {
    /// Every broker answers 3 s late, so a readiness check waits out its 1 s Kafka timeout. Sixteen probes sent at
    /// once (load balancers probing one instance) share one check: each gets the 503 naming Kafka, and the service
    /// runs one or two checks, not sixteen queued behind each other.
    @Test func concurrentReadinessProbesShareOneCheck() throws {
        let deployment = try ServiceDeployment(name: "probes", environment: Self.environment)
        defer { deployment.tearDown() }
        let instance = try deployment.addInstance(clientTimeout: Self.clientTimeout)
        func checksRun() throws -> Int? {
            let line = try instance.http.get("/metrics").bodyText.split(separator: "\n").first { $0.hasPrefix("readiness_checks_total ") }
            return line.flatMap { Int($0.split(separator: " ")[1]) }
        }

        try deployment.kafka.inject("rtt all 3000")
        Thread.sleep(forTimeInterval: 0.5)
        let checksBefore = try #require(try checksRun())
        let answers = Mutex<[HTTPTestResponse]>([])
        try concurrently(16, threads: 16) { _ in
            if let answer = try? instance.http.get("/readyz") { answers.withLock { $0.append(answer) } }
        }
        let checksCaused = try #require(try checksRun()) - checksBefore
        let statuses = answers.withLock { $0.map(\.status) }
        log("probes", "16 concurrent probes with every broker 3 s late: statuses \(statuses), checks run \(checksCaused)")
        #expect(statuses == Array(repeating: 503, count: 16))
        #expect(answers.withLock { $0.allSatisfy { $0.bodyText.contains("Kafka") } }, "each 503 must name Kafka")
        #expect((1...2).contains(checksCaused), "concurrent probes must share a check")

        try deployment.kafka.inject("rtt all 0")
        let recoverBy = ContinuousClock.now + .seconds(30)
        while try instance.http.get("/readyz").status != 200, ContinuousClock.now < recoverBy {
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(try instance.http.get("/readyz").status == 200, "readiness must recover once the brokers answer in time")
    }
}
