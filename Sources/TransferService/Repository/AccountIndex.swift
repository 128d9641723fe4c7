import RedisClient
import Transfers

/// The index behind `GET /transfers?account=...`: per account, one sorted set of the transfers it sent and one of
/// those it received, `{account:<party>}:sent` and `{account:<party>}:received`. Both carry the account as their
/// hash tag, so they live in the account's slot (not the transfers'): adding a transfer to its parties' indexes
/// is a separate command from the create script, sent in the same request.
///
/// Every member has score 0 and reads `<created_at in ms, 16 digits>:<transfer id>`, so the sets' lexical order is
/// the listing order (reversed) and a page is one `ZRANGE ... BYLEX REV LIMIT` from an exclusive bound: stable
/// under concurrent inserts, whatever the ties in `created_at`. A member depends only on the transfer's own
/// `created_at` and id, so adding it again (a retry, the consumer, the reconciler) changes nothing.
///
/// An entry is trusted only as far as the record agrees with it: a listing skips entries whose record is gone,
/// whose `created_at` differs, or that name another party, and removes them (see `TransferRepository.listTransfers`).
enum AccountIndex {
    /// The index of the transfers in which `account` plays `role`.
    static func key(_ account: String, _ role: PartyRole) -> String {
        switch role {
        case .sender: "{account:\(account)}:sent"
        case .receiver: "{account:\(account)}:received"
        }
    }

    /// Digits of the milliseconds in a member: enough for any date the service will see.
    static let timestampDigits = 16

    /// The member that stands for `position`.
    static func member(_ position: ListingPosition) -> String {
        padded(position.createdAtMilliseconds) + ":" + position.id.rawValue
    }

    /// Milliseconds as `timestampDigits` digits, so that lexical order is numeric order.
    private static func padded(_ milliseconds: Int64) -> String {
        let digits = String(milliseconds)
        return String(repeating: "0", count: max(0, timestampDigits - digits.utf8.count)) + digits
    }

    /// The position a member stands for; nil when it is not one of ours.
    static func position(member bytes: [UInt8]) -> ListingPosition? {
        guard bytes.count == timestampDigits + 1 + 36, bytes[timestampDigits] == UInt8(ascii: ":") else { return nil }
        var milliseconds: Int64 = 0
        for byte in bytes[..<timestampDigits] {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            milliseconds = milliseconds * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        guard let id = TransferID(String(decoding: bytes[(timestampDigits + 1)...], as: UTF8.self)) else { return nil }
        return ListingPosition(createdAtMilliseconds: milliseconds, id: id)
    }

    /// The lexical bound that excludes `position` and everything listed before it (`ZRANGE`'s `max` with `REV`).
    static func bound(after position: ListingPosition?) -> String {
        position.map { "(" + member($0) } ?? "+"
    }

    /// The commands that put `transfer` into both of its parties' indexes (idempotent). With a retention, each
    /// index also drops its entries created more than `retentionSeconds` plus a day before this transfer: their
    /// records have expired (a transfer is kept `retention` after it finishes, normally within seconds of its
    /// creation), so the indexes do not grow forever with entries nobody can list.
    static func additions(for transfer: Transfer, retentionSeconds: Int?) -> [RedisCommand] {
        let position = ListingPosition(of: transfer)
        var commands: [RedisCommand] = []
        for (key, member) in entries(for: transfer) {
            commands.append(.command(["ZADD", key, "0", member], key: key))
            if let retentionSeconds, retentionSeconds > 0 {
                let cutoff = position.createdAtMilliseconds - (Int64(retentionSeconds) + 86_400) * 1000
                if cutoff > 0 {
                    // Members below "<cutoff>:" are exactly those created before the cutoff.
                    commands.append(.command(["ZREMRANGEBYLEX", key, "-", "(" + padded(cutoff) + ":"], key: key))
                }
            }
        }
        return commands
    }

    /// The entries that stand for `transfer`: one in its sender's index, one in its receiver's.
    static func entries(for transfer: Transfer) -> [(key: String, member: String)] {
        let member = member(ListingPosition(of: transfer))
        return [(key(transfer.senderID, .sender), member), (key(transfer.receiverID, .receiver), member)]
    }

    /// The commands that take `position` out of the indexes of `account` for `roles`.
    static func removals(_ position: ListingPosition, account: String, roles: [PartyRole]) -> [RedisCommand] {
        roles.map { role in
            let key = key(account, role)
            return .command(["ZREM", key, member(position)], key: key)
        }
    }
}
