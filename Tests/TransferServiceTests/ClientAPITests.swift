import ExactJSON
import Foundation
import RedisClient
import ServiceTestSupport
import Synchronization
import TestSupport
import Testing
import Transfers

/// What payment clients rely on: safe retries, versions over HTTP, history, cancel, authentication.
@Suite struct ClientAPITests {
    let harness = ServiceHarness.shared
    static let body = #"{"sender_id":"alice","receiver_id":"bob","amount":42.5}"#

    private func create(_ body: String = ClientAPITests.body, headers: [(String, String)] = []) throws -> HTTPTestResponse {
        try harness.http.postJSON("/transfers", body, headers: headers)
    }

    private func transferID(of response: HTTPTestResponse) throws -> String {
        guard case .object(let object) = try JSONValue.parse(response.body), case .string(let id)? = object["transfer_id"] else {
            throw HarnessError("no transfer_id in \(response.bodyText)")
        }
        return id
    }

    private func transferCount(sender: String) throws -> Int {
        // Every record is JSON under transfer:<id>; count those of this test's sender.
        let keys = try harness.redis.withConnection { try $0.command(["KEYS", "transfer:*"]) }.array ?? []
        var count = 0
        for key in keys.compactMap(\.string) where !key.hasSuffix(":history") {
            let record = try harness.redis.withConnection { try $0.command(["GET", key]) }.string ?? ""
            if record.contains(#""sender_id":"\#(sender)""#) { count += 1 }
        }
        return count
    }

    // MARK: Idempotency

    @Test func retryAfterALostResponseReturnsTheOriginalTransfer() throws {
        let key = UUID().uuidString
        let first = try create(headers: [("Idempotency-Key", key)])
        #expect(first.status == 202)
        #expect(first.headers["idempotent-replayed"] == nil)
        // The client never saw `first` and retries; meanwhile the transfer may have completed.
        _ = try harness.waitForStoredTransfer(try transferID(of: first)) { $0.status == .completed }
        let retry = try create(#"{ "amount": 42.50, "sender_id": "alice", "receiver_id": "bob" }"#, headers: [("Idempotency-Key", key)])
        #expect(retry.status == 202)
        #expect(retry.body == first.body)
        #expect(retry.headers["idempotent-replayed"] == "true")
        #expect(retry.headers["location"] == first.headers["location"])
        #expect(retry.headers["etag"] == #""1""#)
    }

    @Test func sameKeyWithADifferentBodyIs422AndCreatesNothing() throws {
        let key = UUID().uuidString
        let sender = "sender-\(UUID().uuidString.prefix(8))"
        #expect(try create(#"{"sender_id":"\#(sender)","receiver_id":"bob","amount":1}"#, headers: [("Idempotency-Key", key)]).status == 202)
        let other = try create(#"{"sender_id":"\#(sender)","receiver_id":"bob","amount":2}"#, headers: [("Idempotency-Key", key)])
        #expect(other.status == 422)
        #expect(other.headers["content-type"] == "application/problem+json")
        #expect(try transferCount(sender: sender) == 1)
    }

    /// Party ids are bytes, as stored and indexed: "é" and "e" with a combining accent (equal as Swift strings) are
    /// different accounts, so the same key with the other spelling is a different request.
    @Test func sameKeyWithACanonicallyEquivalentPartyIs422() throws {
        let key = UUID().uuidString
        let first = try create(#"{"sender_id":"caf\u00e9-\#(key.prefix(8))","receiver_id":"bob","amount":1}"#, headers: [("Idempotency-Key", key)])
        #expect(first.status == 202)
        let other = try create(#"{"sender_id":"cafe\u0301-\#(key.prefix(8))","receiver_id":"bob","amount":1}"#, headers: [("Idempotency-Key", key)])
        #expect(other.status == 422, "\(other.bodyText)")
        #expect(other.headers["idempotent-replayed"] == nil)
        // And as sender and receiver they are two parties.
        #expect(try create(#"{"sender_id":"\u00e9","receiver_id":"e\u0301","amount":1}"#).status == 202)
    }

    /// Whitespace after a header value is not part of it: the retry is a replay, not a second transfer.
    @Test func aKeyWithTrailingWhitespaceIsTheSameKey() throws {
        let key = UUID().uuidString
        let first = try create(headers: [("Idempotency-Key", key)])
        #expect(first.status == 202)
        let retry = try harness.http.sendRaw(Array((
            "POST /transfers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nIdempotency-Key: \(key) \r\n"
            + "Content-Length: \(Self.body.utf8.count)\r\nConnection: close\r\n\r\n\(Self.body)").utf8))
        #expect(retry.status == 202)
        #expect(retry.headers["idempotent-replayed"] == "true")
        #expect(retry.body == first.body)
    }

    /// A version number longer than the contract's nine digits is not a version (400), not an unknown one (404).
    @Test func aTenDigitVersionNumberIs400() throws {
        let response = try harness.http.get("/transfers/\(TransferID.random())/versions/9999999999")
        #expect(response.status == 400)
        #expect(response.bodyText.contains("invalid-version-number"))
    }

    @Test(arguments: ["", String(repeating: "k", count: 256), "tab\there", "é"])
    func invalidIdempotencyKeyIs400(key: String) throws {
        let response = try create(headers: [("Idempotency-Key", key)])
        #expect(response.status == 400, "\(response.bodyText)")
    }

    @Test func fiftyConcurrentRequestsWithOneKeyCreateOneTransfer() throws {
        let key = UUID().uuidString
        let sender = "sender-\(UUID().uuidString.prefix(8))"
        let body = #"{"sender_id":"\#(sender)","receiver_id":"bob","amount":7}"#
        let responses = Mutex<[HTTPTestResponse]>([])
        let group = DispatchGroup()
        for _ in 0..<50 {
            group.enter()
            Thread.detachNewThread { [harness] in
                defer { group.leave() }
                if let response = try? harness.http.postJSON("/transfers", body, headers: [("Idempotency-Key", key)]) {
                    responses.withLock { $0.append(response) }
                }
            }
        }
        group.wait()
        let all = responses.withLock { $0 }
        #expect(all.count == 50)
        #expect(all.allSatisfy { $0.status == 202 })
        #expect(Set(all.map(\.body)).count == 1)
        #expect(all.filter { $0.headers["idempotent-replayed"] == nil }.count == 1)
        #expect(try transferCount(sender: sender) == 1)
    }

    // MARK: Versions over HTTP

    @Test func matchingIfNoneMatchIs304WithoutABody() throws {
        let id = try transferID(of: try create())
        let completed = try harness.waitForStoredTransfer(id) { $0.status == .completed }
        let notModified = try harness.http.get("/transfers/\(id)", headers: [("If-None-Match", #""\#(completed.version)""#)])
        #expect(notModified.status == 304)
        #expect(notModified.body.isEmpty)
        #expect(notModified.headers["etag"] == #""2""#)
        let stale = try harness.http.get("/transfers/\(id)", headers: [("If-None-Match", #""1""#)])
        #expect(stale.status == 200)
        #expect(stale.headers["etag"] == #""2""#)
    }

    // MARK: History

    @Test func historyListsEveryVersionOldestFirst() throws {
        let id = try transferID(of: try create())
        _ = try harness.waitForStoredTransfer(id) { $0.status == .completed }
        let response = try harness.http.get("/transfers/\(id)/versions")
        #expect(response.status == 200)
        guard case .object(let body) = try JSONValue.parse(response.body), case .array(let versions)? = body["versions"] else {
            throw HarnessError("unexpected \(response.bodyText)")
        }
        let parsed = try versions.map { try Transfer(json: Array($0.serialized.utf8)) }
        #expect(parsed.map(\.version) == [1, 2])
        #expect(parsed.map(\.status) == [.initiated, .completed])
        #expect(parsed.allSatisfy { $0.updatedAt != nil })

        let second = try harness.http.get("/transfers/\(id)/versions/2")
        #expect(second.status == 200)
        #expect(second.headers["etag"] == #""2""#)
        #expect(try Transfer(json: second.body) == parsed[1])
        #expect(try harness.http.get("/transfers/\(id)/versions/3").status == 404)
        #expect(try harness.http.get("/transfers/\(id)/versions/0").status == 400)
        #expect(try harness.http.get("/transfers/\(TransferID.random())/versions").status == 404)
    }

    @Test func sketchRecordWithoutHistoryStillAnswers() throws {
        let id = TransferID.random().rawValue
        try harness.storeRecord(id, ServiceHarness.sketchJSON(id: id, version: 1, status: "initiated"))
        let response = try harness.http.get("/transfers/\(id)/versions")
        #expect(response.status == 200)
        #expect(response.bodyText.contains(#""version":1"#))
        #expect(try harness.http.get("/transfers/\(id)/versions/1").status == 200)
    }

    // MARK: Cancel

    @Test func cancelWithoutIfMatchIs428() throws {
        let id = try transferID(of: try create())
        let response = try harness.http.send(method: "POST", path: "/transfers/\(id)/cancel")
        #expect(response.status == 428)
    }

    @Test func cancelWithAStaleVersionIs412() throws {
        let id = TransferID.random().rawValue
        try harness.storeRecord(id, ServiceHarness.sketchJSON(id: id, version: 3, status: "initiated"))
        let response = try harness.http.send(method: "POST", path: "/transfers/\(id)/cancel", headers: [("If-Match", #""2""#)])
        #expect(response.status == 412)
        #expect(response.headers["etag"] == #""3""#)
        #expect(try harness.storedRecord(id) == ServiceHarness.sketchJSON(id: id, version: 3, status: "initiated"))
    }

    @Test func cancelOfACompletedTransferIs409() throws {
        let id = try transferID(of: try create())
        let completed = try harness.waitForStoredTransfer(id) { $0.status == .completed }
        let response = try harness.http.send(
            method: "POST", path: "/transfers/\(id)/cancel", headers: [("If-Match", #""\#(completed.version)""#)]
        )
        #expect(response.status == 409)
        #expect(try harness.storedRecord(id).flatMap { try Transfer(json: Array($0.utf8)) }?.status == .completed)
    }

    @Test func cancelOfAnInitiatedTransferAnswersTheCancelledTransfer() throws {
        // A record the consumer will not touch before the cancel: its event was never published.
        let id = TransferID.random().rawValue
        try harness.storeRecord(id, ServiceHarness.sketchJSON(id: id, version: 1, status: "initiated"))
        let response = try harness.http.send(method: "POST", path: "/transfers/\(id)/cancel", headers: [("If-Match", #""1""#)])
        #expect(response.status == 200)
        #expect(response.headers["etag"] == #""2""#)
        let cancelled = try Transfer(json: response.body)
        #expect(cancelled.status == .cancelled)
        #expect(cancelled.version == 2)
        // Its event arriving later is a conflict: the transfer stays cancelled.
        try harness.publish(key: id, ServiceHarness.sketchJSON(id: id, version: 1, status: "initiated"))
        try harness.waitUntilConsumed(key: id)
        #expect(try harness.storedRecord(id).flatMap { try Transfer(json: Array($0.utf8)) } == cancelled)
    }

    @Test func cancelRacingTheConsumerEndsInExactlyOneStateWithAGaplessHistory() throws {
        // The consumer must be running for this to be a race.
        _ = try harness.waitForStoredTransfer(try transferID(of: try create())) { $0.status == .completed }
        let count = 200
        let outcomes = Mutex<[Int: Int]>([:])
        let created = Mutex<[String]>([])
        // How long to wait between a create's answer and its cancel, adapted as the race goes (a staircase): longer
        // after a cancel won, shorter after the consumer won. It settles where each side wins about half the time,
        // whatever the machine's speed, so both outcomes happen.
        let delayMicroseconds = Atomic<Int>(5_000)
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for index in stride(from: worker, to: count, by: 8) {
                guard let response = try? harness.http.postJSON("/transfers", #"{"sender_id":"race-\#(index)","receiver_id":"bob","amount":1}"#),
                      let id = try? transferID(of: response)
                else { continue }
                created.withLock { $0.append(id) }
                usleep(UInt32(delayMicroseconds.load(ordering: .relaxed)))
                let status = (try? harness.http.send(method: "POST", path: "/transfers/\(id)/cancel", headers: [("If-Match", #""1""#)]))?.status ?? -1
                outcomes.withLock { $0[status, default: 0] += 1 }
                let current = delayMicroseconds.load(ordering: .relaxed)
                let next = status == 200 ? current * 5 / 4 + 100 : current * 4 / 5
                delayMicroseconds.store(min(max(next, 0), 2_000_000), ordering: .relaxed)
            }
        }
        let ids = created.withLock { $0 }
        #expect(ids.count == count)
        var cancelled = 0
        var completed = 0
        for id in ids {
            let final = try harness.waitForStoredTransfer(id) { $0.status != .initiated }
            #expect(final.version == 2)
            final.status == .cancelled ? (cancelled += 1) : (completed += 1)
            let history = try harness.http.get("/transfers/\(id)/versions")
            guard case .object(let body) = try JSONValue.parse(history.body), case .array(let versions)? = body["versions"] else {
                Issue.record("no history for \(id)")
                continue
            }
            let states = try versions.map { try Transfer(json: Array($0.serialized.utf8)) }
            #expect(states.map(\.version) == [1, 2])
            #expect(states.last?.status == final.status)
        }
        let statuses = outcomes.withLock { $0 }
        // Every cancel answered 200 (it won) or 412/409 (the consumer won); the final states agree with the answers.
        #expect(statuses[200, default: 0] == cancelled)
        #expect(statuses[412, default: 0] + statuses[409, default: 0] == completed)
        #expect(statuses.keys.allSatisfy { [200, 409, 412].contains($0) }, "\(statuses)")
        // Both sides of the race won some.
        #expect(cancelled > 0)
        #expect(completed > 0)
        print("cancel race over \(count) transfers: \(cancelled) cancelled, \(completed) completed, answers \(statuses)")
    }

    // MARK: Authentication

    @Test func withTokensEveryEndpointButHealthNeedsABearerToken() throws {
        let redis = try RedisServer.start()
        defer { redis.stop() }
        let service = ServiceInstance(name: "transfer-service-auth", environment: [
            "API_TOKENS": "first-token, second-token", "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(redis.port),
            "KAFKA_TOPIC_TRANSFERS": "auth_transfers", "KAFKA_BOOTSTRAP_SERVERS": DevKafka.shared.bootstrapServers,
            "KAFKA_GROUP_ID": "auth-tests",
        ])
        try service.start()
        defer { service.terminate() }
        let http = service.http
        #expect(try http.get("/healthz").status == 200)
        let id = TransferID.random()
        for (method, path) in [("GET", "/transfers/\(id)"), ("POST", "/transfers"), ("GET", "/transfers/\(id)/versions"), ("POST", "/transfers/\(id)/cancel")] {
            let anonymous = try http.send(method: method, path: path, headers: [("Content-Type", "application/json")], body: Array(Self.body.utf8))
            #expect(anonymous.status == 401, "\(method) \(path)")
            #expect(anonymous.headers["www-authenticate"] == "Bearer")
            let wrong = try http.send(method: method, path: path, headers: [("Authorization", "Bearer first-tokeN")])
            #expect(wrong.status == 401)
        }
        #expect(try http.get("/transfers/\(id)", headers: [("Authorization", "Bearer second-token")]).status == 404)
        let created = try http.postJSON("/transfers", Self.body, headers: [("Authorization", "Bearer first-token")])
        #expect(created.status == 202)
        #expect(try http.get("/readyz").status == 200)
        #expect(!service.logLines().contains { $0.contains("first-token") })
    }
}
