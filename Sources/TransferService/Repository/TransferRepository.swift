import ExactJSON
import RedisClient
import Transfers

/// Transfers in Redis: their records, histories and idempotency records, the per-slot outbox of events not yet
/// confirmed by Kafka, and the per-slot index of transfers not yet finished (see `TransferKeys`).
///
/// Requests from HTTP handlers are asynchronous: they are submitted to the Redis client, which writes everything
/// submitted meanwhile in one pipeline per node (group commit), and the completion runs on a Redis client thread
/// (keep it short). Background loops (the consumer, the sweeper) use the blocking variants.
public final class TransferRepository: Sendable {
    /// What every request of the repository respects.
    public struct Settings: Sendable {
        /// The longest one operation may wait on Redis (a request's whole budget).
        public var timeout: Duration
        /// Replicas each write must reach (Redis `WAIT`) before it is reported done; 0: none.
        public var replicas: Int
        /// How long a finished transfer is kept; nil: forever.
        public var retentionSeconds: Int?
        /// How long after an event is handed to Kafka its outbox entry falls due for a resend, in milliseconds.
        public var outboxLeaseMilliseconds: Int64

        public init(timeout: Duration, replicas: Int = 0, retentionSeconds: Int? = nil, outboxLeaseMilliseconds: Int64) {
            self.timeout = timeout
            self.replicas = replicas
            self.retentionSeconds = retentionSeconds
            self.outboxLeaseMilliseconds = outboxLeaseMilliseconds
        }
    }

    /// The Redis deployment behind the repository.
    public let redis: any RedisDeployment
    public let settings: Settings
    private let metrics: ServiceMetrics

    /// A repository on `redis`, counting Redis failures in `metrics`.
    public init(redis: any RedisDeployment, settings: Settings, metrics: ServiceMetrics) {
        self.redis = redis
        self.settings = settings
        self.metrics = metrics
    }

    // MARK: - Creating

    /// What `create` did.
    public enum CreateOutcome: Sendable, Equatable {
        case created
        /// The transfer id is already taken (nothing written).
        case idTaken
        /// The idempotency key was used before (nothing written): what was stored with it, and the first version
        /// of the transfer it created (the response to replay), nil when that transfer is no longer kept.
        case idempotencyKeyUsed(IdempotencyRecord, firstVersion: Transfer?)
    }

    /// Stores a new transfer (`json` is its rendered `Transfer.json`) with its first history entry, its outbox
    /// entry, its pending-index entry and, for a keyed create, its idempotency record, atomically.
    ///
    /// When the script was sent but its reply was lost, the record is read back: found, the create is reported
    /// done; not found or unreadable, `outcomeUnknown` (the script may still have run). With `replicas` set, a
    /// write that too few replicas confirmed is `notReplicated`, and a lost reply is always `outcomeUnknown` (see
    /// `readBackProves`).
    public func create(
        _ transfer: Transfer, json: String, idempotency: IdempotencyRecord?,
        completion: @escaping @Sendable (Result<CreateOutcome, RepositoryError>) -> Void
    ) {
        let command = createCommand(transfer, json: json, idempotency: idempotency)
        let deadline = ContinuousClock.now + settings.timeout
        // The parties' account-index entries ride in the same request (see AccountIndex); only the script's reply,
        // and the replicas of the script's own node, decide the outcome.
        submit([command] + indexAdditions(for: transfer), deadline: deadline, replicas: settings.replicas) { [self] response in
            switch Self.createOutcome(response, id: transfer.id, required: settings.replicas) {
            case .decided(let outcome):
                completion(outcome)
            case .lostReply(let error):
                confirmCreate(transfer.id, json: json, deadline: deadline, lostReply: error, completion: completion)
            }
        }
    }

    /// The create script's command for `transfer`.
    func createCommand(_ transfer: Transfer, json: String, idempotency: IdempotencyRecord?) -> RedisCommand {
        let keys = TransferKeys(transfer.id)
        return RedisCommand.script(
            TransferScripts.create, keys: [keys.record, keys.history, keys.outbox, keys.pending, keys.idempotency],
            arguments: [json, String(settings.outboxLeaseMilliseconds), transfer.id.rawValue, idempotency?.json ?? ""]
        )
    }

