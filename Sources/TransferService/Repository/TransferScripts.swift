import RedisClient

/// The Lua scripts behind `TransferRepository`. Each runs atomically inside Redis, so no other client ever sees a
/// half-done change, and each touches only keys of one transfer's hash slot (see `TransferKeys`), so it runs
/// unchanged on a single Redis and on a Redis Cluster. Times (outbox leases, pending ages) come from Redis's own
/// clock (`TIME`), so instances with skewed clocks agree on what is due.
enum TransferScripts {
    /// Creates a transfer, its first history entry, its outbox entry, its pending-index entry and (for a keyed
    /// create) its idempotency record together, or nothing at all.
    ///
    /// KEYS[1] `transfer:<id>`; KEYS[2] its history; KEYS[3] its slot's outbox; KEYS[4] its slot's pending index;
    /// KEYS[5] its idempotency record.
    /// ARGV[1] the transfer JSON (the record, the first history entry, and the event to publish); ARGV[2] the
    /// outbox lease in milliseconds (when the entry falls due for a resend); ARGV[3] the transfer id (the pending
    /// index's member); ARGV[4] the idempotency record, or "" for a create without a key.
    /// Returns {1} when created; {0} when `transfer:<id>` already exists; {2, idempotency record, first version}
    /// when the key was used before (the first version is nil when its transfer is gone). Nothing is written
    /// unless the answer is {1}.
    static let create = RedisScript("""
        local keyed = ARGV[4] ~= ''
        if keyed then
          local prior = redis.call('GET', KEYS[5])
          if prior then
            return {2, prior, redis.call('LINDEX', KEYS[2], 0)}
          end
        end
        if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then
          return {0}
        end
        local clock = redis.call('TIME')
        local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
        redis.call('RPUSH', KEYS[2], ARGV[1])
        redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ARGV[1])
        redis.call('ZADD', KEYS[4], now, ARGV[3])
        if keyed then
          redis.call('SET', KEYS[5], ARGV[4])
        end
        return {1}
        """)

    /// The optimistic compare-and-set behind every change after creation (the consumer's completion, a client's
    /// cancel): store the new state only if the stored version is the expected one, append it to the history,
    /// take the transfer out of the pending index, and start the retention clock of a finished transfer.
    ///
    /// KEYS[1] `transfer:<id>`; KEYS[2] its history; KEYS[3] its slot's pending index; KEYS[4] its idempotency
    /// record.
    /// ARGV[1] the expected (current) version; ARGV[2] the new record; ARGV[3] "recreate" to create the record from
    /// ARGV[2] when nothing is stored and the transfer never existed (no history: the sketch's rule for unknown
    /// transfers), anything else to leave a missing record missing; ARGV[4] the transfer id; ARGV[5] how long to
    /// keep the transfer now that it is finished, in seconds ("0": forever).
    /// Returns {outcome, storedVersion}: 1 = changed; 0 = version conflict; 2 = nothing was stored and the record
    /// was created; 3 = nothing is stored; 4 = nothing is stored but the transfer had a history (deleted or
    /// expired: never brought back); -1 = the stored value is not a transfer. Nothing is written unless 1 or 2.
    /// Only the stored `version` is decoded; the record is written as the caller rendered it, so amounts never
    /// pass through Lua's floating-point numbers.
    static let compareAndSet = RedisScript("""
        local function finish()
          redis.call('SET', KEYS[1], ARGV[2])
          redis.call('RPUSH', KEYS[2], ARGV[2])
          redis.call('ZREM', KEYS[3], ARGV[4])
          local keep = tonumber(ARGV[5])
          if keep > 0 then
            redis.call('EXPIRE', KEYS[1], keep)
            redis.call('EXPIRE', KEYS[2], keep)
            redis.call('EXPIRE', KEYS[4], keep)
          end
        end
        local stored = redis.call('GET', KEYS[1])
        if not stored then
          if ARGV[3] ~= 'recreate' then
            return {3, 0}
          end
          if redis.call('EXISTS', KEYS[2]) == 1 then
            return {4, 0}
          end
          finish()
          return {2, 0}
        end
        local ok, record = pcall(cjson.decode, stored)
        if not ok or type(record) ~= 'table' or type(record.version) ~= 'number' then
          return {-1, 0}
        end
        if record.version ~= tonumber(ARGV[1]) then
          return {0, record.version}
        end
        finish()
        return {1, record.version}
        """)

    /// The sweep over a range of slots of one Redis node: claims outbox entries that are due (leasing them, so
    /// other instances leave them alone while this one resends them) and pending transfers that have waited too
    /// long (restarting their wait, so the next claim comes one wait later).
    ///
    /// The keys belong to different slots of one node. Redis Cluster lets a script touch several slots of its node
    /// only when it says so (`allow-cross-slot-keys`, Redis 7), and only if the keys it declares share one slot and
    /// each command stays within one slot: so the keys come as arguments, and each slot's pair is checked with one
    /// `EXISTS` (both keys are in that slot) before anything else is asked of it. Most slots hold nothing at any
    /// moment. On a single Redis the flag changes nothing.
    /// ARGV[1] the outbox lease in milliseconds; ARGV[2] how long a transfer may stay pending before it is claimed,
    /// in milliseconds; ARGV[3] the most entries of each kind to claim; then, per slot, its outbox key and its
    /// pending-index key.
    /// Returns {outbox entries claimed (event JSON texts), pending transfer ids claimed, the claim time in Unix
    /// milliseconds by Redis's clock}.
    static let sweep = RedisScript("""
        #!lua flags=allow-cross-slot-keys
        local clock = redis.call('TIME')
        local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
        local lease = tonumber(ARGV[1])
        local pendingCutoff = now - tonumber(ARGV[2])
        local limit = tonumber(ARGV[3])
        local entries, ids = {}, {}
        for i = 4, #ARGV, 2 do
          local outbox, pending = ARGV[i], ARGV[i + 1]
          if redis.call('EXISTS', outbox, pending) > 0 then
            if #entries < limit then
              for _, entry in ipairs(redis.call('ZRANGEBYSCORE', outbox, '-inf', now, 'LIMIT', 0, limit - #entries)) do
                redis.call('ZADD', outbox, now + lease, entry)
                entries[#entries + 1] = entry
              end
            end
            if #ids < limit then
              for _, id in ipairs(redis.call('ZRANGEBYSCORE', pending, '-inf', pendingCutoff, 'LIMIT', 0, limit - #ids)) do
                redis.call('ZADD', pending, now, id)
                ids[#ids + 1] = id
              end
            end
          end
        end
        return {entries, ids, now}
        """)
}
