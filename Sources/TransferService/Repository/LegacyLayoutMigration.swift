import ExactJSON
import RedisClient
import Transfers

/// Moves data written by the release before cluster support into today's key layout (`TransferKeys`), so that it
/// is still read, completed, cancelled and replayed: `transfer-service migrate`.
///
/// That release ran on a single Redis only, so this runs on one too. It walks the keyspace once with SCAN, which
/// the service itself never does. Every step is idempotent: running it again, or after it was interrupted, moves
/// only what is left. Run it after stopping the old release and before starting the new one.
public struct LegacyLayoutMigration {
    /// What a run moved.
    public struct Report: Sendable, Equatable, CustomStringConvertible {
        public var histories = 0
        public var outboxEntries = 0
        public var pendingTransfers = 0
        public var listedTransfers = 0
        public var idempotencyKeys = 0

        public var description: String {
            "moved \(histories) histories, \(outboxEntries) outbox entries and \(idempotencyKeys) idempotency keys; "
                + "indexed \(pendingTransfers) pending transfers; listed \(listedTransfers) transfers in their accounts"
        }
    }

    private let connection: RedisConnection
    private let clientScopes: [ClientScope]

    /// A migration over `connection`; legacy idempotency keys (global then) are given to every API token's scope,
    /// or to the anonymous scope when the API has no tokens.
    public init(connection: RedisConnection, apiTokens: [String]) {
        self.connection = connection
        clientScopes = apiTokens.isEmpty ? [.anonymous] : apiTokens.map(ClientScope.init(token:))
    }

    /// Migrates the Redis that `configuration` names (a single Redis: the old release never ran on a cluster).
    public static func run(configuration: ServiceConfiguration) throws(RedisError) -> Report {
        guard !configuration.isRedisCluster else {
            throw RedisError(
                kind: .protocol, message: "migrate works on the single Redis the previous release used; unset REDIS_CLUSTER_NODES",
                isConnectionBroken: false
            )
        }
        var redis = configuration.redis
        redis.commandTimeout = .seconds(60)
        let migration = LegacyLayoutMigration(connection: try RedisConnection(configuration: redis), apiTokens: configuration.apiTokens)
        return try migration.run()
    }

    /// Runs every step.
    public func run() throws(RedisError) -> Report {
        var report = Report()
        try forEachKey(matching: "transfer:*") { (key) throws(RedisError) in
            guard let id = Self.transferID(inRecordKey: key) else { return }
            if key.hasSuffix(":history") {
                try moveHistory(of: id)
                report.histories += 1
            } else if let transfer = try record(id) {
                if try indexIfPending(transfer) { report.pendingTransfers += 1 }
                try list(transfer)
                report.listedTransfers += 1
            }
        }
        report.outboxEntries = try moveOutbox()
        try forEachKey(matching: LegacyKeys.idempotencyPrefix + "*") { (key) throws(RedisError) in
            if try moveIdempotencyRecord(key) { report.idempotencyKeys += 1 }
        }
        return report
    }

    /// `transfer:<id>:history` → `{transfer:<id>}:history`, ahead of anything already there.
    private func moveHistory(of id: TransferID) throws(RedisError) {
        _ = try Self.moveList.run(on: connection, keys: [LegacyKeys.history(id), TransferKeys(id).history], arguments: [])
    }

    /// The stored transfer; nil when the value is not one.
    private func record(_ id: TransferID) throws(RedisError) -> Transfer? {
        try connection.command(["GET", TransferKeys(id).record]).bytes.flatMap { try? Transfer(json: $0) }
    }

    /// Puts an `initiated` transfer in its slot's pending index (the old release had none), so the reconciler
    /// looks after it. True when it was added now.
    private func indexIfPending(_ transfer: Transfer) throws(RedisError) -> Bool {
        guard transfer.status == .initiated else { return false }
        let since = transfer.createdAt.flatMap(UnixMilliseconds.init(rfc3339:)) ?? .now()
        return try connection.command(["ZADD", TransferKeys(transfer.id).pending, "NX", String(since.value), transfer.id.rawValue]).integer == 1
    }

