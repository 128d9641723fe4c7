import RedisClient

/// The Lua scripts behind `TransferRepository`. Each runs atomically inside Redis, so no other client ever sees
/// a half-done change.
enum TransferScripts {
    /// Creates a transfer, its first history entry, its outbox entry and (optionally) its idempotency record
    /// together, or nothing at all.
    ///
    /// KEYS[1] `transfer:<id>`; KEYS[2] the outbox sorted set; KEYS[3] `transfer:<id>:history`;
    /// KEYS[4] (optional) `idempotency:<key>`.
    /// ARGV[1] the transfer JSON (the record, the first history entry, and the event to publish); ARGV[2] when the
    /// outbox entry falls due for a resend, in Unix milliseconds; ARGV[3] the idempotency record; ARGV[4] its
    /// lifetime in seconds.
    /// Returns {1} when created, {0} when the transfer key already existed, {2, record} when the idempotency key
    /// was already used (nothing written in either case).
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

    /// The optimistic compare-and-set behind every change after creation (the consumer's completion, a client's
    /// cancel): store the new state only if the stored version is the expected one, and append it to the history.
    ///
    /// KEYS[1] `transfer:<id>`; KEYS[2] `transfer:<id>:history`.
    /// ARGV[1] the expected (current) version; ARGV[2] the new record; ARGV[3] "1" to create the record from
    /// ARGV[2] when nothing is stored (the consumer's rule for unknown transfers), "0" to leave it missing.
    /// Returns {outcome, storedVersion}: 1 = changed; 0 = version conflict (nothing written); 2 = nothing was
    /// stored and the record was created; 3 = nothing is stored (nothing written); -1 = the stored value is not a
    /// transfer (nothing written).
    /// Only the stored `version` is decoded; the record is written as the caller rendered it, so amounts never
    /// pass through Lua's floating-point numbers.
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
