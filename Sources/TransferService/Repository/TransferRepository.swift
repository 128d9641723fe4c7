import ExactJSON
import RedisClient
import Transfers

/// Transfers in Redis: the records under `transfer:<id>`, their histories, idempotency records, and the outbox of
/// events not yet confirmed by Kafka.
public struct TransferRepository: Sendable {
    /// The sorted set of events waiting for Kafka's delivery report, scored by when each is due for a resend.
    public static let outboxKey = "transfers:outbox"
    /// How long an idempotency key's outcome is kept.
    public static let idempotencyLifetimeSeconds = 24 * 60 * 60

    private let pool: RedisConnectionPool
    private let metrics: ServiceMetrics

    /// A repository over `pool`, counting Redis failures in `metrics`.
    public init(pool: RedisConnectionPool, metrics: ServiceMetrics) {
        self.pool = pool
        self.metrics = metrics
    }

    /// The Redis key of a transfer, as in the original sketch.
    public static func key(for id: TransferID) -> String {
        "transfer:\(id.rawValue)"
    }

    /// The Redis list of a transfer's versions, oldest first.
    public static func historyKey(for id: TransferID) -> String {
        "transfer:\(id.rawValue):history"
    }

    /// The Redis key of an idempotency key's stored outcome.
    public static func idempotencyKey(for key: String) -> String {
        "idempotency:\(key)"
    }

    /// What `create` did.
    public enum CreateOutcome: Sendable, Equatable {
        case created
        /// The transfer id is already taken (nothing written).
        case idTaken
        /// The idempotency key was used before; this is what was stored with it (nothing written).
        case idempotencyKeyUsed(IdempotencyRecord)
    }

    /// Stores a new transfer (`json` is its rendered `Transfer.json`) with its first history entry, its outbox
    /// entry and, when given, the outcome to replay for its idempotency key, atomically.
    public func create(
        _ id: TransferID, json: String, retryAt: UnixMilliseconds, idempotency: (key: String, record: IdempotencyRecord)? = nil
    ) throws(RepositoryError) -> CreateOutcome {
        var keys = [Self.key(for: id), Self.outboxKey, Self.historyKey(for: id)]
        var arguments = [json, String(retryAt.value)]
        if let idempotency {
            keys.append(Self.idempotencyKey(for: idempotency.key))
            arguments += [idempotency.record.json, String(Self.idempotencyLifetimeSeconds)]
        }
        let reply = try run(TransferScripts.create, keys: keys, arguments: arguments)
        guard let parts = reply.array, let code = parts.first?.integer else { throw .unexpectedReply("create: \(reply)") }
        switch code {
        case 1:
            return .created
        case 0:
            return .idTaken
        case 2:
            guard parts.count == 2, let stored = parts[1].bytes, let record = IdempotencyRecord(json: stored) else {
                throw .unexpectedReply("create: unreadable idempotency record \(reply)")
            }
            return .idempotencyKeyUsed(record)
        default:
            throw .unexpectedReply("create: \(reply)")
        }
    }

    /// The stored transfer, or nil when there is none.
    public func find(_ id: TransferID) throws(RepositoryError) -> Transfer? {
        let reply = try withConnection { connection throws(RedisError) in
            try connection.command(["GET", Self.key(for: id)])
        }
        switch reply {
        case .null:
            return nil
        case .string(let bytes):
            return try Self.decode(bytes, id: id)
        default:
            throw .unexpectedReply("GET: \(reply)")
        }
    }

    /// Every version of the transfer, oldest first; nil when there is no such transfer. A record written by the
    /// original sketch has no history: its versions are whatever was recorded since, ending with the current one.
    public func versions(of id: TransferID) throws(RepositoryError) -> [Transfer]? {
        let replies = try withConnection { connection throws(RedisError) in
            try connection.pipeline([["GET", Self.key(for: id)], ["LRANGE", Self.historyKey(for: id), "0", "-1"]])
        }
        guard replies.count == 2 else { throw .unexpectedReply("versions: \(replies)") }
        guard case .string(let currentBytes) = replies[0] else {
            if replies[0] == .null { return nil }
            throw .unexpectedReply("GET: \(replies[0])")
        }
        let current = try Self.decode(currentBytes, id: id)
        var history: [Transfer] = []
        for entry in replies[1].array ?? [] {
            guard let bytes = entry.bytes else { throw .unexpectedReply("LRANGE: \(entry)") }
            history.append(try Self.decode(bytes, id: id))
        }
        if history.last?.version != current.version {
            history.append(current)
        }
        return history
    }

