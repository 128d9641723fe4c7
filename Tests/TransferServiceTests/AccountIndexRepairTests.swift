import ExactJSON
import Foundation
import RedisClient
import ServiceTestSupport
import TestSupport
import Testing
import Transfers

/// Listings and batches when something fails: each scenario has its own dev-kafka, Redis and service, so it can
/// take them down without disturbing other tests.
@Suite(.serialized)
struct AccountIndexRepairTests {
    /// Polls until `condition` holds.
    private func eventually(_ what: String, _ condition: () throws -> Bool) throws {
        for _ in 0..<600 {
            if try condition() { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw HarnessError("never happened: \(what)")
    }

    @Test func theReconcilerAddsTheEntriesOfAStuckTransfer() throws {
        let deployment = try ServiceDeployment(name: "reindex", brokers: 1, environment: ["RECONCILE_AFTER_MS": "1000"])
        defer { deployment.tearDown() }
        let instance = try deployment.addInstance()
        let client = ListingClient(http: instance.http)
        // Kafka away: the consumer cannot complete anything, so only the reconciler can repair the entries.
        try deployment.kafka.inject("down all")
        defer { try? deployment.kafka.inject("up all") }
        // A transfer whose create wrote its record and pending entry but none of its index entries.
        let account = ListingClient.account("stuck")
        let transfer = Transfer(
            id: .random(), senderID: account, receiverID: "bob", amount: Amount(minorUnits: 300), status: .initiated, version: 1,
            createdAt: "2026-03-04T05:06:07.089Z", updatedAt: "2026-03-04T05:06:07.089Z"
        )
        let pending = "transfers:pending:{\(RedisSlot.hashTag(of: RedisSlot.of(key: "transfer:\(transfer.id)")))}"
        _ = try deployment.withRedis { try $0.command(["SET", "transfer:\(transfer.id)", transfer.json]) }
        _ = try deployment.withRedis { try $0.command(["ZADD", pending, "0", transfer.id.rawValue]) }
        #expect(try client.page([("account", account)]).transfers.isEmpty)
        try eventually("the reconciler listed the stuck transfer") {
            try client.page([("account", account)]).transfers == [transfer]
        }
        #expect(try client.page([("account", "bob"), ("role", "receiver")]).transfers == [transfer])
    }

    @Test func batchItemsWhoseRepliesAreLostAreReportedOneByOneWithTheirIDs() throws {
        let deployment = try ServiceDeployment(
            name: "batchlost", brokers: 1, environment: ["REQUEST_TIMEOUT_MS": "1000", "RECONCILE_AFTER_MS": "1000"]  // a sweep every 250 ms
        )
        defer { deployment.tearDown() }
        let instance = try deployment.addInstance()
        let client = ListingClient(http: instance.http)
        let account = ListingClient.account("lost")
        let items = (0..<20).map { #"{"sender_id":"\#(account)","receiver_id":"bob-\#($0)","amount":\#($0 + 1)}"# }
        // Redis takes the scripts into its socket buffer and runs them only after the service gave up waiting.
        deployment.freezeRedis()
        let response: HTTPTestResponse
        do {
            defer { deployment.thawRedis() }
            response = try client.postBatch(items + [#"{"sender_id":"\#(account)","receiver_id":"bob"}"#])
        }
        let results = try ListingClient.results(response)
        #expect(results.count == 21)
        var ids: [String] = []
        for result in results.prefix(20) {
            #expect(result["status"] == .number("503"), "\(result)")
            guard case .string(let type)? = result["type"], case .string(let id)? = result["transfer_id"] else {
                throw HarnessError("no type or transfer_id in \(result)")
            }
            #expect(type.hasSuffix(":outcome-unknown"))
            ids.append(id)
        }
        #expect(results[20]["status"] == .number("422"))
        // The outcome was indeed unknown: the scripts ran once Redis woke up, and the transfers go on normally.
        for id in ids {
            _ = try deployment.waitForStoredTransfer(id) { $0.status == .completed }
        }
        #expect(Set(try client.walk([("account", account)]).transfers.map(\.id.rawValue)) == Set(ids))
    }

    @Test func aBatchForWhichRedisIsDownIsOne503AndWritesNothing() throws {
        let deployment = try ServiceDeployment(name: "batchdown", brokers: 1, environment: ["REQUEST_TIMEOUT_MS": "1000"])
        defer { deployment.tearDown() }
        let instance = try deployment.addInstance()
        let client = ListingClient(http: instance.http)
        let account = ListingClient.account("down")
        deployment.stopRedis()
        for headers in [[], [("Idempotency-Key", UUID().uuidString)]] {
            let response = try client.postBatch([#"{"sender_id":"\#(account)","receiver_id":"bob","amount":1}"#], headers: headers)
            #expect(response.status == 503, "\(response.bodyText)")
            #expect(response.headers["content-type"] == "application/problem+json")
            #expect(response.bodyText.contains("nothing was changed"))
        }
        #expect(try instance.http.get(ListingClient.path([("account", account)])).status == 503)
        try deployment.restartRedis()
        // Once the service has reconnected, the account has nothing: no item was written.
        var page: ListedPage?
        try eventually("the service reconnected") {
            page = try? client.page([("account", account)])
            return page != nil
        }
        #expect(page?.transfers.isEmpty == true)
    }

    @Test func withARetentionEachCreateTrimsEntriesOlderThanTheRetentionPlusADay() throws {
        let deployment = try ServiceDeployment(name: "trim", brokers: 1, environment: ["TRANSFER_RETENTION": "1h"])
        defer { deployment.tearDown() }
        let instance = try deployment.addInstance()
        let client = ListingClient(http: instance.http)
        let account = ListingClient.account("trim")
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        // Entries of transfers long expired (25 h + 1 min old) and of one still within its retention and a day (24 h).
        let expired = indexMember(ListingPosition(createdAtMilliseconds: now - 90_060_000, id: .random()))
        let recent = indexMember(ListingPosition(createdAtMilliseconds: now - 86_400_000, id: .random()))
        _ = try deployment.withRedis { try $0.command(["ZADD", "{account:\(account)}:sent", "0", expired, "0", recent]) }
        let created = try client.create(sender: account, receiver: "bob")
        let members = try deployment.withRedis { try $0.command(["ZRANGE", "{account:\(account)}:sent", "0", "-1"]) }.array?.compactMap(\.string)
        #expect(members == [recent, indexMember(created.position)])
    }
}