    enum CreateReply {
        case decided(Result<CreateOutcome, RepositoryError>)
        /// Sent, and no reply came back.
        case lostReply(RedisError)
    }

    static func createOutcome(_ response: RedisResponse, id: TransferID, required: Int) -> CreateReply {
        let reply: RedisReply
        switch response.replies[0] {
        case .failure(let error) where error.mayHaveExecuted:
            return .lostReply(error)
        case .failure(let error):
            return .decided(.failure(RepositoryError(error)))
        case .success(let success):
            reply = success
        }
        guard let parts = reply.array, let code = parts.first?.integer else {
            return .decided(.failure(RepositoryError(reply: reply, of: "create")))
        }
        switch code {
        case 1:
            if let shortfall = RepositoryError.replicationShortfall(response, forCommandAt: 0, id: id, required: required) {
                return .decided(.failure(shortfall))
            }
            return .decided(.success(.created))
        case 0:
            return .decided(.success(.idTaken))
        case 2:
            guard parts.count == 3, let stored = parts[1].bytes, let record = IdempotencyRecord(json: stored) else {
                return .decided(.failure(.unexpectedReply("create: unreadable idempotency record \(reply)")))
            }
            let firstVersion = parts[2].bytes.flatMap { try? Transfer(json: $0) }
            return .decided(.success(.idempotencyKeyUsed(record, firstVersion: firstVersion)))
        default:
            return .decided(.failure(.unexpectedReply("create: \(reply)")))
        }
    }

    /// Whether reading a record back after a lost reply can prove a write: only when no replica has to confirm
    /// it. The record found on the primary says nothing about its replicas, and `WAIT` counts only a connection's
    /// own writes (the read-back made none), so with `replicas` set a lost reply stays `outcomeUnknown`.
    var readBackProves: Bool { settings.replicas == 0 }

    /// Reads the record back after a lost reply: our JSON there means the create ran.
    private func confirmCreate(
        _ id: TransferID, json: String, deadline: ContinuousClock.Instant, lostReply: RedisError,
        completion: @escaping @Sendable (Result<CreateOutcome, RepositoryError>) -> Void
    ) {
        guard readBackProves else { return completion(.failure(.outcomeUnknown(id: id, reason: lostReply.description))) }
        let read = RedisCommand.command(["GET", TransferKeys(id).record], key: TransferKeys(id).record)
        submit([read], deadline: deadline, replicas: 0) { response in
            if case .success(.string(let stored)) = response.replies[0], stored.elementsEqual(json.utf8) {
                completion(.success(.created))
            } else {
                completion(.failure(.outcomeUnknown(id: id, reason: lostReply.description)))
            }
        }
    }

    // MARK: - Reading

    /// The stored transfer, or nil when there is none.
    public func find(_ id: TransferID, completion: @escaping @Sendable (Result<Transfer?, RepositoryError>) -> Void) {
        let key = TransferKeys(id).record
        submit([.command(["GET", key], key: key)], deadline: .now + settings.timeout, replicas: 0) { response in
            completion(Result { () throws(RepositoryError) in try Self.transfer(from: response.replies[0], id: id) })
        }
    }

    /// Every version of the transfer, oldest first; nil when there is no such transfer. A record written by the
    /// original sketch has no history: its versions are whatever was recorded since, ending with the current one.
    public func versions(of id: TransferID, completion: @escaping @Sendable (Result<[Transfer]?, RepositoryError>) -> Void) {
        let keys = TransferKeys(id)
        let commands: [RedisCommand] = [
            .command(["GET", keys.record], key: keys.record), .command(["LRANGE", keys.history, "0", "-1"], key: keys.history),
        ]
        submit(commands, deadline: .now + settings.timeout, replicas: 0) { response in
            completion(Result { () throws(RepositoryError) -> [Transfer]? in
                guard let current = try Self.transfer(from: response.replies[0], id: id) else { return nil }
                let entries = try Self.reply(response.replies[1], of: "LRANGE").array ?? []
                var history: [Transfer] = []
                for entry in entries {
                    guard let bytes = entry.bytes else { throw .unexpectedReply("LRANGE: \(entry)") }
                    history.append(try Self.decode(bytes, id: id))
                }
                if history.last?.version != current.version {
                    history.append(current)
                }
                return history
            })
        }
    }

