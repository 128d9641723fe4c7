import ExactJSON
import Foundation
import RedisClient
import ServiceTestSupport
import TestSupport
import Testing
import Transfers

/// Data written by the release before cluster support (its own scripts and key names) is still read, completed,
/// cancelled and replayed after `transfer-service migrate`.
@Suite struct UpgradeTests {
    @Test func migratedDataIsReadCompletedCancelledAndReplayed() throws {
        let deployment = try ServiceDeployment(name: "upgrade", brokers: 1)
        defer { deployment.tearDown() }
        let legacy = LegacyLayoutWriter(redis: deployment.redis)
        let longAgo = "2026-11-01T10:00:00.000Z"
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        func transfer(_ sender: String, createdAt: String = longAgo) -> Transfer {
            Transfer.initiate(
                TransferRequest(senderID: sender, receiverID: "bob", amount: try! Amount(jsonNumber: "5")), id: .random(), at: createdAt
            )
        }
        // Waiting in the old outbox, already due: the sweeper resends it and the consumer completes it.
        let unsent = transfer("legacy-unsent")
        try legacy.create(unsent, outboxDueAt: now - 1_000)
        // Completed by the old consumer: two versions in the old history list.
        let completed = transfer("legacy-completed")
        try legacy.create(completed, outboxDueAt: nil)
        try legacy.complete(completed, at: longAgo)
        // Delivered long ago but never completed (its event was lost): the reconciler publishes it again.
        let lost = transfer("legacy-lost")
        try legacy.create(lost, outboxDueAt: nil)
        // Created just now and delivered: still pending, so a client can cancel it.
        let fresh = transfer("legacy-fresh", createdAt: UnixTime.nowRFC3339())
        try legacy.create(fresh, outboxDueAt: nil)
        // Created with an Idempotency-Key: a repeat must replay it.
        let keyed = transfer("legacy-keyed", createdAt: UnixTime.nowRFC3339())
        let keyedRequest = TransferRequest(senderID: "legacy-keyed", receiverID: "bob", amount: try Amount(jsonNumber: "5"))
        try legacy.create(keyed, outboxDueAt: nil, idempotencyKey: "legacy-order-1", requestFingerprint: keyedRequest.fingerprint)

        let migrate = try ChildProcess(
            executable: Products.path("transfer-service"), arguments: ["migrate"], environment: deployment.environment, name: "migrate"
        )
        #expect(migrate.waitForExit(timeout: .seconds(60)) == 0)
        let report = try String(contentsOfFile: migrate.stdoutPath, encoding: .utf8)
        #expect(
            report.contains("moved 5 histories, 1 outbox entries and 1 idempotency keys; indexed 4 pending transfers; listed 5 transfers in their accounts"),
            "\(report)"
        )
        let leftovers = try deployment.withRedis { try $0.command(["KEYS", "*:history"]) }.array ?? []
        #expect(leftovers.compactMap(\.string).allSatisfy { $0.hasPrefix("{transfer:") })
        #expect(try deployment.withRedis { try $0.command(["EXISTS", "transfers:outbox", "idempotency:legacy-order-1"]) }.integer == 0)

        let instance = try deployment.addInstance()
        // Read: the completed transfer with its whole history.
        let versions = try instance.http.get("/transfers/\(completed.id)/versions")
        #expect(versions.status == 200)
        #expect(try Self.versionNumbers(versions) == [1, 2])
        // Cancel: the fresh one, at its current version.
        let cancel = try instance.http.postJSON("/transfers/\(fresh.id)/cancel", "", headers: [("If-Match", "\"1\"")])
        #expect(cancel.status == 200, "\(cancel.bodyText)")
        #expect(try Self.versionNumbers(try instance.http.get("/transfers/\(fresh.id)/versions")) == [1, 2])
        // Replay: the same key and request give the legacy transfer back; another request is refused.
        let body = #"{"sender_id": "legacy-keyed", "receiver_id": "bob", "amount": 5}"#
        let replay = try instance.http.postJSON("/transfers", body, headers: [("Idempotency-Key", "legacy-order-1")])
        #expect(replay.status == 202)
        #expect(replay.headers["idempotent-replayed"] == "true")
        #expect(replay.bodyText == keyed.json)
        let other = try instance.http.postJSON(
            "/transfers", #"{"sender_id": "legacy-keyed", "receiver_id": "bob", "amount": 6}"#, headers: [("Idempotency-Key", "legacy-order-1")]
        )
        #expect(other.status == 422)
        // List: every migrated transfer is in its parties' listings, the completed one with its current state.
        let listing = try instance.http.get("/transfers?account=bob&limit=10")
        #expect(listing.status == 200)
        let listedIDs = try Self.transferIDs(listing)
        #expect(Set(listedIDs) == Set([unsent, completed, lost, fresh, keyed].map(\.id.rawValue)), "\(listing.bodyText)")
        #expect(try Self.transferIDs(try instance.http.get("/transfers?account=legacy-completed&role=sender&status=completed")) == [completed.id.rawValue])
        // Complete: the unsent one (from the migrated outbox) and the lost one (from the pending index).
        for id in [unsent.id, lost.id] {
            let stored = try deployment.waitForStoredTransfer(id.rawValue, timeout: 60) { $0.status == .completed }
            #expect(stored.version == 2)
        }
    }

    /// A start on the old release's data warns that `migrate` has not run, also once its outbox has drained (an
    /// empty sorted set does not exist in Redis, so only its histories and idempotency records are left).
    @Test func aStartOnLegacyDataWithADrainedOutboxWarnsToMigrate() throws {
        let deployment = try ServiceDeployment(name: "upgrade-warning", brokers: 1)
        defer { deployment.tearDown() }
        let legacy = LegacyLayoutWriter(redis: deployment.redis)
        let completed = Transfer.initiate(
            TransferRequest(senderID: "legacy-drained", receiverID: "bob", amount: try Amount(jsonNumber: "5")), id: .random(),
            at: "2026-11-01T10:00:00.000Z"
        )
        try legacy.create(completed, outboxDueAt: nil)
        try legacy.complete(completed, at: "2026-11-01T10:00:01.000Z")
        #expect(try deployment.withRedis { try $0.command(["EXISTS", "transfers:outbox"]) }.integer == 0)

        let instance = try deployment.addInstance()
        #expect(instance.waitForLogLine { $0.contains("run `transfer-service migrate`") }, "\(instance.recentOutput())")
    }

    private static func transferIDs(_ response: HTTPTestResponse) throws -> [String] {
        guard case .object(let body) = try JSONValue.parse(response.body), case .array(let transfers)? = body["transfers"] else {
            throw HarnessError("no transfers in \(response.bodyText)")
        }
        return try transfers.map { try Transfer(json: Array($0.serialized.utf8)).id.rawValue }
    }

    private static func versionNumbers(_ response: HTTPTestResponse) throws -> [Int] {
        guard case .object(let body) = try JSONValue.parse(response.body), case .array(let versions)? = body["versions"] else {
            throw HarnessError("no versions in \(response.bodyText)")
        }
        return try versions.map { try Transfer(json: Array($0.serialized.utf8)).version }
    }
}

/// The current time as the service writes it.
enum UnixTime {
    static func nowRFC3339() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date())
    }
}
