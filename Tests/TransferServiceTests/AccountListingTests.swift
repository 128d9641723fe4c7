import ExactJSON
import Foundation
import RedisClient
import ServiceTestSupport
import Synchronization
import TestSupport
import Testing
import Transfers

/// `GET /transfers?account=...`: an account's transfers, newest first, with stable cursor paging, on the real stack.
@Suite struct AccountListingTests {
    let harness = ServiceHarness.shared
    var client: ListingClient { ListingClient(http: harness.http) }

    private func command(_ arguments: [String]) throws -> RedisReply {
        try harness.redis.withConnection { try $0.command(arguments) }
    }

    /// Polls Redis until `condition` holds (background work such as removing dangling entries).
    private func eventually(_ what: String, _ condition: () throws -> Bool) throws {
        for _ in 0..<400 {
            if try condition() { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw HarnessError("never happened: \(what)")
    }

    // MARK: Paging

    @Test func pagingThrough250TransfersWhileOthersAreCreatedReturnsEachExactlyOnceNewestFirst() throws {
        let account = ListingClient.account("walk")
        let client = self.client
        // 250 transfers of the account, half sent and half received, from 8 threads.
        let initial = Mutex<[Transfer]>([])
        try concurrently(250) { index in
            let counterparty = "counterparty-\(index % 17)"
            let transfer = index.isMultiple(of: 2)
                ? try client.create(sender: account, receiver: counterparty, amount: "\(index + 1)")
                : try client.create(sender: counterparty, receiver: account, amount: "\(index + 1)")
            initial.withLock { $0.append(transfer) }
        }
        let initialIDs = Set(initial.withLock { $0 }.map(\.id))
        #expect(initialIDs.count == 250)

        // Meanwhile other creates run, for this account and for others, until the walk is over.
        let stop = Atomic<Bool>(false)
        let during = Mutex<[TransferID]>([])
        let creatorsDone = DispatchGroup()
        for thread in 0..<2 {
            creatorsDone.enter()
            Thread.detachNewThread {
                defer { creatorsDone.leave() }
                var round = 0
                while !stop.load(ordering: .relaxed) {
                    round += 1
                    let sender = round.isMultiple(of: 3) ? "bystander-\(thread)" : account
                    if let transfer = try? client.create(sender: sender, receiver: "during-\(thread)") {
                        if sender == account { during.withLock { $0.append(transfer.id) } }
                    }
                }
            }
        }
        defer {
            stop.store(true, ordering: .relaxed)
            creatorsDone.wait()
        }
        while during.withLock({ $0.count }) < 3 { Thread.sleep(forTimeInterval: 0.01) }
        var createdDuringPages: [Int] = []
        let walk = try client.walk([("account", account), ("limit", "7")]) {
            createdDuringPages.append(during.withLock { $0.count })
        }
        stop.store(true, ordering: .relaxed)
        creatorsDone.wait()

        // The race happened: transfers of this account were created while the pages were read.
        #expect(createdDuringPages.last! > createdDuringPages.first!)
        let walkedIDs = walk.transfers.map(\.id)
        #expect(Set(walkedIDs).count == walkedIDs.count, "a transfer was listed twice")
        #expect(initialIDs.isSubset(of: Set(walkedIDs)), "missing: \(initialIDs.subtracting(walkedIDs).count)")
        // Anything else in the walk was created during it.
        let createdDuring = Set(during.withLock { $0 })
        #expect(Set(walkedIDs).subtracting(initialIDs).isSubset(of: createdDuring))
        #expect(zip(walk.transfers, walk.transfers.dropFirst()).allSatisfy { $0.position < $1.position }, "not newest first")
        #expect(walk.transfers.allSatisfy { $0.senderID == account || $0.receiverID == account })
        #expect(walk.pages.dropLast().allSatisfy { $0.transfers.count == 7 })

        // A fresh listing has everything exactly once: the 250 and those created during the walk.
        let fresh = try client.walk([("account", account), ("limit", "100")]).transfers.map(\.id)
        #expect(fresh.count == 250 + createdDuring.count)
        #expect(Set(fresh) == initialIDs.union(createdDuring))
    }

    @Test func anAccountWithoutTransfersIsAnEmptyList() throws {
        let page = try client.page([("account", ListingClient.account("nobody"))])
        #expect(page.transfers.isEmpty)
        #expect(page.nextCursor == nil)
    }

    @Test func theLastFullPageHasNoCursor() throws {
        let account = ListingClient.account("exact")
        for _ in 0..<4 { _ = try client.create(sender: account, receiver: "bob") }
        let full = try client.page([("account", account), ("limit", "4")])
        #expect(full.transfers.count == 4)
        #expect(full.nextCursor == nil)
        let first = try client.page([("account", account), ("limit", "3")])
        #expect(first.transfers.count == 3)
        let rest = try client.page([("account", account), ("limit", "3"), ("cursor", try #require(first.nextCursor))])
        #expect(rest.transfers.count == 1)
        #expect(rest.nextCursor == nil)
    }

    @Test func aCreatedTransferIsInBothPartiesListingsWhenItsCreateIsAnswered() throws {
        let sender = ListingClient.account("payer")
        let receiver = ListingClient.account("payee")
        let transfer = try client.create(sender: sender, receiver: receiver, amount: "12.5")
        // The entries are in Redis, in each account's own slot, before anything else happens.
        let member = indexMember(transfer.position)
        #expect(try command(["ZSCORE", "{account:\(sender)}:sent", member]) == .string(Array("0".utf8)))
        #expect(try command(["ZSCORE", "{account:\(receiver)}:received", member]) == .string(Array("0".utf8)))
        #expect(RedisSlot.of(key: "{account:\(sender)}:sent") == RedisSlot.of(key: "{account:\(sender)}:received"))
        #expect(try client.page([("account", sender)]).transfers.map(\.id) == [transfer.id])
        #expect(try client.page([("account", receiver)]).transfers.map(\.id) == [transfer.id])
    }

    @Test func itemsAreRenderedLikeASingleRead() throws {
        let account = ListingClient.account("render")
        let created = try client.create(sender: account, receiver: "bob", amount: "100.50")
        let completed = try harness.waitForStoredTransfer(created.id.rawValue) { $0.status == .completed }
        let listed = try harness.http.get(ListingClient.path([("account", account)]))
        let single = try harness.http.get("/transfers/\(created.id)")
        #expect(listed.bodyText == #"{"transfers":["# + single.bodyText + #"],"next_cursor":null}"#)
        #expect(try Transfer(json: single.body) == completed)
    }

    @Test func accountsWithReservedCharactersAreListed() throws {
        // `+`, `&`, `=`, `%`, braces (a Redis hash tag's delimiters) and non-ASCII, percent-encoded in the query.
        let account = "a+b&c=d%e{f}g é " + UUID().uuidString.prefix(6)
        let transfer = try client.create(sender: account, receiver: "bob")
        #expect(try client.page([("account", account)]).transfers.map(\.id) == [transfer.id])
        #expect(try client.page([("account", "a b&c=d%e{f}g é " + UUID().uuidString.prefix(6))]).transfers.isEmpty)
    }

    // MARK: Filters

    @Test func roleAndStatusFiltersListExactlyTheirTransfers() throws {
        let account = ListingClient.account("filters")
        let client = self.client
        var sent: [Transfer] = []
        var received: [Transfer] = []
        for index in 0..<20 { sent.append(try client.create(sender: account, receiver: "to-\(index % 3)", amount: "\(index + 1)")) }
        for index in 0..<10 { received.append(try client.create(sender: "from-\(index % 3)", receiver: account, amount: "\(index + 1)")) }
        // Cancels race the consumer: each ends cancelled (200) or completed (409/412), and the listing must agree.
        var cancelled: Set<TransferID> = []
        for transfer in sent + received.prefix(5) {
            let answer = try harness.http.send(method: "POST", path: "/transfers/\(transfer.id)/cancel", headers: [("If-Match", #""1""#)])
            if answer.status == 200 { cancelled.insert(transfer.id) } else { #expect([409, 412].contains(answer.status)) }
        }
        for transfer in sent + received {
            _ = try harness.waitForStoredTransfer(transfer.id.rawValue) { $0.status != .initiated }
        }
        let all = Set((sent + received).map(\.id))
        func listed(_ parameters: [(String, String)]) throws -> Set<TransferID> {
            let walk = try client.walk([("account", account)] + parameters)
            #expect(walk.transfers.count == Set(walk.transfers.map(\.id)).count, "\(parameters): a transfer was listed twice")
            #expect(walk.pages.allSatisfy { $0.transfers.count <= Int(parameters.first { $0.0 == "limit" }?.1 ?? "20")! })
            return Set(walk.transfers.map(\.id))
        }
        #expect(try listed([("role", "sender"), ("limit", "6")]) == Set(sent.map(\.id)))
        #expect(try listed([("role", "receiver")]) == Set(received.map(\.id)))
        #expect(try listed([("status", "cancelled"), ("limit", "2")]) == cancelled)
        #expect(try listed([("status", "completed"), ("limit", "3")]) == all.subtracting(cancelled))
        #expect(try listed([("role", "sender"), ("status", "completed"), ("limit", "1")]) == Set(sent.map(\.id)).subtracting(cancelled))
        #expect(try listed([("status", "initiated")]).isEmpty)
    }

    // MARK: Bad requests

    static let invalidQueries: [([(String, String)], String)] = [
        ([("limit", "5")], "account"),
        ([("account", "")], "account"),
        ([("account", String(repeating: "x", count: 65))], "account"),
        ([("account", "a\u{1}b")], "account"),
        ([("account", "alice"), ("limit", "0")], "limit"),
        ([("account", "alice"), ("limit", "101")], "limit"),
        ([("account", "alice"), ("limit", "many")], "limit"),
        ([("account", "alice"), ("role", "payer")], "role"),
        ([("account", "alice"), ("status", "pending")], "status"),
        ([("account", "alice"), ("page", "2")], "page"),
        ([("account", "alice"), ("account", "bob")], "account"),
        ([("account", "alice"), ("cursor", "")], "cursor"),
        ([("account", "alice"), ("cursor", "not-a-cursor")], "cursor"),
        ([("account", "alice"), ("cursor", String(repeating: "0", count: 66))], "cursor"),
    ]

    @Test(arguments: invalidQueries)
    func invalidQueriesAre400ProblemsNamingTheParameter(parameters: [(String, String)], field: String) throws {
        let response = try harness.http.get(ListingClient.path(parameters))
        #expect(response.status == 400, "\(response.bodyText)")
        #expect(response.headers["content-type"] == "application/problem+json")
        #expect(try Self.errors(response).contains { $0.field == field }, "\(response.bodyText)")
    }

    @Test func anAccountIsRefusedWithTheSameMessageAsASenderID() throws {
        let long = String(repeating: "x", count: 65)
        let listing = try harness.http.get(ListingClient.path([("account", long)]))
        let create = try harness.http.postJSON("/transfers", #"{"sender_id":"\#(long)","receiver_id":"b","amount":1}"#)
        #expect(listing.status == 400)
        #expect(create.status == 422)
        #expect(try Self.errorDetails(listing) == ["must be at most 64 characters"])
        #expect(try Self.errorDetails(create) == ["must be at most 64 characters"])
    }

    private static func errorDetails(_ response: HTTPTestResponse) throws -> [String] {
        try errors(response).map(\.detail)
    }

    /// The `errors` of a problem answer.
    private static func errors(_ response: HTTPTestResponse) throws -> [(field: String, detail: String)] {
        guard case .object(let problem) = try JSONValue.parse(response.body), case .array(let errors)? = problem["errors"] else {
            throw HarnessError("no errors in \(response.bodyText)")
        }
        return errors.compactMap {
            if case .object(let error) = $0, case .string(let field)? = error["field"], case .string(let detail)? = error["detail"] { (field, detail) } else { nil }
        }
    }

    @Test func aMalformedQueryIs400() throws {
        for query in ["account=%zz", "account=%C3", "account=ok&limit=%"] {
            let response = try harness.http.get("/transfers?" + query)
            #expect(response.status == 400, "\(query): \(response.bodyText)")
            #expect(response.headers["content-type"] == "application/problem+json")
        }
    }

    @Test func aCursorOfAnotherListingOrATamperedOneIs400() throws {
        let account = ListingClient.account("cursor")
        for _ in 0..<3 { _ = try client.create(sender: account, receiver: "bob") }
        let cursor = try #require(try client.page([("account", account), ("limit", "1")]).nextCursor)
        #expect(try client.page([("account", account), ("limit", "1"), ("cursor", cursor)]).transfers.count == 1)
        var tampered = Array(cursor.utf8)
        tampered[20] = tampered[20] == UInt8(ascii: "a") ? UInt8(ascii: "b") : UInt8(ascii: "a")
        for parameters in [
            [("account", account), ("cursor", String(decoding: tampered, as: UTF8.self))],
            [("account", account + "x"), ("cursor", cursor)],
            [("account", account), ("role", "sender"), ("cursor", cursor)],
            [("account", account), ("status", "completed"), ("cursor", cursor)],
        ] {
            #expect(try harness.http.get(ListingClient.path(parameters)).status == 400, "\(parameters)")
        }
    }

    // MARK: Entries that disagree with their records

    @Test func replayedKeyedCreatesAreListedOnceAndTheirStrayEntriesRemoved() throws {
        let sender = ListingClient.account("replay")
        let receiver = ListingClient.account("replay-to")
        let key = UUID().uuidString
        let first = try client.create(sender: sender, receiver: receiver, headers: [("Idempotency-Key", key)])
        for _ in 0..<3 {
            Thread.sleep(forTimeInterval: 0.002)  // a later millisecond: each replay's speculative entry differs
            _ = try client.create(sender: sender, receiver: receiver, headers: [("Idempotency-Key", key)])
        }
        // The same key with other parties: refused; its entries name a transfer that is not theirs.
        let other = ListingClient.account("replay-other")
        let refused = try harness.http.postJSON("/transfers", #"{"sender_id":"\#(other)","receiver_id":"\#(receiver)","amount":1}"#, headers: [("Idempotency-Key", key)])
        #expect(refused.status == 422)
        #expect(try client.page([("account", sender)]).transfers.map(\.id) == [first.id])
        #expect(try client.page([("account", receiver)]).transfers.map(\.id) == [first.id])
        #expect(try client.page([("account", other)]).transfers.isEmpty)
        // Listing removed the stray entries; the transfer's own stay.
        try eventually("stray entries removed") {
            try command(["ZCARD", "{account:\(sender)}:sent"]).integer == 1
                && command(["ZCARD", "{account:\(other)}:sent"]).integer == 0
        }
        #expect(try command(["ZCARD", "{account:\(receiver)}:received"]).integer == 1)
    }

    @Test func entriesOfGoneTransfersAreSkippedAndOldOnesRemoved() throws {
        let account = ListingClient.account("gone")
        let kept = try client.create(sender: account, receiver: "bob")
        let deleted = try client.create(sender: account, receiver: "bob")
        _ = try harness.waitForStoredTransfer(deleted.id.rawValue) { $0.status == .completed }
        _ = try command(["DEL", "transfer:\(deleted.id)"])
        // An entry an hour old whose record expired long ago.
        let expired = indexMember(ListingPosition(createdAtMilliseconds: Int64(Date().timeIntervalSince1970 * 1000) - 3_600_000, id: .random()))
        _ = try command(["ZADD", "{account:\(account)}:sent", "0", expired])
        let deletedMember = indexMember(deleted.position)

        let walk = try client.walk([("account", account), ("limit", "1")])
        #expect(walk.transfers.map(\.id) == [kept.id])
        // The old dangling entry is removed; the young one is only skipped (its create could still be in flight).
        try eventually("the expired entry removed") { try command(["ZSCORE", "{account:\(account)}:sent", expired]) == .null }
        #expect(try command(["ZSCORE", "{account:\(account)}:sent", deletedMember]) != .null)
    }

    // MARK: Repair

    /// A transfer as the service would have created it (initiated, version 1), stored nowhere yet.
    private func initiatedTransfer(of account: String) -> Transfer {
        Transfer(
            id: .random(), senderID: account, receiverID: "bob", amount: Amount(minorUnits: 500), status: .initiated, version: 1,
            createdAt: "2026-01-02T03:04:05.678Z", updatedAt: "2026-01-02T03:04:05.678Z"
        )
    }

    @Test func theConsumerAddsTheEntriesOfATransferItRecreates() throws {
        let account = ListingClient.account("recreated")
        let event = initiatedTransfer(of: account)
        try harness.publish(key: event.id.rawValue, event.json)
        _ = try harness.waitForStoredTransfer(event.id.rawValue) { $0.status == .completed }
        try eventually("the recreated transfer is listed") { try client.page([("account", account)]).transfers.map(\.id) == [event.id] }
    }

    @Test func theConsumerRepairsEntriesLostBeforeItsCompletion() throws {
        // A transfer whose entries were never written (an unreachable node, in a cluster): its event repairs them.
        let account = ListingClient.account("repaired")
        let initiated = initiatedTransfer(of: account)
        try harness.storeRecord(initiated.id.rawValue, initiated.json)
        #expect(try client.page([("account", account)]).transfers.isEmpty)
        try harness.publish(key: initiated.id.rawValue, initiated.json)
        _ = try harness.waitForStoredTransfer(initiated.id.rawValue) { $0.status == .completed }
        try eventually("the completed transfer is listed") { try client.page([("account", account)]).transfers.map(\.id) == [initiated.id] }
    }
}
