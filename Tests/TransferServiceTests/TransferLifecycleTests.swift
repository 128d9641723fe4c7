import ExactJSON
import Foundation
import KafkaClient
import ServiceTestSupport
import Synchronization
import TestSupport
import Testing
import Transfers

/// A transfer's whole path through the real service: HTTP, Redis, Kafka, the consumer, and back.
@Suite struct TransferLifecycleTests {
    let harness = ServiceHarness.shared

    private func createTransfer(amount: String = "100.5") throws -> (id: String, body: JSONObject) {
        let response = try harness.http.postJSON("/transfers", #"{"sender_id":"alice","receiver_id":"bob","amount":\#(amount)}"#)
        try #require(response.status == 202, "\(response.bodyText)")
        guard case .object(let body) = try JSONValue.parse(response.body), case .string(let id)? = body["transfer_id"] else {
            throw HarnessError("unexpected body \(response.bodyText)")
        }
        return (id, body)
    }

    /// `2026-11-26T08:04:39.123Z`: RFC 3339 in UTC.
    static func isRFC3339UTC(_ value: JSONValue) -> Bool {
        guard case .string(let text) = value else { return false }
        return text.wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z/) != nil
    }

    @Test func createdTransferIsAcceptedThenReadBackCompletedWithVersion2() throws {
        let response = try harness.http.postJSON("/transfers", #"{"sender_id":"alice","receiver_id":"bob","amount":100.5}"#)
        #expect(response.status == 202)
        #expect(response.headers["content-type"] == "application/json")
        let body = try JSONValue.parse(response.body)
        guard case .object(let object) = body, case .string(let id)? = object["transfer_id"] else {
            Issue.record("no transfer_id in \(response.bodyText)")
            return
        }
        #expect(TransferID(id)?.rawValue == id, "a lowercase UUID")
        #expect(Array(id)[14] == "4", "UUID version 4")
        #expect(response.headers["location"] == "/transfers/\(id)")
        let created = try #require(object["created_at"])
        #expect(object == JSONObject([
            "transfer_id": .string(id), "sender_id": .string("alice"), "receiver_id": .string("bob"),
            "amount": .number("100.5"), "status": .string("initiated"), "version": .number("1"),
            "created_at": created, "updated_at": created,
        ]))
        #expect(Self.isRFC3339UTC(created))
        #expect(response.headers["etag"] == #""1""#)

        _ = try harness.waitForStoredTransfer(id) { $0.status == .completed }
        let read = try harness.http.get("/transfers/\(id)")
        #expect(read.status == 200)
        #expect(read.headers["etag"] == #""2""#)
        guard case .object(let completed) = try JSONValue.parse(read.body) else { throw HarnessError("not an object") }
        let updated = try #require(completed["updated_at"])
        #expect(Self.isRFC3339UTC(updated))
        #expect(completed == JSONObject([
            "transfer_id": .string(id), "sender_id": .string("alice"), "receiver_id": .string("bob"),
            "amount": .number("100.5"), "status": .string("completed"), "version": .number("2"),
            "created_at": created, "updated_at": updated,
        ]))
    }

    @Test(arguments: ["0.1", "100.50", "999999999999.99", "1000000000000", "1e2"])
    func amountsSurviveTheRoundTripExactly(amount: String) throws {
        let (id, body) = try createTransfer(amount: amount)
        let expected = try Amount(jsonNumber: amount).jsonNumber
        #expect(body["amount"] == .number(expected))
        let completed = try harness.waitForStoredTransfer(id) { $0.status == .completed }
        #expect(completed.amount.jsonNumber == expected)
        let read = try harness.http.get("/transfers/\(id)")
        #expect(read.bodyText.contains(#""amount":\#(expected),"#))
    }

    @Test func publishedMessageIsKeyedByTransferIDAndCarriesTheSketchFields() throws {
        let (id, _) = try createTransfer()
        let message = try #require(try messages(in: harness.topic, withKey: id, count: 1).first, "no message with key \(id)")
        guard case .object(let event) = try JSONValue.parse(message.value) else { throw HarnessError("not an object") }
        #expect(Array(event.names.prefix(6)) == ["transfer_id", "sender_id", "receiver_id", "amount", "status", "version"])
        #expect(event["transfer_id"] == .string(id))
        #expect(event["sender_id"] == .string("alice"))
        #expect(event["receiver_id"] == .string("bob"))
        #expect(event["amount"] == .number("100.5"))
        #expect(event["status"] == .string("initiated"))
        #expect(event["version"] == .number("1"))
    }

    @Test func redeliveredEventLeavesVersion2() throws {
        let (id, body) = try createTransfer()
        _ = try harness.waitForStoredTransfer(id) { $0.version == 2 }
        let before = try harness.storedRecord(id)

        try harness.publish(key: id, JSONValue.object(body).serialized)
        try harness.publish(key: id, JSONValue.object(body).serialized)
        try harness.waitUntilConsumed(key: id)

        #expect(try harness.storedRecord(id) == before)
        #expect(try harness.http.get("/transfers/\(id)").bodyText.contains(#""version":2"#))
    }

    @Test func staleEventLeavesANewerRecordAlone() throws {
        let id = TransferID.random().rawValue
        let newer = ServiceHarness.sketchJSON(id: id, version: 5, status: "completed")
        try harness.storeRecord(id, newer)

        try harness.publish(key: id, ServiceHarness.sketchJSON(id: id, version: 3, status: "initiated"))
        try harness.waitUntilConsumed(key: id)

        #expect(try harness.storedRecord(id) == newer)
    }

    @Test func sketchFormatRecordAndEventAreCompleted() throws {
        let id = TransferID.random().rawValue
        let sketch = ServiceHarness.sketchJSON(id: id, version: 1, status: "initiated", amount: "250.75")
        try harness.storeRecord(id, sketch)
        try harness.publish(key: nil, sketch)

        let completed = try harness.waitForStoredTransfer(id) { $0.status == .completed }
        #expect(completed.version == 2)
        #expect(completed.amount == Amount(minorUnits: 25075))
        let read = try harness.http.get("/transfers/\(id)")
        #expect(read.status == 200)
        #expect(read.bodyText.contains(#""amount":250.75,"status":"completed","version":2"#))
    }

    @Test func eventForAnUnknownTransferRecreatesItAsCompleted() throws {
        let id = TransferID.random().rawValue
        try harness.publish(key: id, ServiceHarness.sketchJSON(id: id, version: 1, status: "initiated"))
        let recreated = try harness.waitForStoredTransfer(id) { _ in true }
        #expect(recreated.status == .completed)
        #expect(recreated.version == 2)
    }

    @Test func poisonMessagesAreSkippedAndLaterEventsStillProcessed() throws {
        let key = "poison-\(UUID().uuidString)"
        let poison: [[UInt8]] = [
            Array("not json".utf8), Array("[]".utf8), Array(#"{"transfer_id":"x"}"#.utf8), [0xFF, 0x00, 0xFE],
            Array(ServiceHarness.sketchJSON(id: TransferID.random().rawValue, version: 1, status: "initiated", amount: "0.001").utf8),
            Array(#"{"transfer_id":"\#(TransferID.random())","sender_id":"a","receiver_id":"b","amount":"1","status":"initiated","version":1}"#.utf8),
            [],
        ]
        for message in poison {
            try harness.publish(key: key, value: message)
        }
        // The marker shares the partition and comes after the poison: it is processed only if they were skipped.
        try harness.waitUntilConsumed(key: key)

        // Each one was parked in the dead-letter topic, unchanged, with its reason.
        let deadLetters = try messages(in: harness.topic + ".dlq", withKey: key, count: poison.count)
        #expect(deadLetters.map(\.value) == poison)
        for message in deadLetters {
            let reason = message.headers.first { $0.key == "reason" }.map { String(decoding: $0.value, as: UTF8.self) }
            #expect(reason?.isEmpty == false, "no reason header on \(message)")
        }
    }

    /// A message larger than the dead-letter producer takes (Kafka brokers accept a little over 1 MB by default) is
    /// parked as a stand-in that says where the original is, and the partition moves on past it.
    @Test func aPoisonMessageTooLargeToDeadLetterIsParkedAsAStandIn() throws {
        let key = "huge-\(UUID().uuidString)"
        try harness.publish(key: key, value: [UInt8](repeating: UInt8(ascii: "x"), count: 1_000_500))
        // The marker shares the partition and comes after it: it is processed only if the huge one was parked.
        try harness.waitUntilConsumed(key: key)

        let parked = try #require(try messages(in: harness.topic + ".dlq", withKey: key, count: 1).first)
        func header(_ name: String) -> String? {
            parked.headers.first { $0.key == name }.map { String(decoding: $0.value, as: UTF8.self) }
        }
        #expect(parked.value.isEmpty)
        #expect(header("value_omitted")?.hasPrefix("1000500 bytes and 0 headers: too large for \(harness.topic).dlq") == true, "\(parked.headers)")
        #expect(header("source")?.hasPrefix("\(harness.topic)/") == true)
        #expect(header("reason")?.isEmpty == false)
    }

    /// Reads `topic` from the start in a fresh group until `count` messages with `key` were seen (in order).
    private func messages(in topic: String, withKey key: String, count: Int) throws -> [KafkaMessage] {
        let consumer = try KafkaConsumer(configuration: KafkaConsumerConfiguration(
            bootstrapServers: DevKafka.shared.bootstrapServers, groupId: "inspector-\(UUID().uuidString)"
        ))
        defer { consumer.close() }
        try consumer.subscribe(topics: [topic])
        let deadline = Date().addingTimeInterval(60)
        var found: [KafkaMessage] = []
        while found.count < count, Date() < deadline {
            if let message = try consumer.poll(timeout: .milliseconds(200)), message.key == Array(key.utf8) {
                found.append(message)
            }
        }
        return found
    }

    @Test func thousandConcurrentCreatesAllComplete() throws {
        let total = 1000
        let threads = 32
        let ids = Mutex<[String]>([])
        let failures = Mutex<[String]>([])
        let started = Date()
        let group = DispatchGroup()
        for worker in 0..<threads {
            group.enter()
            Thread.detachNewThread { [harness] in
                defer { group.leave() }
                for index in stride(from: worker, to: total, by: threads) {
                    do {
                        let response = try harness.http.postJSON(
                            "/transfers", #"{"sender_id":"sender-\#(index)","receiver_id":"receiver-\#(index)","amount":\#(index + 1).25}"#
                        )
                        guard response.status == 202, case .object(let body) = try JSONValue.parse(response.body),
                              case .string(let id)? = body["transfer_id"]
                        else {
                            failures.withLock { $0.append("\(response.status) \(response.bodyText)") }
                            continue
                        }
                        ids.withLock { $0.append(id) }
                    } catch {
                        failures.withLock { $0.append("\(error)") }
                    }
                }
            }
        }
        group.wait()
        let accepted = Date().timeIntervalSince(started)
        #expect(failures.withLock { $0 } == [])
        let allIDs = ids.withLock { $0 }
        #expect(Set(allIDs).count == total)

        for id in allIDs {
            let transfer = try harness.waitForStoredTransfer(id, timeout: 120) { $0.status == .completed }
            #expect(transfer.version == 2)
        }
        let completed = Date().timeIntervalSince(started)
        print("1000 concurrent creates: all accepted in \(String(format: "%.2f", accepted)) s, all completed in \(String(format: "%.2f", completed)) s")
    }
}
