import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import RedisClient
import Synchronization
import TestSupport
import Testing
import TransferService
import Transfers

/// When Redis takes a write but its reply never arrives, the repository reads the record back and claims only what
/// it finds there.
@Suite struct LostReplyTests {
    @Test func aCancelWhoseReplyIsLostIsOutcomeUnknownAndARetryCancelsExactlyOnce() throws {
        let redis = try RedisServer.start()
        defer { redis.stop() }
        // A reply later than 300 ms counts as lost (the connection is dropped); the whole cancel may take 5 s.
        let client = RedisNodeClient(
            configuration: RedisConfiguration(host: redis.host, port: redis.port, commandTimeout: .milliseconds(300)),
            options: .init(connections: 1)
        )
        defer { client.shutdown() }
        let repository = TransferRepository(
            redis: client, settings: .init(timeout: .seconds(5), outboxLeaseMilliseconds: 60_000), metrics: ServiceMetrics()
        )
        let request = TransferRequest(senderID: "lost-cancel", receiverID: "bob", amount: Amount(minorUnits: 700))
        let transfer = Transfer.initiate(request, id: .random(), at: UnixMilliseconds.now().rfc3339)
        let created = wait { repository.create(transfer, json: transfer.json, idempotency: nil, completion: $0) }
        #expect(try created.get() == .created)

        // Redis holds back every write for 2 s but still answers reads: the cancel reads version 1, sends its
        // script, gets no reply in time, and reads the record back: still version 1, which proves nothing either
        // way (the script may yet run), so the answer must not claim that nothing changed.
        let admin = try RedisConnection(configuration: RedisConfiguration(host: redis.host, port: redis.port))
        _ = try admin.command(["CLIENT", "PAUSE", "2000", "WRITE"])
        let lost = wait { repository.cancel(transfer.id, expectedVersions: [1], at: .now(), completion: $0) }
        _ = try admin.command(["CLIENT", "UNPAUSE"])
        guard case .failure(.outcomeUnknown(let id, _)) = lost else {
            Issue.record("a cancel whose reply was lost answered \(lost)")
            return
        }
        #expect(id == transfer.id)

        // The client retries as a 503 tells it to. Whichever way the first script went (Redis drops a postponed
        // command of a closed connection, so normally not at all), the transfer ends cancelled at version 2 with
        // one history entry per version: the cancel happened exactly once.
        let retried = try wait { repository.cancel(transfer.id, expectedVersions: [1], at: .now(), completion: $0) }.get()
        switch retried {
        case .cancelled(let cancelled): #expect(cancelled.version == 2)
        case .refused(.notCancellable(status: .cancelled)): break  // the first script ran after all
        default: Issue.record("the retried cancel answered \(retried)")
        }
        let stored = try #require(try admin.command(["GET", "transfer:\(transfer.id)"]).string)
        let final = try Transfer(json: Array(stored.utf8))
        #expect(final.status == .cancelled)
        #expect(final.version == 2)
        #expect(try admin.command(["LLEN", "{transfer:\(transfer.id)}:history"]).integer == 2)
    }

    /// With replicas required, a create whose reply was lost is never claimed done from a read-back: finding the
    /// record proves only that the primary has it (`WAIT` counts a connection's own writes; a read-back makes none).
    @Test func aCreateWhoseReplyIsLostIsOutcomeUnknownWhenReplicasAreRequired() throws {
        let redis = try RedisServer.start()
        defer { redis.stop() }
        // A reply later than 1 s counts as lost; Redis (with no replica at all) is frozen for 1.5 s, so the script
        // waits in its socket, its reply is lost, and Redis runs it once thawed, answering a read-back sent at 1 s.
        let client = RedisNodeClient(
            configuration: RedisConfiguration(host: redis.host, port: redis.port, commandTimeout: .seconds(1)),
            options: .init(connections: 1)
        )
        defer { client.shutdown() }
        let repository = TransferRepository(
            redis: client, settings: .init(timeout: .seconds(5), replicas: 1, outboxLeaseMilliseconds: 60_000), metrics: ServiceMetrics()
        )
        let request = TransferRequest(senderID: "lost-create", receiverID: "bob", amount: Amount(minorUnits: 700))
        let transfer = Transfer.initiate(request, id: .random(), at: UnixMilliseconds.now().rfc3339)
        // Connected, and the create script loaded, before Redis freezes (with no replica, the answer says so).
        let warmUp = Transfer.initiate(request, id: .random(), at: UnixMilliseconds.now().rfc3339)
        let warmUpOutcome = wait { repository.create(warmUp, json: warmUp.json, idempotency: nil, completion: $0) }
        guard case .failure(.notReplicated(_, acknowledged: 0, required: 1)) = warmUpOutcome else {
            Issue.record("a create without the required replica answered \(warmUpOutcome)")
            return
        }

        redis.process.signal(SIGSTOP)
        DispatchQueue.global().asyncAfter(deadline: .now() + 1.5) { redis.process.signal(SIGCONT) }
        let lost = wait { repository.create(transfer, json: transfer.json, idempotency: nil, completion: $0) }
        guard case .failure(.outcomeUnknown(let id, _)) = lost else {
            Issue.record("a create whose reply was lost, with a replica required and none there, answered \(lost)")
            return
        }
        #expect(id == transfer.id)
        let admin = try RedisConnection(configuration: RedisConfiguration(host: redis.host, port: redis.port))
        let stored = try admin.command(["GET", "transfer:\(transfer.id)"]).string
        print("[lostcreate] the frozen create ran once thawed: \(stored != nil)")
    }

    /// Runs an operation that answers through a completion and waits for its answer.
    private func wait<Value: Sendable>(_ operation: (@escaping @Sendable (Value) -> Void) -> Void) -> Value {
        let answer = Mutex<Value?>(nil)
        let answered = DispatchSemaphore(value: 0)
        operation { value in
            answer.withLock { $0 = value }
            answered.signal()
        }
        answered.wait()
        return answer.withLock { $0! }
    }
}
