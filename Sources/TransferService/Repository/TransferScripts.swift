import RedisClient

/// The Lua scripts behind `TransferRepository`. Each runs atomically inside Redis, so no other client ever sees
/// a half-done change.
enum TransferScripts {
    /// Creates a transfer and its outbox entry together, or nothing at all.
    ///
    /// KEYS[1] `transfer:<id>`; KEYS[2] the outbox sorted set.
    /// ARGV[1] the transfer JSON (the record, and also the event to publish); ARGV[2] when the outbox entry falls
    /// due for a retry, in Unix milliseconds.
    /// Returns 1 when created, 0 when the key already existed (nothing written).
    static let create = RedisScript("""
        if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
          redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
          return 1
        end
        return 0
        """)

    /// The consumer's optimistic compare-and-set: the version rule of `CompletionOutcome.decide`, applied atomically.
    ///
    /// KEYS[1] `transfer:<id>`. ARGV[1] the event's version; ARGV[2] the completed record to store.
    /// Returns {outcome, storedVersion}: outcome 1 = completed, 0 = conflict (nothing written), 2 = nothing was
    /// stored so the record was created from the event, -1 = the stored value is not a transfer (nothing written).
    /// Only the stored `version` is decoded; the record is written as the caller rendered it, so amounts never
    /// pass through Lua's floating-point numbers.
    static let complete = RedisScript("""
        local stored = redis.call('GET', KEYS[1])
        if not stored then
          redis.call('SET', KEYS[1], ARGV[2])
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
        return {1, record.version}
        """)

    /// Claims outbox entries that are due: returns them and moves each one's due time a lease into the future, so
    /// that other publishers (other instances) leave them alone while this one sends them.
    ///
    /// KEYS[1] the outbox sorted set. ARGV[1] now, ARGV[2] the lease, both in milliseconds; ARGV[3] the most to claim.
    /// Returns the claimed entries (event JSON texts).
    static let claimOutbox = RedisScript("""
        local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
        local leaseEnd = tonumber(ARGV[1]) + tonumber(ARGV[2])
        for _, entry in ipairs(due) do
          redis.call('ZADD', KEYS[1], leaseEnd, entry)
        end
        return due
        """)
}