    /// The first version of another transfer: what a keyed create replays when its idempotency record names a
    /// transfer created before ids were derived from keys (migrated data).
    public func firstVersion(of id: TransferID, completion: @escaping @Sendable (Result<Transfer?, RepositoryError>) -> Void) {
        let history = TransferKeys(id).history
        submit([.command(["LINDEX", history, "0"], key: history)], deadline: .now + settings.timeout, replicas: 0) { response in
            completion(Result { () throws(RepositoryError) in try Self.transfer(from: response.replies[0], id: id) })
        }
    }

    // MARK: - Changing

    /// What `cancel` did.
    public enum CancelOutcome: Sendable, Equatable {
        case cancelled(Transfer)
        case notFound
        case refused(CancellationRefusal)
    }

    /// Cancels the transfer if its current version is one of `expectedVersions` (nil: any) and it is still
    /// `initiated`. The write is a compare-and-set on the version that was checked, so a cancel racing the consumer
    /// ends in exactly one of the two states. A lost reply is resolved by reading the record back, like a create's.
    public func cancel(
        _ id: TransferID, expectedVersions: [Int]?, at time: UnixMilliseconds,
        completion: @escaping @Sendable (Result<CancelOutcome, RepositoryError>) -> Void
    ) {
        let deadline = ContinuousClock.now + settings.timeout
        find(id) { [self] found in
            let current: Transfer
            switch found {
            case .failure(let error): return completion(.failure(error))
            case .success(nil): return completion(.success(.notFound))
            case .success(let transfer?): current = transfer
            }
            let expected = expectedVersions.map { $0.contains(current.version) ? current.version : $0.first ?? 0 } ?? current.version
            let cancelled: Transfer
            do throws(CancellationRefusal) {
                cancelled = try current.cancelled(expectedVersion: expected, at: time.rfc3339)
            } catch {
                return completion(.success(.refused(error)))
            }
            let json = cancelled.json
            let command = compareAndSet(current.version, json: json, id: id, recreate: false)
            submit([command], deadline: deadline, replicas: settings.replicas) { [self] response in
                switch response.replies[0] {
                case .failure(let error) where error.mayHaveExecuted:
                    confirmCancel(cancelled, json: json, deadline: deadline, lostReply: error, completion: completion)
                    return
                case .failure(let error):
                    return completion(.failure(RepositoryError(error)))
                case .success(let reply):
                    completion(Result { () throws(RepositoryError) -> CancelOutcome in
                        let (code, stored) = try Self.compareAndSetResult(reply)
                        switch code {
                        case 1:
                            if let shortfall = RepositoryError.replicationShortfall(response, forCommandAt: 0, id: id, required: settings.replicas) {
                                throw shortfall
                            }
                            return .cancelled(cancelled)
                        case 0: return .refused(.versionMismatch(currentVersion: stored))  // changed since it was read
                        case 3, 4: return .notFound
                        default: throw .unreadableRecord(id: id, reason: "the stored value has no numeric version")
                        }
                    })
                }
            }
        }
    }

    private func confirmCancel(
        _ cancelled: Transfer, json: String, deadline: ContinuousClock.Instant, lostReply: RedisError,
        completion: @escaping @Sendable (Result<CancelOutcome, RepositoryError>) -> Void
    ) {
        guard readBackProves else { return completion(.failure(.outcomeUnknown(id: cancelled.id, reason: lostReply.description))) }
        let key = TransferKeys(cancelled.id).record
        submit([.command(["GET", key], key: key)], deadline: deadline, replicas: 0) { response in
            if case .success(.string(let stored)) = response.replies[0], stored.elementsEqual(json.utf8) {
                completion(.success(.cancelled(cancelled)))
            } else {
                completion(.failure(.outcomeUnknown(id: cancelled.id, reason: lostReply.description)))
            }
        }
    }

