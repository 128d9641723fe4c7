import ExactJSON
import Foundation
import RedisClient
import ServiceTestSupport
import TestSupport
import Testing
import Transfers

/// A transfer is never stuck in `initiated`, and an answer never claims more than the service knows.
extension FaultInjectionTests {
    @Test func aTransferWhoseEventWasLostBeforePublishingCompletesAfterTheReconcileWait() throws {
        let deployment = try ServiceDeployment(
            name: "reconcile", environment: ["REQUEST_TIMEOUT_MS": "3000", "RECONCILE_AFTER_MS": "3000"]
        )
        defer { deployment.tearDown() }
        let instance = try deployment.addInstance()
        let warmUp = try createTransfer(instance.http)
        _ = try deployment.waitForStoredTransfer(warmUp) { $0.status == .completed }

        // Every broker down: the event waits in the producer and its outbox entry in Redis.
        try deployment.kafka.inject("down all")
        let id = try createTransfer(instance.http, sender: "reconcile")
        // The event is lost before it was ever published: its outbox entry is deleted and the process (with the
        // producer's queue) is killed.
        let outbox = "transfers:outbox:{\(RedisSlot.hashTag(of: RedisSlot.of(key: "transfer:\(id)")))}"
        let entries = try deployment.command(["ZRANGE", outbox, "0", "-1"], key: outbox).array ?? []
        let entry = try #require(entries.compactMap(\.string).first { $0.contains(id) })
        #expect(try deployment.command(["ZREM", outbox, entry], key: outbox).integer == 1)
        instance.kill()
        try deployment.kafka.inject("up all")
        try instance.start()

        let started = ContinuousClock.now
        let completed = try deployment.waitForStoredTransfer(id, timeout: 60) { $0.status == .completed }
        log("reconcile", "completed \(started.duration(to: .now)) after the restart, without its outbox entry")
        #expect(completed.version == 2)
        let republished = deployment.instances.flatMap { $0.logLines() }.filter { $0.contains("publishing its event again") && $0.contains(id) }
        #expect(!republished.isEmpty)
    }

    @Test func aTransferWaitingBehindAStalledConsumerIsRepublishedAtGrowingIntervals() throws {
        // One partition, held up by a message the consumer can neither process nor dead-letter (the dead-letter
        // topic is missing): Kafka takes every event, and nobody reads them.
        let deployment = try ServiceDeployment(
            name: "backoff", partitions: 1, environment: ["RECONCILE_AFTER_MS": "1000"], deadLetterTopic: false
        )
        defer { deployment.tearDown() }
        let instance = try deployment.addInstance(start: false)
        try instance.startWithoutWaitingForReadiness()
        try deployment.publish(key: "poison-backoff", value: Array("not a transfer".utf8))
        #expect(waitForLogLine(instance, containing: "the dead-letter topic does not exist"))

        let id = try createTransfer(instance.http, sender: "backoff")
        Thread.sleep(forTimeInterval: 12)
        let republished = instance.logLines().filter { $0.contains("publishing its event again") && $0.contains(id) }.count
        log("backoff", "republished \(republished) times in the 12 s after its creation")
        // Claimed at ages of about 1, 2, 4 and 8 s (each claim up to one 250 ms sweep late): 3 or 4 copies. A copy
        // every reconcile wait would be about 10.
        #expect((2...5).contains(republished))

        // The consumer free again: the transfer completes once; the copies are conflicts.
        #expect(try deployment.createTopic(deployment.topic + ".dlq"))
        let completed = try deployment.waitForStoredTransfer(id) { $0.status == .completed }
        #expect(completed.version == 2)
        #expect(try deployment.command(["LLEN", "{transfer:\(id)}:history"], key: "{transfer:\(id)}:history").integer == 2)
    }

