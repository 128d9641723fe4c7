import Dispatch
import ExactJSON
import HTTPServer
import Logging
import Transfers

/// The HTTP API mapped onto the domain and the repository: create, read, history and cancel of transfers, plus
/// the health and metrics endpoints.
///
/// A worker thread parses and validates a request and hands the Redis work to the repository; the answer goes
/// out from the Redis client's thread when the reply arrives, so workers never wait on Redis.
public struct ServiceRoutes: HTTPResponder {
    /// The operations of the API; the router maps method and path to one of them.
    enum Operation: Sendable {
        case createTransfer
        case getTransfer
        case listVersions
        case getVersion
        case cancelTransfer
        case liveness
        case readiness
        case metrics
        case listTransfers
        case createBatch

        /// Health endpoints answer without credentials, so orchestrators can probe them.
        var requiresAuthentication: Bool { self != .liveness && self != .readiness }

        /// The route template, as a metrics dimension.
        var route: String {
            switch self {
            case .createTransfer: "/transfers"
            case .getTransfer: "/transfers/{id}"
            case .listVersions: "/transfers/{id}/versions"
            case .getVersion: "/transfers/{id}/versions/{version}"
            case .cancelTransfer: "/transfers/{id}/cancel"
            case .liveness: "/healthz"
            case .readiness: "/readyz"
            case .metrics: "/metrics"
            case .listTransfers: "/transfers"
            case .createBatch: "/transfers/batch"
            }
        }
    }

    private let repository: TransferRepository
    private let publisher: OutboxPublisher
    private let readinessCheck: ReadinessCheck
    private let authenticator: Authenticator
    private let metrics: ServiceMetrics
    private let logger: Logger
    private let router: Router<Operation>
    private let listing: TransferListingEndpoint
    private let batches: BatchCreationEndpoint

    /// Routes backed by `repository`, publishing new transfers with `publisher`.
    public init(
        repository: TransferRepository, publisher: OutboxPublisher, readinessCheck: ReadinessCheck,
        authenticator: Authenticator, metrics: ServiceMetrics, logger: Logger
    ) {
        self.metrics = metrics
        self.repository = repository
        self.publisher = publisher
        self.readinessCheck = readinessCheck
        self.authenticator = authenticator
        self.logger = logger
        var router = Router<Operation>()
        router.add("POST", "/transfers", .createTransfer)
        router.add("GET", "/transfers/:id", .getTransfer)
        router.add("GET", "/transfers/:id/versions", .listVersions)
        router.add("GET", "/transfers/:id/versions/:version", .getVersion)
        router.add("POST", "/transfers/:id/cancel", .cancelTransfer)
        router.add("GET", "/healthz", .liveness)
        router.add("GET", "/readyz", .readiness)
        router.add("GET", "/metrics", .metrics)
        router.add("GET", "/transfers", .listTransfers)
        router.add("POST", "/transfers/batch", .createBatch)
        self.router = router
        listing = TransferListingEndpoint(repository: repository)
        batches = BatchCreationEndpoint(repository: repository, publisher: publisher, metrics: metrics, logger: logger)
    }

    public func respond(to request: HTTPRequest, reply: HTTPReply) {
        let match = router.match(method: request.method, path: request.path)
        let route: String
        switch match {
        case .found(let operation, _): route = operation.route
        case .methodNotAllowed: route = "method_not_allowed"
        case .notFound: route = "not_found"
        }
        let answer = Answer(
            reply: reply, request: request, route: route, method: Self.knownMethods.contains(request.method) ? request.method : "other",
            metrics: metrics, logger: logger
        )
        do throws(APIError) {
            switch match {
            case .found(let operation, let parameters):
                var client = ClientScope.anonymous
                if operation.requiresAuthentication {
                    client = try authenticator.authenticate(authorization: request.headers["Authorization"])
                }
                try perform(operation, request, parameters, client: client, answer: answer)
            case .methodNotAllowed(let allowed):
                throw APIError.methodNotAllowed(method: request.method, allowed: allowed)
            case .notFound:
                throw APIError.routeNotFound(path: request.path)
            }
        } catch {
            answer.fail(error)
        }
    }

