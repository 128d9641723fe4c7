import Foundation
import RedisClient
import ServiceTestSupport
import TestSupport
import Testing
import Transfers

/// A page of a listing costs Redis work in proportion to its limit, never a scan: counted with Redis's own
/// command statistics, on a service with a Redis of its own (nothing else runs commands there meanwhile).
@Suite struct ListingCostTests {
    @Test func aPageCostsOneRangeReadPerRoleAndOneReadPerCandidate() throws {
        let harness = try ServiceHarness(topic: "listing_cost", groupID: "listing-cost")
        defer { harness.instance.terminate(timeout: .seconds(10)) }
        let client = ListingClient(http: harness.http)
        let account = ListingClient.account("cost")
        var ids: [TransferID] = []
        for batch in 0..<3 {
            let items = (0..<100).map { #"{"sender_id":"\#(account)","receiver_id":"payee-\#(batch)-\#($0)","amount":1}"# }
            ids += try ListingClient.results(try client.postBatch(items)).map { try ListingClient.transfer(of: $0).id }
        }
        for id in ids {
            _ = try harness.waitForStoredTransfer(id.rawValue) { $0.status == .completed }
        }

        /// Calls per command while `body` runs.
        func calls(_ body: () throws -> Void) throws -> [String: Int] {
            _ = try harness.redis.withConnection { try $0.command(["CONFIG", "RESETSTAT"]) }
            try body()
            let info = try harness.redis.withConnection { try $0.command(["INFO", "commandstats"]) }.string ?? ""
            var counts: [String: Int] = [:]
            for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix("cmdstat_") {
                // cmdstat_get:calls=10,usec=25,usec_per_call=2.50,rejected_calls=0,failed_calls=0
                let parts = line.dropFirst("cmdstat_".count).split(separator: ":", maxSplits: 1)
                let fields = parts.last?.split(separator: ",") ?? []
                let value = fields.first { $0.hasPrefix("calls=") }?.dropFirst("calls=".count) ?? ""
                counts[String(parts[0])] = Int(value)
            }
            // Nothing that walks the keyspace or a whole set, whoever sent it.
            #expect(counts.keys.filter { ["scan", "keys", "zscan", "sscan", "hscan"].contains($0) }.isEmpty, "\(counts)")
            // What the listing sent; the sweeper's lease and script calls may land in the window too.
            return counts.filter { $0.key == "zrange" || $0.key == "get" }
        }
        // Far into the listing (page 20 of 30) costs what the first page costs.
        var cursor: String?
        for _ in 0..<20 {
            cursor = try client.page([("account", account), ("limit", "10")] + (cursor.map { [("cursor", $0)] } ?? [])).nextCursor
        }
        let deep = try calls { _ = try client.page([("account", account), ("limit", "10"), ("cursor", try #require(cursor))]) }
        #expect(deep == ["zrange": 2, "get": 10])
        let sent = try calls { _ = try client.page([("account", account), ("role", "sender"), ("limit", "10")]) }
        #expect(sent == ["zrange": 1, "get": 10])
        // A status filter reads at most four candidates per item asked for.
        let filtered = try calls { _ = try client.page([("account", account), ("status", "cancelled"), ("limit", "10")]) }
        #expect(filtered == ["zrange": 2, "get": 40])
    }
}