    @Test func aCreateWhoseReplyIsLostAnswersOutcomeUnknownNamingTheTransfer() throws {
        let deployment = try ServiceDeployment(name: "lostreply", brokers: 1, environment: ["REQUEST_TIMEOUT_MS": "1000"])
        defer { deployment.tearDown() }
        let instance = try deployment.addInstance()
        let warmUp = try createTransfer(instance.http)
        _ = try deployment.waitForStoredTransfer(warmUp) { $0.status == .completed }

        // Redis takes the script into its socket buffer and runs it only after the service gave up waiting.
        deployment.freezeRedis()
        let response: HTTPTestResponse
        do {
            defer { deployment.thawRedis() }
            response = try instance.http.postJSON("/transfers", #"{"sender_id": "lost-reply", "receiver_id": "bob", "amount": 7}"#)
        }
        #expect(response.status == 503)
        #expect(response.headers["content-type"]?.hasPrefix("application/problem+json") == true)
        guard case .object(let problem) = try JSONValue.parse(response.body), case .string(let id)? = problem["transfer_id"],
              case .string(let type)? = problem["type"], case .string(let detail)? = problem["detail"]
        else { throw LoadError("no transfer_id in \(response.bodyText)") }
        #expect(type.hasSuffix(":outcome-unknown"))
        #expect(!detail.contains("nothing was changed"))
        // The outcome was indeed unknown: the script ran once Redis woke up, and the transfer goes on normally.
        let stored = try deployment.waitForStoredTransfer(id, timeout: 60) { $0.status == .completed }
        #expect(stored.version == 2)
        #expect(try instance.http.get("/transfers/\(id)").status == 200)
    }

    @Test func aCreateThatWasNeverSentSaysNothingWasChanged() throws {
        let deployment = try ServiceDeployment(name: "unsent", brokers: 1, environment: ["REQUEST_TIMEOUT_MS": "1000"])
        defer { deployment.tearDown() }
        let instance = try deployment.addInstance()
        deployment.stopRedis()
        let response = try instance.http.postJSON("/transfers", #"{"sender_id": "unsent", "receiver_id": "bob", "amount": 7}"#)
        #expect(response.status == 503)
        #expect(response.bodyText.contains("nothing was changed"))
        #expect(!response.bodyText.contains("transfer_id"))
        try deployment.restartRedis()
    }
}

extension FaultInjectionTests {
    /// The brokers answer metadata requests but refuse every produce request (a retriable error, NOT_ENOUGH_REPLICAS):
    /// nothing is delivered although Kafka looks reachable. Readiness must fail once sends have gone undelivered
    /// longer than the limit, and recover once events are delivered again; the transfers complete.
    @Test func aPublisherThatCannotDeliverFailsReadinessUntilItDeliversAgain() throws {
        let deployment = try ServiceDeployment(name: "undelivered", brokers: 1, environment: Self.environment)
        defer { deployment.tearDown() }
        let instance = try deployment.addInstance(clientTimeout: Self.clientTimeout)
        let warmUp = try createTransfer(instance.http)
        _ = try deployment.waitForStoredTransfer(warmUp) { $0.status == .completed }

        // Enough refusals to outlast the producer's 15 s delivery timeout and the 30 s readiness limit.
        try deployment.kafka.inject("error produce 19 100000")
        let stuck = try createTransfer(instance.http, sender: "undelivered")
        let started = ContinuousClock.now
        var notReady: HTTPTestResponse?
        while started.duration(to: .now) < .seconds(90) {
            let readiness = try instance.http.get("/readyz")
            if readiness.status == 503 {
                notReady = readiness
                break
            }
            Thread.sleep(forTimeInterval: 1)
        }
        let unready = try #require(notReady, "readiness stayed 200 while nothing was delivered")
        log("undelivered", "/readyz 503 \(started.duration(to: .now)) after the first undelivered send: \(unready.bodyText)")
        #expect(unready.bodyText.contains("Kafka"))
        #expect(unready.bodyText.contains("Kafka is unavailable"))

        // Deliveries resume: the refusals not used yet are dropped.
        try deployment.kafka.inject("error produce clear")
        let completed = try deployment.waitForStoredTransfer(stuck, timeout: 120) { $0.status == .completed }
        #expect(completed.version == 2)
        var ready = false
        let deadline = ContinuousClock.now + .seconds(60)
        while !ready, ContinuousClock.now < deadline {
            ready = try instance.http.get("/readyz").status == 200
            if !ready { Thread.sleep(forTimeInterval: 1) }
        }
        #expect(ready, "readiness recovers once events are delivered")
    }
}