    /// Applies the consumer's versioned update for each event (the transfer as published), each in one atomic
    /// script, all in one round trip. Throws only when the round trip failed as a whole. Each result is the
    /// event's outcome or its own failure: `.unavailable` when Redis answered that call with a passing condition
    /// (retry that event), `.unreadableRecord` or `.unexpectedReply` when it can never be applied (e.g. WRONGTYPE).
    public func complete(_ events: [Transfer], at time: UnixMilliseconds) throws(RepositoryError) -> [Result<CompletionOutcome, RepositoryError>] {
        guard !events.isEmpty else { return [] }
        let timestamp = time.rfc3339
        let calls = events.map { event in
            (
                keys: [Self.key(for: event.id), Self.historyKey(for: event.id)],
                arguments: [String(event.version), event.completed(at: timestamp).json, "1"]
            )
        }
        let replies = try withConnection { connection throws(RedisError) in
            try TransferScripts.compareAndSet.runPipelined(on: connection, calls: calls)
        }
        guard replies.count == events.count else { throw .unexpectedReply("complete: \(replies.count) replies for \(events.count) events") }
        var outcomes: [Result<CompletionOutcome, RepositoryError>] = []
        outcomes.reserveCapacity(events.count)
        for (event, reply) in zip(events, replies) {
            if let message = reply.errorMessage {
                metrics.recordDependencyError("redis")
                outcomes.append(.failure(Self.failure(ofErrorReply: message, completing: event.id)))
                continue
            }
            let code: Int64, stored: Int
            do {
                (code, stored) = try Self.compareAndSetResult(reply)
            } catch {
                outcomes.append(.failure(error))
                continue
            }
            // The script applied the version rule; the domain's statement of it names the outcome.
            switch code {
            case 0, 1: outcomes.append(.success(.decide(eventVersion: event.version, storedVersion: stored)))
            case 2: outcomes.append(.success(.decide(eventVersion: event.version, storedVersion: nil)))
            default: outcomes.append(.failure(.unreadableRecord(id: event.id, reason: "the stored value has no numeric version")))
            }
        }
        return outcomes
    }

    /// What `cancel` did.
    public enum CancelOutcome: Sendable, Equatable {
        case cancelled(Transfer)
        case notFound
        case refused(CancellationRefusal)
    }

    /// Cancels the transfer if its current version is one of `expectedVersions` (nil: any) and it is still
    /// `initiated`. The write is a compare-and-set on the version that was checked, so a cancel racing the consumer
    /// ends in exactly one of the two states.
    public func cancel(_ id: TransferID, expectedVersions: [Int]?, at time: UnixMilliseconds) throws(RepositoryError) -> CancelOutcome {
        guard let current = try find(id) else { return .notFound }
        let expected = expectedVersions.map { $0.contains(current.version) ? current.version : $0.first ?? 0 } ?? current.version
        let cancelled: Transfer
        do {
            cancelled = try current.cancelled(expectedVersion: expected, at: time.rfc3339)
        } catch {
            return .refused(error)
        }
        let (code, stored) = try compareAndSet(id, expectedVersion: current.version, newState: cancelled, createIfMissing: false)
        switch code {
        case 1: return .cancelled(cancelled)
        case 0: return .refused(.versionMismatch(currentVersion: stored))  // changed since it was read
        case 3: return .notFound
        default: throw .unreadableRecord(id: id, reason: "the stored value has no numeric version")
        }
    }

    /// Claims up to `limit` outbox entries that are due at `now`, leasing them for `lease` milliseconds.
    public func claimDueOutboxEntries(now: UnixMilliseconds, leaseMilliseconds: Int64, limit: Int) throws(RepositoryError) -> [[UInt8]] {
        let reply = try run(
            TransferScripts.claimOutbox, keys: [Self.outboxKey],
            arguments: [String(now.value), String(leaseMilliseconds), String(limit)]
        )
        guard let entries = reply.array else { throw .unexpectedReply("claim: \(reply)") }
        return entries.compactMap(\.bytes)
    }

    /// Removes outbox entries whose events Kafka has confirmed.
    public func removeOutboxEntries(_ entries: [[UInt8]]) throws(RepositoryError) {
        guard !entries.isEmpty else { return }
        let arguments = ["ZREM", Self.outboxKey] + entries.map { String(decoding: $0, as: UTF8.self) }
        _ = try withConnection { connection throws(RedisError) in try connection.command(arguments) }
    }

    /// How many events wait in the outbox.
    public func outboxDepth() throws(RepositoryError) -> Int {
        let reply = try withConnection { connection throws(RedisError) in try connection.command(["ZCARD", Self.outboxKey]) }
        return Int(reply.integer ?? 0)
    }

