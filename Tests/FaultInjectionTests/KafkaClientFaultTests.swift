import Foundation
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
