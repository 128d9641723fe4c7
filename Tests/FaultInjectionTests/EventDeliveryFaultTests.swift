import Foundation
import KafkaClient
import ServiceTestSupport
import TestSupport
import Testing
import Transfers

extension FaultInjectionTests {
    /// A message the consumer can never process, as published and as it must reappear on the dead-letter topic.
    struct PoisonMessage {
        var key: String?
        var value: [UInt8]
        var what: String
    }

    static func poisonMessages() -> [PoisonMessage] {
        let id = TransferID.random().rawValue
        func text(_ key: String?, _ value: String, _ what: String) -> PoisonMessage {
            PoisonMessage(key: key, value: Array(value.utf8), what: what)
        }
        return [
            text("poison-text", "not json at all", "plain text"),
            PoisonMessage(key: "poison-binary", value: [0xFF, 0xFE, 0x00, 0x01, 0x80], what: "binary, not UTF-8"),
            PoisonMessage(key: "poison-empty", value: [], what: "empty value"),
            text(nil, "[1, 2, 3]", "a JSON array, no key"),
            text("poison-trailing", ServiceHarness.sketchJSON(id: id, version: 1, status: "initiated") + " trailing", "JSON with trailing data"),
            text("poison-missing", #"{"transfer_id": "\#(id)"}"#, "fields missing"),
            text(id, ServiceHarness.sketchJSON(id: id, version: 1, status: "initiated").replacingOccurrences(of: #""version": 1"#, with: #""version": "one""#), "version not a number"),
            text(id, ServiceHarness.sketchJSON(id: id, version: 1, status: "initiated", amount: "0.001"), "amount with three decimals"),
            text("poison-id", ServiceHarness.sketchJSON(id: "not-a-uuid", version: 1, status: "initiated"), "transfer_id not a UUID"),
            text(id, ServiceHarness.sketchJSON(id: id, version: 1, status: "paid"), "unknown status"),
        ]
    }

    @Test func repeatedStaleUnknownAndPoisonEvents() throws {
        let deployment = try ServiceDeployment(name: "events", environment: Self.environment)
        defer { deployment.tearDown() }
        let instance = try deployment.addInstance(clientTimeout: Self.clientTimeout)

        // 50 real transfers, completed before the noise starts.
        var originals: [(id: String, event: String)] = []
        for index in 0..<50 {
            let response = try instance.http.postJSON("/transfers", #"{"sender_id": "events-\#(index)", "receiver_id": "bob", "amount": 12.34}"#)
            try #require(response.status == 202, "\(response.status): \(response.bodyText)")
            let transfer = try Transfer(json: response.body)
            originals.append((transfer.id.rawValue, response.bodyText))
        }
        let ids = originals.map(\.id)
        let warmUp = try PromiseCheck.run(deployment: deployment, acceptedIDs: ids, readTopics: false, timeout: .seconds(60))
        try #require(warmUp.lost.isEmpty, "the 50 transfers did not complete: \(warmUp.lost.prefix(3))")
        let before = try deployment.storedRecords(of: ids)

        // Each original event 5 more times, a stale variant (same version, other amount) and a future version;
        // unknown ids 3 times each; poison messages in between.
        let unknownIDs = (0..<20).map { _ in TransferID.random().rawValue }
        let poison = Self.poisonMessages()
        var messages: [(key: String?, value: [UInt8])] = []
        for (index, original) in originals.enumerated() {
            for _ in 0..<5 { messages.append((original.id, Array(original.event.utf8))) }
            var stale = try Transfer(json: Array(original.event.utf8))
            stale.amount = try Amount(jsonNumber: "99.99")
            messages.append((original.id, Array(stale.json.utf8)))
            var future = try Transfer(json: Array(original.event.utf8))
            future.version = 7
            messages.append((original.id, Array(future.json.utf8)))
            if index < unknownIDs.count {
                let event = ServiceHarness.sketchJSON(id: unknownIDs[index], version: 1, status: "initiated")
                for _ in 0..<3 { messages.append((unknownIDs[index], Array(event.utf8))) }
            }
            if index < poison.count {
                messages.append((poison[index].key, poison[index].value))
            }
        }
        try deployment.publish(messages)
        log("events", "published \(messages.count) events: 250 repeats, 50 stale, 50 future-versioned, 60 for 20 unknown ids, \(poison.count) poison")

        // The unknown ids are recreated from their events (the sketch's behaviour), so waiting for them shows the
        // consumer got through the noise; the dead letters are then read back until all have arrived.
        let recreatedCheck = try PromiseCheck.run(deployment: deployment, acceptedIDs: unknownIDs, readTopics: false, timeout: .seconds(60))
        #expect(recreatedCheck.lost.isEmpty, "events for unknown ids were not applied: \(recreatedCheck.lost.prefix(3))")
        var contents = TopicContents()
        let deadline = ContinuousClock.now + .seconds(60)
        repeat {
            contents = try deployment.readTopics(expectedKeys: [], quiet: .milliseconds(500))
        } while contents.deadLetters.count < poison.count && ContinuousClock.now < deadline

        // Originals untouched by every repeat, stale and future event; each applied once.
        let after = try deployment.storedRecords(of: ids)
        let changed = ids.filter { after[$0] != before[$0] }
        #expect(changed.isEmpty, "records changed by repeated or stale events: \(changed.prefix(3).map { after[$0] ?? "gone" })")
        let applied = deployment.appliedLogCounts()
        let notOnce = ids.filter { applied.completed[$0] != 1 || applied.recreated[$0] != nil }
        #expect(notOnce.isEmpty, "not applied exactly once: \(notOnce.prefix(3).map { "\($0): \(applied.completed[$0] ?? 0)" })")
        let unknownNotOnce = unknownIDs.filter { applied.recreated[$0] != 1 || applied.completed[$0] != nil }
        #expect(unknownNotOnce.isEmpty, "unknown ids not recreated exactly once: \(unknownNotOnce.prefix(3))")

        // Every poison message, and nothing else, on the DLQ: same key, same bytes, with a reason header.
        var expected = poison.map { DeadLetterKey(key: $0.key, value: $0.value) }
        var unexpected: [String] = []
        var reasons: [String] = []
        for message in contents.deadLetters {
            let key = DeadLetterKey(key: message.key.map { String(decoding: $0, as: UTF8.self) }, value: message.value)
            if let index = expected.firstIndex(of: key) {
                expected.remove(at: index)
            } else {
                unexpected.append("\(key.key ?? "no key"): \(String(decoding: message.value.prefix(80), as: UTF8.self))")
            }
            let reason = message.headers.first { $0.key == "reason" }.map { String(decoding: $0.value, as: UTF8.self) }
            #expect(reason?.isEmpty == false, "dead letter without a reason header: \(key.key ?? "no key")")
            reasons.append(reason ?? "<none>")
        }
        let missing = poison.filter { expected.contains(DeadLetterKey(key: $0.key, value: $0.value)) }.map(\.what)
        #expect(missing.isEmpty, "poison messages not on \(deployment.topic).dlq: \(missing)")
        #expect(unexpected.isEmpty, "unexpected dead letters: \(unexpected.prefix(3))")
        #expect(try deployment.outboxCount() == 0)
        #expect(instance.isRunning)

        let completionLines = applied.completed.values.reduce(0, +)
        log("events", "originals unchanged \(ids.count - changed.count)/\(ids.count), applied once \(ids.count - notOnce.count)/\(ids.count); "
            + "unknown ids recreated once \(unknownIDs.count - unknownNotOnce.count)/\(unknownIDs.count); completion log lines \(completionLines); "
            + "dead letters \(contents.deadLetters.count)/\(poison.count) (missing \(missing.count), unexpected \(unexpected.count))")
        log("events", "dead-letter reasons: \(reasons.map { String($0.prefix(60)) })")
    }

    /// A dead letter's identity: its key and value bytes.
    struct DeadLetterKey: Equatable {
        var key: String?
        var value: [UInt8]
    }
}
