import ExactJSON
import HTTPServer
import Logging
import Transfers

/// `POST /transfers/batch`: creates up to 1,000 transfers in one request, each on its own (all or nothing per item,
/// not per batch), with one result per item in request order.
///
/// Every item's create script and account-index entries go to Redis in one request, which the client writes as
/// one pipeline per node, group-committed with other traffic. With an `Idempotency-Key`, item `i` gets the id
/// derived from (client, key, i), so its idempotency record shares its slot; a repeat replays each item's first
/// result and creates only what the first attempt did not (an item that failed with 503), and the same key with a
/// different batch is refused with 422 before anything is written.
struct BatchCreationEndpoint: Sendable {
    let repository: TransferRepository
    let publisher: OutboxPublisher
    let metrics: ServiceMetrics
    let logger: Logger

    /// What became of one item.
    enum ItemResult: Sendable {
        /// Created now (`replayed` false) or by an earlier request with the same key: the transfer's first version.
        case accepted(json: String, replayed: Bool)
        case failed(APIError)
    }

    func respond(_ request: HTTPRequest, client: ClientScope, answer: Answer) throws(APIError) {
        let idempotencyKey = try ServiceRoutes.idempotencyKeyOfJSONPost(request)
        let batch: TransferBatchRequest
        do {
            batch = try TransferBatchRequest(json: request.body)
        } catch {
            throw .invalidRequest(error)
        }
        // Invalid items have their result (422, as a single create's); the valid ones are created.
        let results = batch.items.map { item -> ItemResult? in
            if case .failure(let error) = item { .failed(.invalidRequest(error)) } else { nil }
        }
        let valid = batch.items.enumerated().compactMap { index, item in (try? item.get()).map { (index: index, request: $0) } }
        let creation = BatchRun(
            requests: valid, idempotencyKey: idempotencyKey, fingerprint: "batch " + batch.fingerprint, client: client,
            createdAt: UnixMilliseconds.now().rfc3339
        )
        guard idempotencyKey != nil else {
            return create(creation, known: [], results: results, attempt: 1, answer: answer)
        }
        // A keyed batch first reads its items' idempotency records: a different batch sent with the same key is
        // refused before any item is written.
        repository.idempotencyRecords(of: valid.map { creation.id(ofItem: $0.index) }) { [self] found in
            switch found {
            case .failure(let error):
                answer.fail(APIError(error))
            case .success(let records):
                if records.contains(where: { $0 != nil && $0?.requestFingerprint != creation.fingerprint }) {
                    return answer.fail(.idempotencyKeyReused)
                }
                let known = Set(zip(valid, records).compactMap { item, record in record == nil ? nil : item.index })
                create(creation, known: known, results: results, attempt: 1, answer: answer)
            }
        }
    }

    /// The valid items of a batch and what they are created with.
    private struct BatchRun: Sendable {
        var requests: [(index: Int, request: TransferRequest)]
        var idempotencyKey: String?
        /// The idempotency records' request fingerprint: the whole batch's.
        var fingerprint: String
        var client: ClientScope
        /// One creation time for the whole batch; its transfers are listed by id within it.
        var createdAt: String

        func id(ofItem index: Int) -> TransferID {
            idempotencyKey.map { TransferID.derived(fromIdempotencyKey: $0, scope: client.scope, batchItem: index) } ?? .random()
        }
    }