    /// Applies the consumer's versioned update for each event (the transfer as published), each in one atomic
    /// script, all in one request (one pipeline per node). Blocking: for the consumer's thread.
    ///
    /// Each event gets its own result: a failure of one (a Redis error for that script, a lost reply) leaves the
    /// others' outcomes standing. An event for a transfer Redis never had recreates it only when the event passes
    /// a request's validation; otherwise its outcome is `.failure(.invalidEvent)`.
    public func complete(_ events: [Transfer], at time: UnixMilliseconds) -> CompletionBatch {
        startCompleting(prepareCompletions(events, at: time)).finish()
    }

    /// `complete`'s scripts for `events`, rendered and encoded but not sent: the consumer prepares the next batch
    /// while Redis runs the current one.
    public func prepareCompletions(_ events: [Transfer], at time: UnixMilliseconds) -> PreparedCompletions {
        let timestamp = time.rfc3339
        let completed = events.map { $0.completed(at: timestamp).json }
        let commands = events.indices.map { compareAndSet(events[$0].version, json: completed[$0], id: events[$0].id, recreate: false) }
        return PreparedCompletions(events: events, completed: completed, commands: commands)
    }

    /// Sends prepared completions without waiting; `finish()` on the result waits for their outcomes.
    public func startCompleting(_ prepared: PreparedCompletions) -> CompletionsInFlight {
        let reply = RedisResponseWaiter()
        if prepared.commands.isEmpty {
            reply.deliver(RedisResponse(replies: [], acknowledgedReplicas: nil))
        } else {
            submit(prepared.commands, deadline: .now + settings.timeout, replicas: settings.replicas) { reply.deliver($0) }
        }
        return CompletionsInFlight(repository: self, prepared: prepared, reply: reply)
    }

    /// The outcomes of the first pass, then the second: events whose transfer was never stored are recreated from
    /// the event (the sketch's rule), once validated.
    fileprivate func finish(_ prepared: PreparedCompletions, firstPass response: RedisResponse) -> CompletionBatch {
        let events = prepared.events
        var batch = completionBatch(response, events: events, indices: Array(events.indices))
        let unknown = batch.outcomes.indices.filter { batch.outcomes[$0].isNothingStored }
        guard !unknown.isEmpty else { return batch }
        var recreatable: [Int] = []
        for index in unknown {
            let problems = events[index].requestProblems
            if problems.isEmpty {
                recreatable.append(index)
            } else {
                batch.outcomes[index] = .failure(.invalidEvent(id: events[index].id, reason: problems.map(\.description).joined(separator: "; ")))
            }
        }
        guard !recreatable.isEmpty else { return batch }
        let commands = recreatable.map { compareAndSet(events[$0].version, json: prepared.completed[$0], id: events[$0].id, recreate: true) }
        let second = completionBatch(execute(commands, replicas: settings.replicas), events: events, indices: recreatable)
        for (position, index) in recreatable.enumerated() {
            batch.outcomes[index] = second.outcomes[position]
        }
        batch.isReplicated = batch.isReplicated && second.isReplicated
        return batch
    }

    private func completionBatch(_ response: RedisResponse, events: [Transfer], indices: [Int]) -> CompletionBatch {
        let outcomes = zip(indices, response.replies).map { index, reply in
            CompletionBatch.outcome(of: reply, eventVersion: events[index].version, id: events[index].id)
        }
        return CompletionBatch(outcomes: outcomes, isReplicated: response.acknowledgedReplicas.map { $0 >= settings.replicas } ?? true)
    }

    private func compareAndSet(_ expectedVersion: Int, json: String, id: TransferID, recreate: Bool) -> RedisCommand {
        let keys = TransferKeys(id)
        return .script(
            TransferScripts.compareAndSet, keys: [keys.record, keys.history, keys.pending, keys.idempotency],
            arguments: [String(expectedVersion), json, recreate ? "recreate" : "keep-missing", id.rawValue,
                        String(settings.retentionSeconds ?? 0)]
        )
    }

    // MARK: - Outbox and pending index

