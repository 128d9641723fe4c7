import Foundation
import ServiceTestSupport
import TestSupport
import Testing
import Transfers

extension FaultInjectionTests {
    /// One event of a batch whose script call Redis answers with an error (its key holds a hash, so the script's
    /// GET fails with WRONGTYPE) must be dead-lettered alone: the events around it complete.
    @Test func anEventRedisRefusesIsDeadLetteredAloneAndItsBatchCompletes() throws {
        let deployment = try ServiceDeployment(name: "batch", partitions: 1, environment: Self.environment)
        defer { deployment.tearDown() }
        let instance = try deployment.addInstance(clientTimeout: Self.clientTimeout)
        let warmUp = try createTransfer(instance.http)
        _ = try PromiseCheck.run(deployment: deployment, acceptedIDs: [warmUp], readTopics: false)

        let refused = TransferID.random().rawValue
        _ = try deployment.withRedis { try $0.command(["HSET", "transfer:\(refused)", "not", "a transfer"]) }
        let before = (0..<20).map { _ in TransferID.random().rawValue }
        let after = (0..<20).map { _ in TransferID.random().rawValue }
        // One partition and one publish: the consumer reads them in order, in one batch or a few.
        let messages = (before + [refused] + after).map { id in
            (key: Optional(id), value: Array(ServiceHarness.sketchJSON(id: id, version: 1, status: "initiated").utf8))
        }
        try deployment.publish(messages)

        // Events for ids Redis does not have are recreated as completed (the sketch's behaviour).
        let check = try PromiseCheck.run(deployment: deployment, acceptedIDs: before + after, readTopics: false, timeout: .seconds(60))
        log("batch", "events around the refused one: \(check.completed) of \(before.count + after.count) completed")
        #expect(check.lost.isEmpty, "events of the batch were held back by the one Redis refused: \(check.lost.prefix(3))")
        // The consumer went on past that batch.
        let later = (0..<20).map { _ in TransferID.random().rawValue }
        try deployment.publish(later.map { id in
            (key: Optional(id), value: Array(ServiceHarness.sketchJSON(id: id, version: 1, status: "initiated").utf8))
        })
        let laterCheck = try PromiseCheck.run(deployment: deployment, acceptedIDs: later, readTopics: false, timeout: .seconds(60))
        #expect(laterCheck.lost.isEmpty, "events published after the refused one were never applied: \(laterCheck.lost.prefix(3))")
        let applied = deployment.appliedLogCounts().recreated
        let notOnce = (before + after + later).filter { applied[$0] != 1 }
        #expect(notOnce.isEmpty, "events not applied exactly once by the logs: \(notOnce.prefix(3))")
        var contents = TopicContents()
        let deadline = ContinuousClock.now + .seconds(60)
        repeat {
            contents = try deployment.readTopics(expectedKeys: [], quiet: .milliseconds(500))
        } while contents.deadLetters.isEmpty && ContinuousClock.now < deadline
        let reasons = contents.deadLetters.map { message in
            message.headers.first { $0.key == "reason" }.map { String(decoding: $0.value, as: UTF8.self) } ?? "<none>"
        }
        log("batch", "dead letters: \(reasons)")
        #expect(contents.deadLetters.map { $0.key.map { String(decoding: $0, as: UTF8.self) } } == [refused])
        #expect(reasons.first?.contains("WRONGTYPE") == true)
        let stillAHash = try deployment.withRedis { try $0.command(["TYPE", "transfer:\(refused)"]) }
        #expect(stillAHash.string == "hash")
    }
}