    /// Creates the items that have no result yet; `known` are those whose idempotency record exists (they replay).
    private func create(_ run: BatchRun, known: Set<Int>, results: [ItemResult?], attempt: Int, answer: Answer) {
        let pending = run.requests.filter { results[$0.index] == nil }
        guard !pending.isEmpty else { return finish(results.map { $0! }, answer: answer) }
        let items = pending.map { index, request in
            let transfer = Transfer.initiate(request, id: run.id(ofItem: index), at: run.createdAt)
            return TransferRepository.BatchItem(
                transfer: transfer, json: transfer.json,
                idempotency: run.idempotencyKey.map { _ in IdempotencyRecord(requestFingerprint: run.fingerprint, transferID: transfer.id) },
                addsIndexEntries: !known.contains(index)
            )
        }
        repository.createBatch(items) { [self] outcomes in
            var results = results
            var created: [TransferRepository.BatchItem] = []
            var retry = false
            for ((index, _), (item, outcome)) in zip(pending, zip(items, outcomes)) {
                switch outcome {
                case .success(.created):
                    created.append(item)
                    results[index] = .accepted(json: item.json, replayed: false)
                case .success(.idTaken) where run.idempotencyKey != nil:
                    // The item's transfer exists without its idempotency record (removed by hand): the key is spent.
                    results[index] = .failed(.idempotencyKeyReused)
                case .success(.idTaken):
                    // A random id taken: astronomically rare; the item is tried again with a fresh one.
                    if attempt < 3 {
                        retry = true
                    } else {
                        results[index] = .failed(.internalError("three random transfer ids in a row were taken"))
                    }
                case .success(.idempotencyKeyUsed(let record, let firstVersion)):
                    results[index] = replay(record, firstVersion: firstVersion, expected: item, fingerprint: run.fingerprint)
                case .failure(let error):
                    results[index] = .failed(APIError(error))
                }
            }
            for item in created {
                logger.info("transfer initiated", metadata: ["transfer_id": "\(item.transfer.id)", "batch": "true"])
                publisher.publish(item.transfer.id, json: item.json)
            }
            if !created.isEmpty { metrics.transfersCreated.increment(by: created.count) }
            if retry {
                create(run, known: known, results: results, attempt: attempt + 1, answer: answer)
            } else {
                finish(results.map { $0! }, answer: answer)
            }
        }
    }

    /// An item whose key was used before: its first version, or why there is none to give.
    private func replay(_ record: IdempotencyRecord, firstVersion: Transfer?, expected item: TransferRepository.BatchItem, fingerprint: String) -> ItemResult {
        // Checked before the write too; a different batch with the same key sent concurrently can still get here.
        guard record.requestFingerprint == fingerprint, record.transferID == item.transfer.id else { return .failed(.idempotencyKeyReused) }
        guard let firstVersion, firstVersion.id == item.transfer.id else { return .failed(.idempotentResultGone(item.transfer.id)) }
        return .accepted(json: firstVersion.json, replayed: true)
    }

    /// Answers 200 with every item's result, unless nothing was written at all because Redis is unavailable: then
    /// the whole request gets that 503, as a single create would.
    private func finish(_ results: [ItemResult], answer: Answer) {
        var unavailable: APIError?
        var anyOtherOutcome = false
        for result in results {
            switch result {
            case .failed(let error) where error.isUnavailableWithoutWrites: unavailable = unavailable ?? error
            case .failed(.invalidRequest): continue
            default: anyOtherOutcome = true
            }
        }
        if let unavailable, !anyOtherOutcome { return answer.fail(unavailable) }

        var body = #"{"results":["#
        var replayed = false
        for (position, result) in results.enumerated() {
            if position > 0 { body += "," }
            switch result {
            case .accepted(let json, let wasReplayed):
                replayed = replayed || wasReplayed
                body += #"{"status":202,"transfer":"# + json + "}"
            case .failed(let error):
                let problem = error.problemDetails
                if case .internalError(let reason) = error {
                    logger.error("batch item failed", metadata: ["error": "\(reason)"])
                }
                // The problem details a single create would have answered, with `status` first.
                var item = JSONObject(["status": .number(String(problem.status))])
                for name in ["type", "title", "detail"] + problem.body.names { item[name] = problem.body[name] }
                body += JSONValue.object(item).serialized
            }
        }
        body += "]}"
        var response = HTTPResponse(status: 200, headers: ["Content-Type": "application/json"], body: Array(body.utf8))
        if replayed { response.headers.add(name: "Idempotent-Replayed", value: "true") }
        answer.send(response)
    }
}

extension APIError {
    /// Redis could not be reached or refused our credentials: certainly nothing was written.
    fileprivate var isUnavailableWithoutWrites: Bool {
        switch self {
        case .dependencyUnavailable, .dependencyRefusedCredentials: true
        default: false
        }
    }
}
