import RedisClient
import Transfers

extension TransferRepository {
    /// One transfer of a batch create.
    public struct BatchItem: Sendable {
        public var transfer: Transfer
        /// `transfer.json`, rendered once.
        public var json: String
        /// The idempotency record of a keyed batch's item.
        public var idempotency: IdempotencyRecord?
        /// False for an item whose idempotency record is known to exist: its create replays and adds no entries.
        public var addsIndexEntries: Bool

        public init(transfer: Transfer, json: String, idempotency: IdempotencyRecord?, addsIndexEntries: Bool = true) {
            self.transfer = transfer
            self.json = json
            self.idempotency = idempotency
            self.addsIndexEntries = addsIndexEntries
        }
    }

    /// Creates each item as `create` does (record, history, outbox and pending entries, idempotency record: all or
    /// nothing per item, not per batch), with the items' account-index entries, in one request: the client
    /// pipelines it, one round trip per node. One outcome per item, in order; an item whose reply was lost is read
    /// back (together with the others in one more request) and reported `outcomeUnknown` if that cannot tell.
    public func createBatch(_ items: [BatchItem], completion: @escaping @Sendable ([Result<CreateOutcome, RepositoryError>]) -> Void) {
        guard !items.isEmpty else { return completion([]) }
        var commands: [RedisCommand] = []
        var scriptPositions: [Int] = []
        for item in items {
            scriptPositions.append(commands.count)
            commands.append(createCommand(item.transfer, json: item.json, idempotency: item.idempotency))
            if item.addsIndexEntries { commands += indexAdditions(for: item.transfer) }
        }
        let deadline = ContinuousClock.now + settings.timeout
        submit(commands, deadline: deadline, replicas: settings.replicas) { [self, scriptPositions] response in
            var outcomes: [Result<CreateOutcome, RepositoryError>?] = []
            var lost: [(index: Int, error: RedisError)] = []
            for (index, (item, position)) in zip(items, scriptPositions).enumerated() {
                // Judged like a single create's response, with the replicas of the node its script ran on.
                let itemResponse = RedisResponse(
                    replies: [response.replies[position]], acknowledgedReplicas: response.acknowledgedReplicas(forCommandAt: position)
                )
                switch Self.createOutcome(itemResponse, id: item.transfer.id, required: settings.replicas) {
                case .decided(let outcome):
                    outcomes.append(outcome)
                case .lostReply(let error):
                    outcomes.append(nil)
                    lost.append((index, error))
                }
            }
            guard !lost.isEmpty else { return completion(outcomes.map { $0! }) }
            confirmCreates(lost.map { (items[$0.index], $0.error) }, deadline: deadline) { [outcomes, lost] confirmed in
                var outcomes = outcomes
                for ((index, _), outcome) in zip(lost, confirmed) {
                    outcomes[index] = outcome
                }
                completion(outcomes.map { $0! })
            }
        }
    }

    /// Reads back the records of creates whose replies were lost: our JSON there means the create ran.
    private func confirmCreates(
        _ items: [(item: BatchItem, lostReply: RedisError)], deadline: ContinuousClock.Instant,
        completion: @escaping @Sendable ([Result<CreateOutcome, RepositoryError>]) -> Void
    ) {
        guard readBackProves else {
            return completion(items.map { .failure(.outcomeUnknown(id: $0.item.transfer.id, reason: $0.lostReply.description)) })
        }
        let reads = items.map { entry in
            let key = TransferKeys(entry.item.transfer.id).record
            return RedisCommand.command(["GET", key], key: key)
        }
        submit(reads, deadline: deadline, replicas: 0) { response in
            completion(zip(items, response.replies).map { entry, reply in
                if case .success(.string(let stored)) = reply, stored.elementsEqual(entry.item.json.utf8) {
                    return .success(.created)
                }
                return .failure(.outcomeUnknown(id: entry.item.transfer.id, reason: entry.lostReply.description))
            })
        }
    }

    /// The idempotency records stored for the transfers `ids` (nil where there is none), in one request.
    public func idempotencyRecords(of ids: [TransferID], completion: @escaping @Sendable (Result<[IdempotencyRecord?], RepositoryError>) -> Void) {
        guard !ids.isEmpty else { return completion(.success([])) }
        let reads = ids.map { id in
            let key = TransferKeys(id).idempotency
            return RedisCommand.command(["GET", key], key: key)
        }
        submit(reads, deadline: .now + settings.timeout, replicas: 0) { response in
            completion(Result { () throws(RepositoryError) -> [IdempotencyRecord?] in
                var records: [IdempotencyRecord?] = []
                for result in response.replies {
                    switch try Self.reply(result, of: "GET") {
                    case .null:
                        records.append(nil)
                    case .string(let bytes):
                        guard let record = IdempotencyRecord(json: bytes) else { throw .unexpectedReply("unreadable idempotency record") }
                        records.append(record)
                    case let other:
                        throw .unexpectedReply("GET: \(other)")
                    }
                }
                return records
            })
        }
    }
}
