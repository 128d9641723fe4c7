import RedisClient
import Transfers

/// The Redis keys of one transfer. The record keeps the original sketch's name, `transfer:<id>`, so the sketch's
/// own readers and writers keep working; every other key a script touches together with it lands in the record's
/// hash slot (a Redis Cluster runs a script only on keys of one slot): the transfer's own keys carry the hash tag
/// `{transfer:<id>}`, and the outbox and pending index are one key per slot, named with that slot's tag.
/// One layout for a single Redis and a cluster, so both run the same code.
struct TransferKeys: Sendable {
    /// `transfer:<id>`: the current state, as JSON.
    let record: String
    /// `{transfer:<id>}:history`: every version, oldest first.
    let history: String
    /// `{transfer:<id>}:idempotency`: the request a keyed create came with (its id is derived from the key).
    let idempotency: String
    /// The outbox of the record's slot: events not yet confirmed by Kafka.
    let outbox: String
    /// The pending index of the record's slot: transfers not yet finished.
    let pending: String

    init(_ id: TransferID) {
        record = "transfer:\(id.rawValue)"
        history = "{\(record)}:history"
        idempotency = "{\(record)}:idempotency"
        let slot = RedisSlot.of(key: record)
        outbox = SlotKeys.outbox(slot)
        pending = SlotKeys.pending(slot)
    }
}

/// The keys there is one of per hash slot, each named with the slot's precomputed hash tag so that it lives in
/// that slot. A sweep finds every due entry by walking the slots of each node, whatever the number of transfers.
enum SlotKeys {
    /// The sorted set of events waiting for Kafka's delivery report, scored by when each falls due for a resend.
    static func outbox(_ slot: Int) -> String {
        "transfers:outbox:{\(RedisSlot.hashTag(of: slot))}"
    }

    /// The sorted set of transfers not yet completed or cancelled, scored by when each was created or last
    /// republished by the reconciler.
    static func pending(_ slot: Int) -> String {
        "transfers:pending:{\(RedisSlot.hashTag(of: slot))}"
    }
}

/// The key names of the release before cluster support, read only by `transfer-service migrate`.
enum LegacyKeys {
    /// The one global outbox sorted set.
    static let outbox = "transfers:outbox"
    /// `transfer:<id>:history`, outside the record's slot.
    static func history(_ id: TransferID) -> String { "transfer:\(id.rawValue):history" }
    /// A SCAN pattern that matches every legacy history list (and no key of today's layout).
    static let historyPattern = "transfer:*:history"
    /// `idempotency:<key>`: global, not scoped per token.
    static let idempotencyPrefix = "idempotency:"
}