    /// Removes the outbox entries of events Kafka has confirmed (`event` is the published JSON, `id` its
    /// transfer). Fire and forget: an entry left behind is only resent, which the version check absorbs.
    public func removeOutboxEntries(_ entries: [(id: TransferID, event: [UInt8])], completion: @escaping @Sendable (RedisError?) -> Void) {
        guard !entries.isEmpty else { return completion(nil) }
        let commands = entries.map { entry in
            let outbox = TransferKeys(entry.id).outbox
            return RedisCommand.command(["ZREM", outbox, String(decoding: entry.event, as: UTF8.self)], key: outbox)
        }
        submit(commands, deadline: .now + settings.timeout, replicas: 0) { response in
            let failure = response.replies.lazy.compactMap { reply -> RedisError? in
                if case .failure(let error) = reply { return error }
                if case .success(.error(let message)) = reply { return RedisError(kind: .server, message: message) }
                return nil
            }.first
            completion(failure)
        }
    }

    /// What one sweep of a range of slots claimed.
    public struct SweepClaims: Sendable {
        /// Outbox entries due for a resend (event JSON texts), now leased to this instance.
        public var outboxEntries: [[UInt8]]
        /// Transfers pending longer than the reconcile wait, now restarted on their wait by this instance.
        public var pendingIDs: [TransferID]
        /// When they were claimed, in Unix milliseconds by Redis's clock (the clock of the pending index's scores).
        public var claimedAt: Int64
    }

    /// Claims, on `node`, the due outbox entries and the transfers pending longer than `pendingAfterMilliseconds`
    /// among `slots` (all served by `node`), up to `limit` of each. Blocking: for the sweeper's thread.
    public func claimDue(
        on node: RedisNodeID, slots: ClosedRange<Int>, pendingAfterMilliseconds: Int64, limit: Int
    ) throws(RepositoryError) -> SweepClaims {
        var arguments = [String(settings.outboxLeaseMilliseconds), String(pendingAfterMilliseconds), String(limit)]
        for slot in slots {
            arguments += [SlotKeys.outbox(slot), SlotKeys.pending(slot)]
        }
        // No declared keys: they span slots (see the script); the request goes to `node` itself.
        let command = RedisCommand.script(TransferScripts.sweep, keys: [], arguments: arguments)
        let response = redis.execute(RedisRequest([command], timeout: settings.timeout), on: node)
        let reply = try Self.reply(response.replies[0], of: "sweep")
        guard let parts = reply.array, parts.count == 3, let entries = parts[0].array, let ids = parts[1].array,
              let claimedAt = parts[2].integer
        else {
            throw .unexpectedReply("sweep: \(reply)")
        }
        return SweepClaims(
            outboxEntries: entries.compactMap(\.bytes),
            pendingIDs: ids.compactMap { $0.string.flatMap(TransferID.init) },
            claimedAt: claimedAt
        )
    }

    /// The current records of claimed pending transfers, pipelined: those still `initiated` are returned for
    /// publishing again; the others (finished, or gone) leave the pending index. Blocking.
    public func stillInitiated(_ ids: [TransferID]) throws(RepositoryError) -> [Transfer] {
        guard !ids.isEmpty else { return [] }
        let response = execute(ids.map { id in .command(["GET", TransferKeys(id).record], key: TransferKeys(id).record) }, replicas: 0)
        var initiated: [Transfer] = []
        var settled: [RedisCommand] = []
        for (id, reply) in zip(ids, response.replies) {
            let transfer: Transfer?
            do {
                transfer = try Self.transfer(from: reply, id: id)
            } catch .unreadableRecord {
                continue  // nothing to publish; it stays pending until someone repairs the record
            }
            if let transfer, transfer.status == .initiated {
                initiated.append(transfer)
            } else {
                let pending = TransferKeys(id).pending
                settled.append(.command(["ZREM", pending, id.rawValue], key: pending))
            }
        }
        if !settled.isEmpty { _ = execute(settled, replicas: 0) }
        reindex(initiated)  // repairs account-index entries a create could not write
        return initiated
    }

    /// Moves the next reconcile claim of pending transfers to the given times (Unix milliseconds by Redis's clock,
    /// as `SweepClaims.claimedAt`), never earlier than already set. A transfer finished meanwhile has left the
    /// pending index and stays out of it. Blocking; a failure only leaves the claims at the reconcile wait.
    public func postponeReconcile(_ claims: [(id: TransferID, at: Int64)], reconcileAfterMilliseconds: Int64) {
        guard !claims.isEmpty else { return }
        _ = execute(claims.map { claim in
            // A transfer is claimed once its score is `reconcileAfterMilliseconds` old.
            let pending = TransferKeys(claim.id).pending
            return .command(["ZADD", pending, "XX", "GT", String(claim.at - reconcileAfterMilliseconds), claim.id.rawValue], key: pending)
        }, replicas: 0)
    }

