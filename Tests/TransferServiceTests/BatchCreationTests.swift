import ExactJSON
import Foundation
import RedisClient
import ServiceTestSupport
import TestSupport
import Testing
import Transfers

/// `POST /transfers/batch`: many creates in one request, each all or nothing on its own, on the real stack.
@Suite struct BatchCreationTests {
    let harness = ServiceHarness.shared
    var client: ListingClient { ListingClient(http: harness.http) }

    private func command(_ arguments: [String]) throws -> RedisReply {
        try harness.redis.withConnection { try $0.command(arguments) }
    }

    /// Entries in both of an account's indexes.
    private func indexEntries(_ account: String) throws -> Int64 {
        try (command(["ZCARD", "{account:\(account)}:sent"]).integer ?? 0) + (command(["ZCARD", "{account:\(account)}:received"]).integer ?? 0)
    }

    /// Waits until Kafka confirmed every event of `id` (the outbox of its slot holds none) and the consumer has
    /// processed every message published for it: nothing about it arrives later.
    private func waitUntilSettled(_ id: TransferID) throws {
        let outbox = "transfers:outbox:{\(RedisSlot.hashTag(of: RedisSlot.of(key: "transfer:\(id.rawValue)")))}"
        let deadline = Date().addingTimeInterval(60)
        while try (command(["ZRANGE", outbox, "0", "-1"]).array ?? []).contains(where: { $0.string?.contains(id.rawValue) == true }) {
            guard Date() < deadline else { throw HarnessError("the outbox still holds an event of \(id.rawValue)") }
            Thread.sleep(forTimeInterval: 0.05)
        }
        try harness.waitUntilConsumed(key: id.rawValue)
    }

    /// Invalid items of every kind a single create refuses with 422.
    private static func invalidItem(_ variant: Int, account: String) -> String {
        switch variant % 5 {
        case 0: #"{"sender_id":"\#(account)","receiver_id":"bob"}"#
        case 1: #"{"sender_id":"\#(account)","receiver_id":"\#(account)","amount":1}"#
        case 2: #"{"sender_id":"\#(account)","receiver_id":"bob","amount":0.001}"#
        case 3: #"{"sender_id":"\#(account)","receiver_id":"bob","amount":1,"status":"completed"}"#
        default: #"{"sender_id":"\#(String(repeating: "x", count: 65))","receiver_id":"\#(account)","amount":"5"}"#
        }
    }

    private static func validItem(_ index: Int, account: String) -> String {
        index.isMultiple(of: 2)
            ? #"{"sender_id":"\#(account)","receiver_id":"payee-\#(index % 7)","amount":\#(index + 1).50}"#
            : #"{"sender_id":"payer-\#(index % 7)","receiver_id":"\#(account)","amount":\#(index + 1)}"#
    }

    @Test func aThousandItemsWithInvalidOnesMixedInCreateExactlyTheValidOnes() throws {
        let account = ListingClient.account("batch")
        let items = (0..<1000).map { $0 % 10 == 3 ? Self.invalidItem($0 / 10, account: account) : Self.validItem($0, account: account) }
        let response = try client.postBatch(items)
        #expect(response.headers["idempotent-replayed"] == nil)
        let results = try ListingClient.results(response)
        #expect(results.count == 1000)

        var created: [Transfer] = []
        for (index, result) in results.enumerated() {
            if index % 10 == 3 {
                // The same status and errors as a single create of that item.
                let single = try harness.http.postJSON("/transfers", items[index])
                #expect(single.status == 422)
                guard case .object(let problem) = try JSONValue.parse(single.body) else { throw HarnessError("not a problem") }
                #expect(result["status"] == .number("422"))
                #expect(result["errors"] == problem["errors"], "item \(index)")
                #expect(result["type"] == problem["type"])
                #expect(result["transfer"] == nil)
            } else {
                let transfer = try ListingClient.transfer(of: result)
                let request = try TransferRequest(json: Array(items[index].utf8))
                #expect((transfer.senderID, transfer.receiverID, transfer.amount) == (request.senderID, request.receiverID, request.amount))
                #expect((transfer.status, transfer.version) == (.initiated, 1))
                created.append(transfer)
            }
        }
        #expect(created.count == 900)
        #expect(Set(created.map(\.id)).count == 900)
        // Exactly the valid items are stored and indexed: nothing was written for the invalid ones.
        let listed = try client.walk([("account", account), ("limit", "100")]).transfers.map(\.id)
        #expect(listed.count == 900)
        #expect(Set(listed) == Set(created.map(\.id)))
        #expect(try indexEntries(account) == 900)
        #expect(try indexEntries(String(repeating: "x", count: 65)) == 0)
        // And each completes, like a single create.
        for transfer in created {
            _ = try harness.waitForStoredTransfer(transfer.id.rawValue) { $0.status == .completed && $0.version == 2 }
        }
    }

