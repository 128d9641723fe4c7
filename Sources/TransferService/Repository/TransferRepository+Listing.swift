import RedisClient
import Transfers

/// One page of an account's transfers.
public struct TransferPage: Sendable {
    /// The transfers, newest first, each in its current state.
    public var transfers: [Transfer]
    /// Where the next page starts (the last transfer this page examined, returned or filtered out); nil at the end.
    public var nextPosition: ListingPosition?
}

extension TransferRepository {
    /// How long an index entry whose record does not exist is only skipped, not removed: its create may still be in
    /// flight (in a cluster the entry and the record are written on different nodes, in either order).
    static let danglingEntryGraceMilliseconds: Int64 = 120_000

    /// The most candidates a page with a status filter examines per item asked for: the bound on its over-read.
    static let statusFilterReadFactor = 4

    /// The commands that put `transfer` into its parties' account indexes (see `AccountIndex`).
    func indexAdditions(for transfer: Transfer) -> [RedisCommand] {
        AccountIndex.additions(for: transfer, retentionSeconds: settings.retentionSeconds)
    }

    /// Adds the transfers to their parties' account indexes again, without waiting: repairs entries a create could
    /// not write (a lost reply, an account's node unreachable). Idempotent; a failure is only counted, since the
    /// next repair (the consumer's, the reconciler's) tries again.
    public func reindex(_ transfers: [Transfer]) {
        guard !transfers.isEmpty else { return }
        submit(transfers.flatMap(indexAdditions(for:)), deadline: .now + settings.timeout, replicas: 0) { _ in }
    }

    /// One page of the transfers of `query.account`, newest first, starting after `query.after`.
    ///
    /// Two round trips whatever the number of transfers stored: one `ZRANGE` per role read (up to the page's
    /// budget of candidates plus one, to know whether more follow), then one `GET` per candidate. Without a
    /// status filter the budget is the limit; with one it is `statusFilterReadFactor` times the limit (at most
    /// 400), and the page may hold fewer than `limit` transfers. Entries that disagree with their record are
    /// skipped and removed in the background.
    public func listTransfers(_ query: TransferListingQuery, completion: @escaping @Sendable (Result<TransferPage, RepositoryError>) -> Void) {
        let deadline = ContinuousClock.now + settings.timeout
        let budget = query.status == nil ? query.limit : min(query.limit * Self.statusFilterReadFactor, 400)
        let roles = query.role.map { [$0] } ?? PartyRole.allCases
        let reads = roles.map { role in
            let key = AccountIndex.key(query.account, role)
            return RedisCommand.command(
                ["ZRANGE", key, AccountIndex.bound(after: query.after), "-", "BYLEX", "REV", "LIMIT", "0", String(budget + 1)], key: key
            )
        }
        submit(reads, deadline: deadline, replicas: 0) { [self] response in
            let entries: [IndexEntry]
            switch Result(catching: { () throws(RepositoryError) in try Self.mergedEntries(response, roles: roles) }) {
            case .success(let merged): entries = merged
            case .failure(let error): return completion(.failure(error))
            }
            let candidates = Array(entries.prefix(budget))
            let hasMore = entries.count > budget
            guard !candidates.isEmpty else { return completion(.success(TransferPage(transfers: [], nextPosition: nil))) }
            let gets = candidates.map { entry in
                let key = TransferKeys(entry.position.id).record
                return RedisCommand.command(["GET", key], key: key)
            }
            submit(gets, deadline: deadline, replicas: 0) { [self] response in
                completion(Result { () throws(RepositoryError) in
                    try page(query, candidates: candidates, hasMore: hasMore, records: response)
                })
            }
        }
    }

    /// A transfer's place in the indexes read for a page, and which of them hold it.
    struct IndexEntry {
        var position: ListingPosition
        var roles: [PartyRole]
    }

    /// The entries of the role indexes read, merged into listing order (a transfer in both appears once).
    private static func mergedEntries(_ response: RedisResponse, roles: [PartyRole]) throws(RepositoryError) -> [IndexEntry] {
        var entries: [ListingPosition: [PartyRole]] = [:]
        for (role, result) in zip(roles, response.replies) {
            let reply = try reply(result, of: "ZRANGE")
            guard let members = reply.array else { throw .unexpectedReply("ZRANGE: \(reply)") }
            for member in members {
                // Members are only written by this service; anything else is ignored.
                guard let bytes = member.bytes, let position = AccountIndex.position(member: bytes) else { continue }
                entries[position, default: []].append(role)
            }
        }
        return entries.map { IndexEntry(position: $0.key, roles: $0.value) }.sorted { $0.position < $1.position }
    }

    /// Reads the candidates' records in order until the page is full.
    private func page(
        _ query: TransferListingQuery, candidates: [IndexEntry], hasMore: Bool, records response: RedisResponse
    ) throws(RepositoryError) -> TransferPage {
        let now = UnixMilliseconds.now().value
        var transfers: [Transfer] = []
        var examined: ListingPosition?
        var removals: [RedisCommand] = []
        for (candidate, result) in zip(candidates, response.replies) {
            if transfers.count == query.limit { break }
            examined = candidate.position
            let stored: Transfer
            switch try Self.reply(result, of: "GET") {
            case .null:
                // Expired or deleted, or a create still in flight (then the record appears soon).
                if candidate.position.createdAtMilliseconds < now - Self.danglingEntryGraceMilliseconds {
                    removals += AccountIndex.removals(candidate.position, account: query.account, roles: candidate.roles)
                }
                continue
            case .string(let bytes):
                guard let transfer = try? Transfer(json: bytes) else { continue }  // unreadable: skipped, left for repair
                stored = transfer
            case let other:
                throw .unexpectedReply("GET: \(other)")
            }
            // Left by a create that did not happen as sent (a replayed key, a lost reply): never valid.
            guard ListingPosition(of: stored) == candidate.position else {
                removals += AccountIndex.removals(candidate.position, account: query.account, roles: candidate.roles)
                continue
            }
            let foreign = candidate.roles.filter { role in (role == .sender ? stored.senderID : stored.receiverID) != query.account }
            if !foreign.isEmpty {
                removals += AccountIndex.removals(candidate.position, account: query.account, roles: foreign)
                if foreign.count == candidate.roles.count { continue }
            }
            if let status = query.status, stored.status != status { continue }
            transfers.append(stored)
        }
        if !removals.isEmpty {
            submit(removals, deadline: .now + settings.timeout, replicas: 0) { _ in }
        }
        let examinedAll = examined == candidates.last?.position
        return TransferPage(transfers: transfers, nextPosition: examinedAll && !hasMore ? nil : examined)
    }
}

extension Result where Success == CompletionOutcome, Failure == RepositoryError {
    /// True when the event's transfer is now stored (completed, or recreated): its index entries can be repaired.
    var storedTheEvent: Bool {
        switch self {
        case .success(.completed), .success(.recreated): true
        default: false
        }
    }
}
