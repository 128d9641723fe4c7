import ExactJSON
import Foundation
import KafkaClient
import RedisClient
import ServiceTestSupport
import TestSupport
import Testing
import Transfers

/// How transfers are kept in Redis: the key layout, the consumer's rules for records that are missing, keys
/// scoped per API token, and retention.
@Suite struct StorageRulesTests {
    let harness = ServiceHarness.shared

    private func command(_ arguments: [String]) throws -> RedisReply {
        try harness.redis.withConnection { try $0.command(arguments) }
    }

    @Test func everyKeyOfATransferLivesInTheRecordsSlot() throws {
        let created = try harness.http.postJSON(
            "/transfers", #"{"sender_id":"slot-check","receiver_id":"bob","amount":1}"#, headers: [("Idempotency-Key", UUID().uuidString)]
        )
        #expect(created.status == 202)
        guard case .object(let body) = try JSONValue.parse(created.body), case .string(let id)? = body["transfer_id"] else {
            throw HarnessError("no id in \(created.bodyText)")
        }
        _ = try harness.waitForStoredTransfer(id) { $0.status == .completed }
        let record = "transfer:\(id)"
        let slot = RedisSlot.of(key: record)
        let keys = [record, "{\(record)}:history", "{\(record)}:idempotency"]
        #expect(try command(["EXISTS"] + keys).integer == 3)
        for key in keys {
            #expect(RedisSlot.of(key: key) == slot, "\(key)")
        }
        // The per-slot outbox and pending index the scripts touched: the transfer left both once done.
        let tag = RedisSlot.hashTag(of: slot)
        #expect(RedisSlot.of(key: "transfers:pending:{\(tag)}") == slot)
        #expect(RedisSlot.of(key: "transfers:outbox:{\(tag)}") == slot)
        #expect(try command(["ZSCORE", "transfers:pending:{\(tag)}", id]) == .null)
    }

    @Test func anEventNeverBringsBackATransferThatWasDeleted() throws {
        // A sketch record, completed by its event: it now has a history.
        let id = TransferID.random().rawValue
        try harness.storeRecord(id, ServiceHarness.sketchJSON(id: id, version: 1, status: "initiated"))
        try harness.publish(key: id, ServiceHarness.sketchJSON(id: id, version: 1, status: "initiated"))
        _ = try harness.waitForStoredTransfer(id) { $0.status == .completed }
        // Deleted (by hand, or expired): a redelivered event must not recreate it.
        _ = try command(["DEL", "transfer:\(id)"])
        try harness.publish(key: id, ServiceHarness.sketchJSON(id: id, version: 1, status: "initiated"))
        try harness.waitUntilConsumed(key: id)
        #expect(try harness.storedRecord(id) == nil)
        #expect(harness.instance.waitForLogLine { $0.contains("no longer stored") && $0.contains(id) })
    }

    @Test func anInvalidEventForAnUnknownTransferIsNotRecreated() throws {
        let id = TransferID.random().rawValue
        // Sender and receiver are the same: a request like this is refused, so is recreating it.
        try harness.publish(key: id, ServiceHarness.sketchJSON(id: id, version: 1, status: "initiated", sender: "carol", receiver: "carol"))
        try harness.waitUntilConsumed(key: id)
        #expect(try harness.storedRecord(id) == nil)
        #expect(harness.instance.waitForLogLine { $0.contains("dead-lettering") && $0.contains("must differ from sender_id") })
    }
}

/// Idempotency keys belong to the API token that used them, and finished transfers can expire.
@Suite struct ScopedKeysAndRetentionTests {
    @Test func twoTokensUsingOneKeyGetTheirOwnTransfers() throws {
        let redis = try RedisServer.start()
        defer { redis.stop() }
        let service = ServiceInstance(name: "transfer-service-scopes", environment: [
            "API_TOKENS": "token-a,token-b", "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(redis.port),
            "KAFKA_TOPIC_TRANSFERS": "scope_transfers", "KAFKA_BOOTSTRAP_SERVERS": DevKafka.shared.bootstrapServers,
            "KAFKA_GROUP_ID": "scope-tests", "TRANSFER_RETENTION": "1h",
        ])
        try service.start()
        defer { service.terminate() }
        let body = #"{"sender_id":"alice","receiver_id":"bob","amount":3}"#
        func create(_ token: String) throws -> HTTPTestResponse {
            try service.http.postJSON("/transfers", body, headers: [("Authorization", "Bearer \(token)"), ("Idempotency-Key", "shared-key")])
        }
        let a = try create("token-a")
        let b = try create("token-b")
        let aAgain = try create("token-a")
        #expect(a.status == 202)
        #expect(b.status == 202)
        #expect(b.headers["idempotent-replayed"] == nil)
        #expect(aAgain.status == 202)
        #expect(aAgain.headers["idempotent-replayed"] == "true")
        #expect(aAgain.bodyText == a.bodyText)
        #expect(a.headers["location"] != b.headers["location"])

        // Retention: once completed, the record, history and idempotency record expire within the hour.
        guard let location = a.headers["location"] else { throw HarnessError("no Location") }
        let id = String(location.dropFirst("/transfers/".count))
        let pool = RedisConnectionPool(configuration: RedisConfiguration(host: "127.0.0.1", port: redis.port))
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, !(try pool.withConnection { try $0.command(["GET", "transfer:\(id)"]) }.string?.contains("completed") ?? false) {
            Thread.sleep(forTimeInterval: 0.05)
        }
        for key in ["transfer:\(id)", "{transfer:\(id)}:history", "{transfer:\(id)}:idempotency"] {
            let ttl = try pool.withConnection { try $0.command(["TTL", key]) }.integer ?? -3
            #expect((3_000...3_600).contains(ttl), "\(key): \(ttl)")
        }
    }
}