    /// Takes a lease on sweeping `node` for `milliseconds`, so that of all instances one at a time walks a node's
    /// slots; false when another instance holds it. The lease key lives in the node's first slot.
    public func takeSweepLease(on node: RedisNodeDescription, holder: String, milliseconds: Int64) throws(RepositoryError) -> Bool {
        guard let slot = node.slots.first?.lowerBound else { return false }
        let key = "transfers:sweeper:{\(RedisSlot.hashTag(of: slot))}"
        let response = redis.execute(RedisRequest([.command(["SET", key, holder, "NX", "PX", String(milliseconds)], key: key)], timeout: settings.timeout), on: node.id)
        return try Self.reply(response.replies[0], of: "SET") == .status("OK")
    }

    // MARK: - Health

    /// Throws unless every primary answers PING.
    public func ping() throws(RepositoryError) {
        let primaries: [RedisNodeDescription]
        do {
            primaries = try redis.primaries()
        } catch {
            throw RepositoryError(error)
        }
        for node in primaries {
            let response = redis.execute(RedisRequest([.command(["PING"], key: nil)], timeout: settings.timeout), on: node.id)
            _ = try Self.reply(response.replies[0], of: "PING")
        }
    }

    /// The memory a primary uses (`used_memory` of `INFO memory`), in bytes.
    public func usedMemory(on node: RedisNodeID) throws(RepositoryError) -> Int {
        let response = redis.execute(RedisRequest([.command(["INFO", "memory"], key: nil)], timeout: settings.timeout), on: node)
        let info = try Self.reply(response.replies[0], of: "INFO").string ?? ""
        guard let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("used_memory:") }),
              let bytes = Int(line.dropFirst("used_memory:".count))
        else { throw .unexpectedReply("INFO memory without used_memory") }
        return bytes
    }

    /// True when data of the release before cluster support is still there: the operator has not run
    /// `transfer-service migrate` yet. Its global outbox is gone once drained (an empty sorted set does not exist),
    /// so the first few pages of a SCAN also look for its history lists (`transfer:<id>:history`: one per transfer
    /// it stored, so a few thousand keys examined find one whenever there are any to speak of). Today's histories
    /// start with `{`.
    public func hasLegacyData() throws(RepositoryError) -> Bool {
        let response = execute([.command(["EXISTS", LegacyKeys.outbox], key: LegacyKeys.outbox)], replicas: 0)
        if try Self.reply(response.replies[0], of: "EXISTS").integer == 1 { return true }
        var cursor = "0"
        for _ in 0..<Self.legacyScanPages {
            let page = execute([.command(["SCAN", cursor, "MATCH", LegacyKeys.historyPattern, "COUNT", "1000"], key: nil)], replicas: 0)
            guard let parts = try Self.reply(page.replies[0], of: "SCAN").array, parts.count == 2, let next = parts[0].string else {
                return false
            }
            if parts[1].array?.isEmpty == false { return true }
            cursor = next
            if cursor == "0" { return false }
        }
        return false
    }

    /// How many SCAN pages of 1,000 keys `hasLegacyData` examines at most.
    static let legacyScanPages = 5

    // MARK: - Plumbing

    func submit(
        _ commands: [RedisCommand], deadline: ContinuousClock.Instant, replicas: Int,
        completion: @escaping @Sendable (RedisResponse) -> Void
    ) {
        redis.submit(RedisRequest(commands, deadline: deadline, replicas: replicas)) { [metrics] response in
            if response.replies.contains(where: { if case .failure = $0 { true } else { false } }) {
                metrics.recordDependencyError("redis")
            }
            completion(response)
        }
    }

    private func execute(_ commands: [RedisCommand], replicas: Int) -> RedisResponse {
        let response = redis.execute(RedisRequest(commands, timeout: settings.timeout, replicas: replicas))
        if response.replies.contains(where: { if case .failure = $0 { true } else { false } }) {
            metrics.recordDependencyError("redis")
        }
        return response
    }

    /// The reply, or the failure as a repository error; an error reply is unexpected here.
    static func reply(_ result: Result<RedisReply, RedisError>, of command: String) throws(RepositoryError) -> RedisReply {
        switch result {
        case .failure(let error): throw RepositoryError(error)
        case .success(.error(let message)): throw RepositoryError(reply: .error(message), of: command)
        case .success(let reply): return reply
        }
    }

    private static func transfer(from result: Result<RedisReply, RedisError>, id: TransferID) throws(RepositoryError) -> Transfer? {
        switch try reply(result, of: "GET") {
        case .null: return nil
        case .string(let bytes): return try decode(bytes, id: id)
        case let other: throw .unexpectedReply("GET: \(other)")
        }
    }

    /// {outcome, storedVersion} from the compare-and-set script.
    static func compareAndSetResult(_ reply: RedisReply) throws(RepositoryError) -> (code: Int64, storedVersion: Int) {
        guard let parts = reply.array, parts.count == 2, let code = parts[0].integer, let stored = parts[1].integer else {
            throw RepositoryError(reply: reply, of: "compare-and-set")
        }
        return (code, Int(stored))
    }

    static func decode(_ bytes: [UInt8], id: TransferID) throws(RepositoryError) -> Transfer {
        do {
            return try Transfer(json: bytes)
        } catch {
            throw .unreadableRecord(id: id, reason: error.reason)
        }
    }
}

