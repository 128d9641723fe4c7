import ExactJSON
import Foundation
import RedisClient
import ServiceTestSupport
import Synchronization
import TestSupport
import Testing
import Transfers

/// The service's main paths on a real Redis Cluster (3 primaries, 3 replicas, started for this suite), with the
/// cluster-mode defaults (every write waits for one replica).
@Suite(.serialized)
struct ClusterModeTests {
    /// One deployment for the suite: the cluster takes a few seconds to form.
    static let deployment: ServiceDeployment = {
        do {
            let deployment = try ServiceDeployment(name: "clustermode", brokers: 1, redisCluster: true)
            try deployment.addInstance()
            return deployment
        } catch {
            fatalError("cannot start the cluster deployment: \(error)")
        }
    }()

    var deployment: ServiceDeployment { Self.deployment }
    var http: HTTPTestClient { Self.deployment.instances[0].http }

    private func create(_ body: String = #"{"sender_id":"cluster-a","receiver_id":"cluster-b","amount":12.5}"#,
                        headers: [(String, String)] = []) throws -> (response: HTTPTestResponse, id: String) {
        let response = try http.postJSON("/transfers", body, headers: headers)
        guard case .object(let object) = try JSONValue.parse(response.body), case .string(let id)? = object["transfer_id"] else {
            throw HarnessError("no transfer_id in \(response.status) \(response.bodyText)")
        }
        return (response, id)
    }

    private func keySlot(_ key: String) throws -> Int {
        let reply = try deployment.command(["CLUSTER", "KEYSLOT", key], key: nil)
        guard let slot = reply.integer else { throw HarnessError("CLUSTER KEYSLOT answered \(reply)") }
        return Int(slot)
    }

    @Test func aTransferIsCreatedCompletedPublishedAndKeptInOneSlot() throws {
        let (created, id) = try create(headers: [("Idempotency-Key", UUID().uuidString)])
        #expect(created.status == 202)
        let completed = try deployment.waitForStoredTransfer(id) { $0.status == .completed }
        #expect(completed.version == 2)
        #expect(completed.amount == Amount(minorUnits: 1250))

        // The sketch's record is at transfer:<id>; everything the scripts touched is in its slot.
        let record = "transfer:\(id)"
        let slot = try keySlot(record)
        let tag = RedisSlot.hashTag(of: slot)
        for key in ["{\(record)}:history", "{\(record)}:idempotency", "transfers:outbox:{\(tag)}", "transfers:pending:{\(tag)}"] {
            #expect(try keySlot(key) == slot, "\(key)")
        }
        #expect(try deployment.command(["EXISTS", "{\(record)}:history"], key: record).integer == 1)

        let read = try http.get("/transfers/\(id)")
        #expect(read.status == 200)
        #expect(read.headers["etag"] == #""2""#)
        let versions = try http.get("/transfers/\(id)/versions")
        #expect(versions.status == 200)
        #expect(versions.bodyText.contains(#""version":1"#) && versions.bodyText.contains(#""version":2"#))

        // The Kafka message: keyed by the transfer id, the sketch's fields.
        let topics = try deployment.readTopics(expectedKeys: [id])
        let event = try #require(topics.events.first { $0.key == Array(id.utf8) })
        let published = try Transfer(json: event.value)
        #expect(published.status == .initiated)
        #expect(published.version == 1)
    }

    @Test func concurrentRequestsWithOneKeyCreateOneTransferAndRepeatsReplayIt() throws {
        let key = UUID().uuidString
        let body = #"{"sender_id":"cluster-keyed","receiver_id":"cluster-b","amount":3}"#
        let answers = Mutex<[HTTPTestResponse]>([])
        DispatchQueue.concurrentPerform(iterations: 30) { _ in
            if let response = try? http.postJSON("/transfers", body, headers: [("Idempotency-Key", key)]) {
                answers.withLock { $0.append(response) }
            }
        }
        let responses = answers.withLock { $0 }
        #expect(responses.count == 30)
        #expect(responses.allSatisfy { $0.status == 202 })
        #expect(Set(responses.map { $0.headers["location"] ?? "" }).count == 1)
        #expect(responses.filter { $0.headers["idempotent-replayed"] == nil }.count == 1)
        let different = try http.postJSON("/transfers", #"{"sender_id":"cluster-keyed","receiver_id":"cluster-b","amount":4}"#,
                                          headers: [("Idempotency-Key", key)])
        #expect(different.status == 422)
    }