    /// Methods reported as themselves in metrics; anything else is "other", to keep the label set bounded.
    private static let knownMethods: Set<String> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    public func respond(to rejection: HTTPRequestRejection, for request: HTTPRequest) -> HTTPResponse {
        switch rejection {
        case .bodyTooLarge(let limit): APIError.bodyTooLarge(limit: limit).response
        case .lengthRequired: APIError.lengthRequired.response
        case .conflictingContentLength: APIError.conflictingContentLength.response
        }
    }

    private func perform(
        _ operation: Operation, _ request: HTTPRequest, _ parameters: [String: String], client: ClientScope, answer: Answer
    ) throws(APIError) {
        switch operation {
        case .createTransfer:
            try createTransfer(request, client: client, answer: answer)
        case .getTransfer:
            try getTransfer(id: Self.transferID(parameters), ifNoneMatch: request.headers["If-None-Match"], answer: answer)
        case .listVersions:
            try listVersions(id: Self.transferID(parameters), answer: answer)
        case .getVersion:
            try getVersion(id: Self.transferID(parameters), version: parameters["version"] ?? "", answer: answer)
        case .cancelTransfer:
            try cancelTransfer(id: Self.transferID(parameters), ifMatch: request.headers["If-Match"], answer: answer)
        case .liveness:
            answer.send(Self.jsonResponse(#"{"status":"alive"}"#, status: 200))
        case .readiness:
            // The check waits on Redis and Kafka (bounded by short timeouts); not on a worker thread.
            readinessCheck.probe { outcome in
                answer.complete { () throws(APIError) in
                    try outcome.get()
                    return Self.jsonResponse(#"{"status":"ready"}"#, status: 200)
                }
            }
        case .metrics:
            answer.send(HTTPResponse(
                status: 200, headers: ["Content-Type": "text/plain; version=0.0.4; charset=utf-8"], body: metrics.exposition()
            ))
        case .listTransfers:
            try listing.respond(query: request.query, answer: answer)
        case .createBatch:
            try batches.respond(request, client: client, answer: answer)
        }
    }

    // MARK: - Creating

    /// `POST /transfers`: validate, store with its outbox entry (and idempotency record), publish, answer 202.
    private func createTransfer(_ request: HTTPRequest, client: ClientScope, answer: Answer) throws(APIError) {
        let idempotencyKey = try Self.idempotencyKeyOfJSONPost(request)
        let transferRequest: TransferRequest
        do {
            transferRequest = try TransferRequest(json: request.body)
        } catch {
            throw .invalidRequest(error)
        }
        let creation = Creation(request: transferRequest, idempotencyKey: idempotencyKey, client: client)
        create(creation, attempt: 1, answer: answer)
    }

    /// A validated create request and whose it is.
    private struct Creation: Sendable {
        var request: TransferRequest
        var idempotencyKey: String?
        var client: ClientScope

        /// A keyed create's id is derived from its key (see `TransferID.derived`); any other is random.
        func makeID() -> TransferID {
            idempotencyKey.map { TransferID.derived(fromIdempotencyKey: $0, scope: client.scope) } ?? .random()
        }
    }

    private func create(_ creation: Creation, attempt: Int, answer: Answer) {
        let transfer = Transfer.initiate(creation.request, id: creation.makeID(), at: UnixMilliseconds.now().rfc3339)
        // Rendered once: the record, the event, the first history entry and the response are the same text.
        let json = transfer.json
        let idempotency = creation.idempotencyKey.map { _ in
            IdempotencyRecord(requestFingerprint: creation.request.fingerprint, transferID: transfer.id)
        }
        repository.create(transfer, json: json, idempotency: idempotency) { [self] result in
            switch result {
            case .failure(let error):
                answer.fail(APIError(error))
            case .success(.created):
                logger.info("transfer initiated", metadata: ["transfer_id": "\(transfer.id)"])
                metrics.transfersCreated.increment()
                publisher.publish(transfer.id, json: json)
                answer.send(Self.transferResponse(json: json, version: transfer.version, id: transfer.id, status: 202, location: true))
            case .success(.idTaken) where creation.idempotencyKey != nil:
                // The key's transfer exists but its idempotency record does not (removed by hand): the key is spent.
                answer.fail(.idempotencyKeyReused)
            case .success(.idTaken):
                // A fresh random id collides with an existing one only by astronomical chance; try again if it does.
                if attempt < 3 {
                    create(creation, attempt: attempt + 1, answer: answer)
                } else {
                    answer.fail(.internalError("three random transfer ids in a row were taken"))
                }
            case .success(.idempotencyKeyUsed(let record, let firstVersion)):
                replay(record, firstVersion: firstVersion, for: creation, answer: answer)
            }
        }
    }

    /// Answers a repeated keyed create with the first response (202 and the transfer's first version), or 422
    /// when the key came with a different request.
    private func replay(_ record: IdempotencyRecord, firstVersion: Transfer?, for creation: Creation, answer: Answer) {
        // Bytes, not String equality, which would take canonically equivalent party ids for the same ones.
        guard record.requestFingerprint.utf8.elementsEqual(creation.request.fingerprint.utf8) else { return answer.fail(.idempotencyKeyReused) }
        @Sendable func respond(with first: Transfer?) {
            guard let first else { return answer.fail(.idempotentResultGone(record.transferID)) }
            var response = Self.transferResponse(first, status: 202, location: true)
            response.headers.add(name: "Idempotent-Replayed", value: "true")
            answer.send(response)
        }
        if let firstVersion, firstVersion.id == record.transferID {
            return respond(with: firstVersion)
        }
        // A key recorded before ids were derived from keys names a transfer in another slot: read it separately.
        repository.firstVersion(of: record.transferID) { result in
            switch result {
            case .success(let first): respond(with: first)
            case .failure(let error): answer.fail(APIError(error))
            }
        }
    }

    // MARK: - Reading

    /// `GET /transfers/{id}`: the current state, or 304 when the client's `If-None-Match` names it.
    private func getTransfer(id: TransferID, ifNoneMatch: String?, answer: Answer) {
        repository.find(id) { result in
            answer.complete { () throws(APIError) in
                let transfer = try Self.found(result, id: id)
                if let ifNoneMatch, EntityTags(ifNoneMatch, weakTagsMatch: true).matches(version: transfer.version) {
                    return HTTPResponse(status: 304, headers: ["ETag": EntityTags.tag(for: transfer.version)])
                }
                return Self.transferResponse(transfer, status: 200)
            }
        }
    }

    /// `GET /transfers/{id}/versions`: every version, oldest first.
    private func listVersions(id: TransferID, answer: Answer) {
        repository.versions(of: id) { result in
            answer.complete { () throws(APIError) in
                let versions = try Self.found(result, id: id)
                let body = JSONValue.object(JSONObject([
                    "transfer_id": .string(id.rawValue), "versions": .array(versions.map { .object($0.jsonObject) }),
                ]))
                return Self.jsonResponse(body.serialized, status: 200)
            }
        }
    }

    /// `GET /transfers/{id}/versions/{n}`: one version.
    private func getVersion(id: TransferID, version text: String, answer: Answer) throws(APIError) {
        // At most nine digits, as the contract's pattern says: a longer number is no version, not an unknown one.
        guard text.utf8.count <= 9, let number = Int(text), number >= 1, String(number) == text else { throw .invalidVersionNumber(text) }
        repository.versions(of: id) { result in
            answer.complete { () throws(APIError) in
                guard let version = try Self.found(result, id: id).first(where: { $0.version == number }) else {
                    throw .versionNotFound(id: id, version: number)
                }
                return Self.transferResponse(version, status: 200)
            }
        }
    }

    // MARK: - Cancelling

    /// `POST /transfers/{id}/cancel`: only with `If-Match` naming the current version, only while `initiated`.
    private func cancelTransfer(id: TransferID, ifMatch: String?, answer: Answer) throws(APIError) {
        guard let ifMatch else { throw .preconditionRequired }
        let tags = EntityTags(ifMatch, weakTagsMatch: false)
        repository.cancel(id, expectedVersions: tags.isWildcard ? nil : tags.versions, at: .now()) { [logger, metrics] result in
            answer.complete { () throws(APIError) in
                switch try result.mapError(APIError.init).get() {
                case .cancelled(let transfer):
                    logger.info("transfer cancelled", metadata: ["transfer_id": "\(id)", "version": "\(transfer.version)"])
                    metrics.transfersCancelled.increment()
                    return Self.transferResponse(transfer, status: 200)
                case .notFound:
                    throw .transferNotFound(id)
                case .refused(.versionMismatch(let current)):
                    throw .preconditionFailed(currentVersion: current)
                case .refused(.notCancellable(let status)):
                    throw .notCancellable(id: id, status: status)
                }
            }
        }
    }

    // MARK: - Helpers

    /// The value of a lookup, or the error that answers it (404 when there is nothing).
    private static func found<Value>(_ result: Result<Value?, RepositoryError>, id: TransferID) throws(APIError) -> Value {
        guard let value = try result.mapError(APIError.init).get() else { throw .transferNotFound(id) }
        return value
    }

    private static func transferID(_ parameters: [String: String]) throws(APIError) -> TransferID {
        let text = parameters["id"] ?? ""
        guard let id = TransferID(text) else { throw .invalidTransferID(text) }
        return id
    }

    /// The transfer as JSON with its version as the entity tag (and its URL, for a creation).
    private static func transferResponse(_ transfer: Transfer, status: Int, location: Bool = false) -> HTTPResponse {
        transferResponse(json: transfer.json, version: transfer.version, id: transfer.id, status: status, location: location)
    }

    private static func transferResponse(json: String, version: Int, id: TransferID, status: Int, location: Bool = false) -> HTTPResponse {
        var response = jsonResponse(json, status: status)
        response.headers.add(name: "ETag", value: EntityTags.tag(for: version))
        if location {
            response.headers.add(name: "Location", value: "/transfers/\(id)")
        }
        return response
    }

    private static func jsonResponse(_ json: String, status: Int) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: Array(json.utf8))
    }

    /// True for `application/json`, with or without parameters such as `; charset=utf-8`, in any letter case.
    /// Compared as bytes: this runs on every create.
    static func isJSON(_ contentType: String) -> Bool {
        let expected = "application/json".utf8
        var mediaType = contentType.utf8.prefix { $0 != UInt8(ascii: ";") }[...]
        while let last = mediaType.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") { mediaType = mediaType.dropLast() }
        while let first = mediaType.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") { mediaType = mediaType.dropFirst() }
        guard mediaType.count == expected.count else { return false }
        return zip(mediaType, expected).allSatisfy { byte, lowercase in
            (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte) == lowercase
        }
    }

    /// Checks that a create's body is sent as JSON; returns its `Idempotency-Key`, if valid, nil if absent.
    static func idempotencyKeyOfJSONPost(_ request: HTTPRequest) throws(APIError) -> String? {
        let contentType = request.headers["Content-Type"]
        guard let contentType, Self.isJSON(contentType) else { throw .unsupportedMediaType(found: contentType) }
        return try request.headers["Idempotency-Key"].map { (key) throws(APIError) -> String in
            guard Self.isValidIdempotencyKey(key) else { throw .invalidIdempotencyKey }
            return key
        }
    }

    /// 1 to 255 printable ASCII characters.
    static func isValidIdempotencyKey(_ key: String) -> Bool {
        (1...255).contains(key.utf8.count) && key.utf8.allSatisfy { $0 >= 0x20 && $0 <= 0x7E }
    }
}

/// The answer a request is owed: sends the response once, from whichever thread has it, and records the request's
/// metrics and any failure worth a log line.
final class Answer: Sendable {
    private let reply: HTTPReply
    private let method: String
    private let path: String
    private let route: String
    private let started = ContinuousClock.now
    private let metrics: ServiceMetrics
    private let logger: Logger

    init(reply: HTTPReply, request: HTTPRequest, route: String, method: String, metrics: ServiceMetrics, logger: Logger) {
        self.reply = reply
        self.method = method
        self.path = request.path
        self.route = route
        self.metrics = metrics
        self.logger = logger
    }

    func send(_ response: HTTPResponse) {
        metrics.recordRequest(route: route, method: method, status: response.status, duration: ContinuousClock.now - started)
        reply.send(response)
    }

    func fail(_ error: APIError) {
        switch error {
        case .internalError(let reason):
            logger.error("request failed", metadata: ["method": "\(method)", "path": "\(path)", "error": "\(reason)"])
        case .dependencyUnavailable(let name, let reason):
            logger.warning("dependency unavailable", metadata: ["dependency": "\(name)", "error": "\(reason)"])
        case .outcomeUnknown(let id, let reason):
            logger.warning("write outcome unknown", metadata: ["transfer_id": "\(id)", "error": "\(reason)"])
        default:
            break
        }
        send(error.response)
    }

    /// Sends what `body` returns, or the error it throws.
    func complete(_ body: () throws(APIError) -> HTTPResponse) {
        do {
            send(try body())
        } catch {
            fail(error)
        }
    }
}
