import Foundation
import RedisClient
import Transfers

/// Writes transfers exactly as the release before cluster support did: its Lua scripts, verbatim, and its key
/// names (`transfer:<id>:history`, the global `transfers:outbox`, global `idempotency:<key>`). Upgrade tests
/// write with it and then check that today's release (after `transfer-service migrate`) carries on from there.
public struct LegacyLayoutWriter: Sendable {
    private let redis: RedisConnectionPool

    public init(redis: RedisConnectionPool) {
        self.redis = redis
    }

    /// Creates `transfer` as that release's create did: record, outbox entry due at `outboxDueAt`, first history
    /// entry and, with `idempotencyKey`, the response to replay.
    public func create(_ transfer: Transfer, outboxDueAt: Int64?, idempotencyKey: String? = nil, requestFingerprint: String = "") throws {
        let json = transfer.json
        var keys = ["transfer:\(transfer.id)", "transfers:outbox", "transfer:\(transfer.id):history"]
        var arguments = [json, String(outboxDueAt ?? 0)]
        if let idempotencyKey {
            keys.append("idempotency:\(idempotencyKey)")
            let record = #"{"request":\#(JSONString.quoted(requestFingerprint)),"status":202,"body":\#(JSONString.quoted(json))}"#
            arguments += [record, String(24 * 60 * 60)]
        }
        let reply = try redis.withConnection { try Self.create.run(on: $0, keys: keys, arguments: arguments) }
        guard reply.array?.first?.integer == 1 else { throw HarnessError("legacy create answered \(reply)") }
        if outboxDueAt == nil {
            // Delivered and confirmed by Kafka: the old publisher removed the entry.
            _ = try redis.withConnection { try $0.command(["ZREM", "transfers:outbox", json]) }
        }
    }

    /// Completes `transfer` (at its current version) as that release's consumer did.
    public func complete(_ transfer: Transfer, at time: String) throws {
        let reply = try redis.withConnection {
            try Self.compareAndSet.run(
                on: $0, keys: ["transfer:\(transfer.id)", "transfer:\(transfer.id):history"],
                arguments: [String(transfer.version), transfer.completed(at: time).json, "1"]
            )
        }
        guard reply.array?.first?.integer == 1 else { throw HarnessError("legacy complete answered \(reply)") }
    }

    /// The release's create script (commit d251e84), verbatim.
    static let create = RedisScript("""
        if KEYS[4] then
          local prior = redis.call('GET', KEYS[4])
          if prior then
            return {2, prior}
          end
        end
        if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then
          return {0}
        end
        redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
        redis.call('RPUSH', KEYS[3], ARGV[1])
        if KEYS[4] then
          redis.call('SET', KEYS[4], ARGV[3], 'EX', ARGV[4])
        end
        return {1}
        """)

    /// The release's compare-and-set script (commit d251e84), verbatim.
    static let compareAndSet = RedisScript("""
        local stored = redis.call('GET', KEYS[1])
        if not stored then
          if ARGV[3] ~= '1' then
            return {3, 0}
          end
          redis.call('SET', KEYS[1], ARGV[2])
          redis.call('RPUSH', KEYS[2], ARGV[2])
          return {2, 0}
        end
        local ok, record = pcall(cjson.decode, stored)
        if not ok or type(record) ~= 'table' or type(record.version) ~= 'number' then
          return {-1, 0}
        end
        if record.version ~= tonumber(ARGV[1]) then
          return {0, record.version}
        end
        redis.call('SET', KEYS[1], ARGV[2])
        redis.call('RPUSH', KEYS[2], ARGV[2])
        return {1, record.version}
        """)
}

/// JSON string literals for hand-built documents.
enum JSONString {
    static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}