    @Test func aRepeatedKeyedBatchReplaysEveryResultAndCreatesNothing() throws {
        let account = ListingClient.account("replayed-batch")
        let key = UUID().uuidString
        let items = (0..<50).map { $0 % 10 == 3 ? Self.invalidItem($0, account: account) : Self.validItem($0, account: account) }
        let first = try client.postBatch(items, headers: [("Idempotency-Key", key)])
        let firstResults = try ListingClient.results(first)
        #expect(firstResults.filter { $0["status"] == .number("202") }.count == 45)
        // Each item's idempotency record lives with its transfer (its own slot).
        for result in firstResults where result["status"] == .number("202") {
            let id = try ListingClient.transfer(of: result).id
            #expect(try command(["EXISTS", "{transfer:\(id)}:idempotency"]).integer == 1)
        }
        _ = try harness.waitForStoredTransfer(try ListingClient.transfer(of: firstResults[0]).id.rawValue) { $0.status == .completed }

        // The same batch, formatted differently (1.50 as 1.5): the first results again, nothing new.
        let reformatted = items.map { $0.replacingOccurrences(of: ".50}", with: ".5}") }
        #expect(reformatted != items)
        let repeated = try client.postBatch(reformatted, headers: [("Idempotency-Key", key)])
        #expect(repeated.status == 200)
        #expect(repeated.headers["idempotent-replayed"] == "true")
        #expect(repeated.body == first.body)
        #expect(try client.walk([("account", account)]).transfers.count == 45)
        #expect(try indexEntries(account) == 45)

        // The same key with a different batch: 422 for the whole request, nothing written.
        let otherAccount = ListingClient.account("other-batch")
        for different in [
            Array(items.dropLast()) + [Self.validItem(99, account: account)],
            Array(items.prefix(10)),
            items + [Self.validItem(50, account: otherAccount)],
        ] {
            let refused = try client.postBatch(Array(different), headers: [("Idempotency-Key", key)])
            #expect(refused.status == 422, "\(refused.bodyText)")
            #expect(refused.headers["content-type"] == "application/problem+json")
            #expect(refused.bodyText.contains("idempotency-key-reused"))
        }
        #expect(try indexEntries(account) == 45)
        #expect(try indexEntries(otherAccount) == 0)
        // A key of a batch is not a key of a single create: each names its own transfers.
        #expect(try harness.http.postJSON("/transfers", items[0], headers: [("Idempotency-Key", key)]).status == 202)
    }

    @Test func aRetryAfterAPartialFailureCreatesOnlyTheMissingItems() throws {
        let account = ListingClient.account("partial")
        let key = UUID().uuidString
        let items = (0..<10).map { Self.validItem($0, account: account) }
        let first = try ListingClient.results(try client.postBatch(items, headers: [("Idempotency-Key", key)])).map(ListingClient.transfer(of:))
        // Every event of the items deleted next delivered and consumed first, so no late copy makes the consumer's
        // index repair re-add what is deleted (found when a slow consumer's repair landed after the deletion).
        for index in [4, 7] {
            try waitUntilSettled(first[index].id)
        }
        // Items 4 and 7 never happened (as when their node was unreachable and they were answered 503): no record,
        // history, idempotency record or index entries.
        for index in [4, 7] {
            let id = first[index].id
            _ = try command(["DEL", "transfer:\(id)", "{transfer:\(id)}:history", "{transfer:\(id)}:idempotency"])
            let member = indexMember(first[index].position)
            _ = try command(["ZREM", "{account:\(first[index].senderID)}:sent", member])
            _ = try command(["ZREM", "{account:\(first[index].receiverID)}:received", member])
        }
        #expect(try indexEntries(account) == 8)

        let retry = try client.postBatch(items, headers: [("Idempotency-Key", key)])
        #expect(retry.headers["idempotent-replayed"] == "true")
        let second = try ListingClient.results(retry).map(ListingClient.transfer(of:))
        for index in 0..<10 {
            // Same ids (derived from the key and the item's index); the replayed items exactly as first answered.
            #expect(second[index].id == first[index].id)
            if [4, 7].contains(index) {
                #expect(try harness.storedRecord(second[index].id.rawValue) != nil)
            } else {
                #expect(second[index] == first[index])
            }
        }
        #expect(try indexEntries(account) == 10)
        let listed = try client.walk([("account", account), ("limit", "3")]).transfers.map(\.id)
        #expect(listed.count == 10)
        #expect(Set(listed) == Set(first.map(\.id)))
    }

    static let notBatches: [(String, Int)] = [
        ("not json", 400),
        ("[]", 400),
        (#"{"transfers":{"sender_id":"a","receiver_id":"b","amount":1}}"#, 422),
        (#"{}"#, 422),
        (#"{"transfers":[]}"#, 422),
        (#"{"transfers":[{"sender_id":"ACCOUNT","receiver_id":"b","amount":1},"x"]}"#, 422),
        (#"{"transfers":[{"sender_id":"ACCOUNT","receiver_id":"b","amount":1}],"dry_run":true}"#, 422),
        (#"{"transfers":[{"sender_id":"ACCOUNT","receiver_id":"b","amount":1}]} trailing"#, 400),
    ]

    @Test(arguments: notBatches)
    func aBodyThatIsNotABatchIsRefusedWholeAndWritesNothing(body: String, status: Int) throws {
        let account = ListingClient.account("not-batch")
        let response = try harness.http.postJSON("/transfers/batch", body.replacingOccurrences(of: "ACCOUNT", with: account))
        #expect(response.status == status, "\(response.bodyText)")
        #expect(response.headers["content-type"] == "application/problem+json")
        #expect(try indexEntries(account) == 0)
    }

    @Test func overAThousandItemsIs422AndWritesNothing() throws {
        let account = ListingClient.account("too-many")
        let response = try client.postBatch((0..<1001).map { Self.validItem($0, account: account) })
        #expect(response.status == 422)
        #expect(response.bodyText.contains("must hold at most 1000 transfers, not 1001"))
        #expect(try indexEntries(account) == 0)
    }

    @Test func aBatchMustBeSentAsJSON() throws {
        let response = try harness.http.send(
            method: "POST", path: "/transfers/batch", headers: [("Content-Type", "text/plain")],
            body: Array(#"{"transfers":[{"sender_id":"a","receiver_id":"b","amount":1}]}"#.utf8)
        )
        #expect(response.status == 415)
    }
}