    @Test func aCancelWithIfMatchWinsAndItsEventIsThenAConflict() throws {
        // A sketch record whose event is not published yet, so the consumer cannot complete it first.
        let id = TransferID.random().rawValue
        let sketch = ServiceHarness.sketchJSON(id: id, version: 1, status: "initiated")
        _ = try deployment.command(["SET", "transfer:\(id)", sketch], key: "transfer:\(id)")
        #expect(try http.send(method: "POST", path: "/transfers/\(id)/cancel").status == 428)
        #expect(try http.send(method: "POST", path: "/transfers/\(id)/cancel", headers: [("If-Match", #""7""#)]).status == 412)
        let cancel = try http.send(method: "POST", path: "/transfers/\(id)/cancel", headers: [("If-Match", #""1""#)])
        #expect(cancel.status == 200)
        #expect(cancel.headers["etag"] == #""2""#)
        try deployment.publish(key: id, value: Array(sketch.utf8))
        // The event is skipped as a conflict: later events on the same key are applied, this one never is.
        let marker = TransferID.random().rawValue
        try deployment.publish(key: id, value: Array(ServiceHarness.sketchJSON(id: marker, version: 1, status: "initiated").utf8))
        _ = try deployment.waitForStoredTransfer(marker) { $0.status == .completed }
        let stored = try deployment.waitForStoredTransfer(id) { _ in true }
        #expect(stored.status == .cancelled)
        #expect(stored.version == 2)
        #expect(try http.send(method: "POST", path: "/transfers/\(id)/cancel", headers: [("If-Match", #""2""#)]).status == 409)
    }

    @Test func unknownTransfersAre404() throws {
        let unknown = TransferID.random()
        #expect(try http.get("/transfers/\(unknown)").status == 404)
        #expect(try http.get("/transfers/\(unknown)/versions").status == 404)
        #expect(try http.send(method: "POST", path: "/transfers/\(unknown)/cancel", headers: [("If-Match", #""1""#)]).status == 404)
    }

    @Test func aSketchRecordAndItsEventAreCompleted() throws {
        let id = TransferID.random().rawValue
        let sketch = ServiceHarness.sketchJSON(id: id, version: 1, status: "initiated", amount: "250.75")
        _ = try deployment.command(["SET", "transfer:\(id)", sketch], key: "transfer:\(id)")
        try deployment.publish(key: id, value: Array(sketch.utf8))
        let completed = try deployment.waitForStoredTransfer(id) { $0.status == .completed }
        #expect(completed.version == 2)
        #expect(completed.amount == Amount(minorUnits: 25075))
    }

    @Test func anAccountsTransfersArePagedAndABatchIsCreatedAcrossSlots() throws {
        let client = ListingClient(http: http)
        let account = ListingClient.account("cluster-account")
        // Transfers of one account live in many slots; its index lives in the account's own slot.
        var created: [Transfer] = []
        for index in 0..<9 {
            created.append(try client.create(sender: account, receiver: "cluster-peer-\(index)"))
        }
        let key = UUID().uuidString
        let items = (0..<6).map { #"{"sender_id":"cluster-peer-b\#($0)","receiver_id":"\#(account)","amount":2}"# }
            + [#"{"sender_id":"\#(account)","receiver_id":"\#(account)","amount":2}"#]
        let batch = try client.postBatch(items, headers: [("Idempotency-Key", key)])
        let results = try ListingClient.results(batch)
        #expect(results.map { $0["status"] } == Array(repeating: .number("202"), count: 6) + [.number("422")])
        created += try results.prefix(6).map(ListingClient.transfer(of:))
        let replay = try client.postBatch(items, headers: [("Idempotency-Key", key)])
        #expect(replay.status == 200)
        #expect(replay.bodyText == batch.bodyText)

        let walk = try client.walk([("account", account), ("limit", "4")])
        #expect(walk.pages.count == 4)
        #expect(Set(walk.transfers.map(\.id)) == Set(created.map(\.id)))
        #expect(walk.transfers.count == created.count)
        let newestFirst = walk.transfers.map { $0.createdAt ?? "" }
        #expect(newestFirst == newestFirst.sorted(by: >))
        let received = try client.walk([("account", account), ("role", "receiver")])
        #expect(received.transfers.count == 6)
    }
}