    /// Puts the transfer into its parties' account indexes (the old release had none), so account listings show
    /// it. Idempotent, like every addition to them.
    private func list(_ transfer: Transfer) throws(RedisError) {
        for (key, member) in AccountIndex.entries(for: transfer) {
            _ = try connection.command(["ZADD", key, "0", member])
        }
    }

    /// The one global outbox → the outbox of each entry's slot, keeping each entry's due time.
    private func moveOutbox() throws(RedisError) -> Int {
        var moved = 0
        while true {
            let batch = try connection.command(["ZRANGE", LegacyKeys.outbox, "0", "499", "WITHSCORES"]).array ?? []
            guard !batch.isEmpty else { return moved }
            for pair in stride(from: 0, to: batch.count - 1, by: 2) {
                guard let entry = batch[pair].bytes, let score = batch[pair + 1].string else { continue }
                let member = String(decoding: entry, as: UTF8.self)
                if let id = (try? Transfer(json: entry))?.id {
                    _ = try connection.command(["ZADD", TransferKeys(id).outbox, score, member])
                    moved += 1
                }
                // An entry that is not an event could never be published; it is dropped with the old outbox.
                _ = try connection.command(["ZREM", LegacyKeys.outbox, member])
            }
        }
    }

    /// `idempotency:<key>` (global) → `{transfer:<derived id>}:idempotency` for each client scope, naming the
    /// transfer it created and keeping its remaining lifetime. True when the legacy record was readable.
    private func moveIdempotencyRecord(_ legacyKey: String) throws(RedisError) -> Bool {
        let idempotencyKey = String(legacyKey.dropFirst(LegacyKeys.idempotencyPrefix.count))
        guard let stored = try connection.command(["GET", legacyKey]).bytes, let legacy = LegacyIdempotencyRecord(json: stored) else {
            return false
        }
        let remaining = try connection.command(["PTTL", legacyKey]).integer ?? -1
        let record = IdempotencyRecord(requestFingerprint: legacy.requestFingerprint, transferID: legacy.transferID)
        for client in clientScopes {
            let target = TransferKeys(TransferID.derived(fromIdempotencyKey: idempotencyKey, scope: client.scope)).idempotency
            var set = ["SET", target, record.json, "NX"]
            if remaining > 0 { set += ["PX", String(remaining)] }
            _ = try connection.command(set)
        }
        _ = try connection.command(["DEL", legacyKey])
        return true
    }

    /// Calls `body` with every key matching `pattern`, by SCAN.
    private func forEachKey(matching pattern: String, _ body: (String) throws(RedisError) -> Void) throws(RedisError) {
        var cursor = "0"
        repeat {
            let reply = try connection.command(["SCAN", cursor, "MATCH", pattern, "COUNT", "1000"])
            guard let parts = reply.array, parts.count == 2, let next = parts[0].string, let keys = parts[1].array else {
                throw RedisError(kind: .protocol, message: "unexpected SCAN reply \(reply)", isConnectionBroken: false)
            }
            for key in keys.compactMap(\.string) {
                try body(key)
            }
            cursor = next
        } while cursor != "0"
    }

    /// The id in `transfer:<id>` or `transfer:<id>:history`; nil for other keys (such as today's tagged keys).
    static func transferID(inRecordKey key: String) -> TransferID? {
        let rest = key.dropFirst("transfer:".count)
        return TransferID(String(rest.prefix(36))).flatMap { rest.count == 36 || rest.dropFirst(36) == ":history" ? $0 : nil }
    }

    /// Moves a list to the front of another, whose entries are newer. KEYS[1] the old list; KEYS[2] the new one.
    private static let moveList = RedisScript("""
        local old = redis.call('LRANGE', KEYS[1], 0, -1)
        for i = #old, 1, -1 do
          redis.call('LPUSH', KEYS[2], old[i])
        end
        redis.call('DEL', KEYS[1])
        return #old
        """)
}

/// An idempotency record of the release before cluster support: the request and the full response it replayed.
private struct LegacyIdempotencyRecord {
    var requestFingerprint: String
    var transferID: TransferID

    init?(json bytes: [UInt8]) {
        guard case .object(let object)? = try? JSONValue.parse(bytes), case .string(let request)? = object["request"],
              case .string(let body)? = object["body"], let transfer = try? Transfer(json: Array(body.utf8))
        else { return nil }
        requestFingerprint = request
        transferID = transfer.id
    }
}