/// The consumer's completions of one batch of events.
public struct CompletionBatch: Sendable {
    /// One per event, in order: the version rule's outcome, or why that event could not be applied.
    public var outcomes: [Result<CompletionOutcome, RepositoryError>]
    /// False when a node written to confirmed the writes to fewer replicas than required: the batch must be
    /// applied again (the version check makes that harmless) before its offsets are stored.
    public var isReplicated: Bool

    /// The outcome of one compare-and-set reply.
    static func outcome(of result: Result<RedisReply, RedisError>, eventVersion: Int, id: TransferID) -> Result<CompletionOutcome, RepositoryError> {
        Result { () throws(RepositoryError) -> CompletionOutcome in
            let (code, stored) = try TransferRepository.compareAndSetResult(TransferRepository.reply(result, of: "compare-and-set"))
            // The script applied the version rule; the domain's statement of it names the outcome.
            switch code {
            case 0, 1: return .decide(eventVersion: eventVersion, stored: .present(version: stored))
            case 2: return .decide(eventVersion: eventVersion, stored: .absent(existedBefore: false))
            case 3: throw .nothingStored(id: id)
            case 4: return .decide(eventVersion: eventVersion, stored: .absent(existedBefore: true))
            default: throw .unreadableRecord(id: id, reason: "the stored value has no numeric version")
            }
        }
    }
}

/// The consumer's compare-and-set scripts for a batch of events, ready to send (`TransferRepository.prepareCompletions`).
public struct PreparedCompletions: Sendable {
    let events: [Transfer]
    /// Each event's transfer as completed, rendered once for both passes.
    let completed: [String]
    let commands: [RedisCommand]

    /// How many events the batch holds.
    public var count: Int { events.count }
}

/// Completions sent to Redis whose outcomes have not been read yet (`TransferRepository.startCompleting`).
public struct CompletionsInFlight: Sendable {
    fileprivate let repository: TransferRepository
    fileprivate let prepared: PreparedCompletions
    fileprivate let reply: RedisResponseWaiter

    /// Waits for the first pass's replies, runs the second pass (recreating unknown transfers) if needed, and
    /// returns every event's outcome. Blocking.
    public func finish() -> CompletionBatch {
        repository.finish(prepared, firstPass: reply.wait())
    }
}

extension Result where Success == CompletionOutcome, Failure == RepositoryError {
    fileprivate var isNothingStored: Bool {
        if case .failure(.nothingStored) = self { true } else { false }
    }
}

/// What is kept for an idempotency key: the request it came with and the transfer it created.
public struct IdempotencyRecord: Sendable, Equatable {
    /// The canonical form of the request (`TransferRequest.fingerprint`): a repeat must match it.
    public var requestFingerprint: String
    /// The transfer the first request created; its first version is the response to replay.
    public var transferID: TransferID

