import RedisClient
import Transfers

/// Transfers in Redis: the records under `transfer:<id>` and the outbox of events not yet confirmed by Kafka.
public struct TransferRepository: Sendable {
    /// The sorted set of events waiting for Kafka's delivery report, scored by when each is due for a retry.
    public static let outboxKey = "transfers:outbox"

    private let pool: RedisConnectionPool

    /// A repository over `pool`.
    public init(pool: RedisConnectionPool) {
        self.pool = pool
    }

    /// The Redis key of a transfer, as in the original sketch.
    public static func key(for id: TransferID) -> String {
        "transfer:\(id.rawValue)"
    }

    /// Stores a new transfer and its outbox entry atomically; false when the id is already taken (nothing written).
    public func create(_ transfer: Transfer, retryAt: UnixMilliseconds) throws(RepositoryError) -> Bool {
        let reply = try run(
            TransferScripts.create, keys: [Self.key(for: transfer.id), Self.outboxKey],
            arguments: [transfer.json, String(retryAt.value)]
        )
        guard let created = reply.integer else { throw .unexpectedReply("create: \(reply)") }
        return created == 1
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
            do {
                return try Transfer(json: bytes)
            } catch {
                throw .unreadableRecord(id: id, reason: error.reason)
            }
        default:
            throw .unexpectedReply("GET: \(reply)")
        }
    }

    /// Applies the consumer's versioned update for `event` (the transfer as published) in one atomic script.
    public func complete(_ event: Transfer) throws(RepositoryError) -> CompletionOutcome {
        let reply = try run(
            TransferScripts.complete, keys: [Self.key(for: event.id)],
            arguments: [String(event.version), event.completed().json]
        )
        guard let parts = reply.array, parts.count == 2, let code = parts[0].integer, let stored = parts[1].integer else {
            throw .unexpectedReply("complete: \(reply)")
        }
        switch code {
        case 1: return .completed
        case 0: return .conflict(storedVersion: Int(stored))
        case 2: return .recreated
        default: throw .unreadableRecord(id: event.id, reason: "the stored value has no numeric version")
        }
    }

    /// Claims up to `limit` outbox entries that are due at `now`, leasing them for `lease` milliseconds.
    public func claimDueOutboxEntries(now: UnixMilliseconds, leaseMilliseconds: Int64, limit: Int) throws(RepositoryError) -> [[UInt8]] {
        let reply = try run(
            TransferScripts.claimOutbox, keys: [Self.outboxKey],
            arguments: [String(now.value), String(leaseMilliseconds), String(limit)]
        )
        guard let entries = reply.array else { throw .unexpectedReply("claim: \(reply)") }
        return entries.compactMap {
            if case .string(let bytes) = $0 { return bytes }
            return nil
        }
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

    private func run(_ script: RedisScript, keys: [String], arguments: [String]) throws(RepositoryError) -> RedisReply {
        try withConnection { connection throws(RedisError) in
            try script.run(on: connection, keys: keys, arguments: arguments)
        }
    }

    private func withConnection(_ body: (RedisConnection) throws(RedisError) -> RedisReply) throws(RepositoryError) -> RedisReply {
        do {
            return try pool.withConnection { connection in try body(connection) }
        } catch let error as RedisError {
            throw error.isConnectionBroken ? .unavailable(error) : .unexpectedReply(error.description)
        } catch {
            throw .unexpectedReply(String(describing: error))
        }
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