    /// Throws unless Redis answers PING.
    public func ping() throws(RepositoryError) {
        _ = try withConnection { connection throws(RedisError) in try connection.command(["PING"]) }
    }

    private func compareAndSet(
        _ id: TransferID, expectedVersion: Int, newState: Transfer, createIfMissing: Bool
    ) throws(RepositoryError) -> (code: Int64, storedVersion: Int) {
        let reply = try run(
            TransferScripts.compareAndSet, keys: [Self.key(for: id), Self.historyKey(for: id)],
            arguments: [String(expectedVersion), newState.json, createIfMissing ? "1" : "0"]
        )
        return try Self.compareAndSetResult(reply)
    }

    /// Error replies that describe a passing state of the server, not the call: worth the same call again (e.g.
    /// LOADING while a restarted Redis reads its append-only file), so Redis counts as unavailable meanwhile.
    private static let transientErrorCodes: Set<String> = [
        "BUSY", "LOADING", "OOM", "MISCONF", "READONLY", "MASTERDOWN", "NOREPLICAS", "TRYAGAIN", "CLUSTERDOWN", "MOVED", "ASK",
    ]

    /// One call's error reply as that call's failure.
    private static func failure(ofErrorReply message: String, completing id: TransferID) -> RepositoryError {
        let error = RedisError(kind: .server, message: message)
        if let code = error.serverErrorCode, transientErrorCodes.contains(code) { return .unavailable(error) }
        return .unexpectedReply("compare-and-set for transfer \(id): \(message)")
    }

    /// {outcome, storedVersion} from the compare-and-set script.
    private static func compareAndSetResult(_ reply: RedisReply) throws(RepositoryError) -> (code: Int64, storedVersion: Int) {
        guard let parts = reply.array, parts.count == 2, let code = parts[0].integer, let stored = parts[1].integer else {
            throw .unexpectedReply("compare-and-set: \(reply)")
        }
        return (code, Int(stored))
    }

    private static func decode(_ bytes: [UInt8], id: TransferID) throws(RepositoryError) -> Transfer {
        do {
            return try Transfer(json: bytes)
        } catch {
            throw .unreadableRecord(id: id, reason: error.reason)
        }
    }

    private func run(_ script: RedisScript, keys: [String], arguments: [String]) throws(RepositoryError) -> RedisReply {
        try withConnection { connection throws(RedisError) in
            try script.run(on: connection, keys: keys, arguments: arguments)
        }
    }

    private func withConnection<Reply>(_ body: (RedisConnection) throws(RedisError) -> Reply) throws(RepositoryError) -> Reply {
        do {
            return try pool.withConnection { connection in try body(connection) }
        } catch let error as RedisError {
            metrics.recordDependencyError("redis")
            let passing = error.serverErrorCode.map(Self.transientErrorCodes.contains) ?? false
            throw error.isConnectionBroken || error.kind == .connection || passing ? .unavailable(error) : .unexpectedReply(error.description)
        } catch {
            throw .unexpectedReply(String(describing: error))
        }
    }
}

/// What is kept for an idempotency key: the request it came with and the response to replay.
public struct IdempotencyRecord: Sendable, Equatable {
    /// The canonical form of the request (`TransferRequest.fingerprint`): a repeat must match it.
    public var requestFingerprint: String
    public var status: Int
    /// The transfer JSON that was answered.
    public var body: String

    public init(requestFingerprint: String, status: Int, body: String) {
        self.requestFingerprint = requestFingerprint
        self.status = status
        self.body = body
    }

    var json: String {
        JSONValue.object(JSONObject([
            "request": .string(requestFingerprint), "status": .number(String(status)), "body": .string(body),
        ])).serialized
    }

    init?(json bytes: [UInt8]) {
        guard case .object(let object)? = try? JSONValue.parse(bytes),
              case .string(let request)? = object["request"], case .number(let statusText)? = object["status"],
              let status = Int(statusText), case .string(let body)? = object["body"]
        else { return nil }
        self.init(requestFingerprint: request, status: status, body: body)
    }
}

/// Why the repository could not do what was asked.
public enum RepositoryError: Error, Sendable, CustomStringConvertible {
    /// Redis could not be reached or did not answer in time; worth retrying.
    case unavailable(RedisError)
    /// A stored value under `transfer:<id>` is not a transfer.
    case unreadableRecord(id: TransferID, reason: String)
    /// Redis answered something this code does not expect.
    case unexpectedReply(String)

    public var description: String {
        switch self {
        case .unavailable(let error): "Redis is unavailable: \(error)"
        case .unreadableRecord(let id, let reason): "the record of transfer \(id) is unreadable: \(reason)"
        case .unexpectedReply(let reply): "unexpected reply from Redis: \(reply)"
        }
    }
}