    public init(requestFingerprint: String, transferID: TransferID) {
        self.requestFingerprint = requestFingerprint
        self.transferID = transferID
    }

    var json: String {
        JSONValue.object(JSONObject([
            "request": .string(requestFingerprint), "transfer_id": .string(transferID.rawValue),
        ])).serialized
    }

    init?(json bytes: [UInt8]) {
        guard case .object(let object)? = try? JSONValue.parse(bytes),
              case .string(let request)? = object["request"], case .string(let idText)? = object["transfer_id"],
              let id = TransferID(idText)
        else { return nil }
        self.init(requestFingerprint: request, transferID: id)
    }
}

/// Why the repository could not do what was asked.
public enum RepositoryError: Error, Sendable, CustomStringConvertible {
    /// Redis could not be reached, refused to run the command, or the deadline passed before it was sent:
    /// nothing was written; worth retrying.
    case unavailable(RedisError)
    /// Redis refused the service's credentials: a configuration problem; nothing was written.
    case authenticationFailed(RedisError)
    /// The write was sent but no reply came, and reading back could not tell whether it happened.
    case outcomeUnknown(id: TransferID, reason: String)
    /// The write happened on the primary, but fewer replicas than required confirmed it before the deadline: it
    /// may be lost if the primary fails now.
    case notReplicated(id: TransferID, acknowledged: Int, required: Int)
    /// A stored value under `transfer:<id>` is not a transfer.
    case unreadableRecord(id: TransferID, reason: String)
    /// An event for a transfer that was never stored fails a request's validation, so it is not recreated.
    case invalidEvent(id: TransferID, reason: String)
    /// Nothing is stored for the transfer (and nothing was written).
    case nothingStored(id: TransferID)
    /// Redis answered something this code does not expect.
    case unexpectedReply(String)

    /// Maps a Redis client failure.
    init(_ error: RedisError) {
        self = error.kind == .authentication ? .authenticationFailed(error) : .unavailable(error)
    }

    /// Maps an unexpected reply: a server that refused to run the command for now (`LOADING` after a restart,
    /// ...) is unavailable, with nothing written; a refusal of the credentials (`NOAUTH`) is a configuration
    /// problem; anything else is unexpected.
    init(reply: RedisReply, of command: String) {
        guard case .error(let message) = reply else {
            self = .unexpectedReply("\(command): \(reply)")
            return
        }
        if RedisError.isTransientRefusal(message) {
            self = .unavailable(RedisError(kind: .server, message: message, mayHaveExecuted: false))
        } else if RedisError.isAuthenticationFailure(message) {
            self = .authenticationFailed(RedisError(kind: .authentication, message: message))
        } else {
            self = .unexpectedReply("\(command): \(reply)")
        }
    }

    /// `notReplicated` when fewer than `required` replicas confirmed the command at `index` (the `WAIT` of the node it
    /// ran on: in a cluster, the other commands of the request may have gone to other nodes).
    static func replicationShortfall(_ response: RedisResponse, forCommandAt index: Int, id: TransferID, required: Int) -> RepositoryError? {
        guard let acknowledged = response.acknowledgedReplicas(forCommandAt: index), acknowledged < required else {
            return nil
        }
        return .notReplicated(id: id, acknowledged: acknowledged, required: required)
    }

    public var description: String {
        switch self {
        case .unavailable(let error): "Redis is unavailable: \(error)"
        case .authenticationFailed(let error): "Redis refused the credentials: \(error)"
        case .outcomeUnknown(let id, let reason): "the outcome of the write to transfer \(id) is unknown: \(reason)"
        case .notReplicated(let id, let acknowledged, let required):
            "the write to transfer \(id) reached \(acknowledged) of \(required) required replicas"
        case .unreadableRecord(let id, let reason): "the record of transfer \(id) is unreadable: \(reason)"
        case .invalidEvent(let id, let reason): "the event of unknown transfer \(id) is not a valid transfer: \(reason)"
        case .nothingStored(let id): "nothing is stored for transfer \(id)"
        case .unexpectedReply(let reply): "unexpected reply from Redis: \(reply)"
        }
    }
}
