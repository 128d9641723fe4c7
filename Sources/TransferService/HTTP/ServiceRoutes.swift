import ExactJSON
import HTTPServer
import Logging
import Transfers

/// The HTTP API mapped onto the domain and the repository: create, read, history and cancel of transfers, plus
/// the health endpoints.
public struct ServiceRoutes: HTTPResponder {
    /// The operations of the API; the router maps method and path to one of them.
    private enum Operation: Sendable {
        case createTransfer
        case getTransfer
        case listVersions
        case getVersion
        case cancelTransfer
        case liveness
        case readiness
        case metrics

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
        self.router = router
    }

    public func respond(to request: HTTPRequest) -> HTTPResponse {
        let started = ContinuousClock.now
        let match = router.match(method: request.method, path: request.path)
        let response = respond(to: request, match: match)
        let route: String
        switch match {
        case .found(let operation, _): route = operation.route
        case .methodNotAllowed: route = "method_not_allowed"
        case .notFound: route = "not_found"
        }
        metrics.recordRequest(
            route: route, method: Self.knownMethods.contains(request.method) ? request.method : "other",
            status: response.status, duration: ContinuousClock.now - started
        )
        return response
    }

    /// Methods reported as themselves in metrics; anything else is "other", to keep the label set bounded.
    private static let knownMethods: Set<String> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    private func respond(to request: HTTPRequest, match: RouteMatch<Operation>) -> HTTPResponse {
        do throws(APIError) {
            switch match {
            case .found(let operation, let parameters):
                if operation.requiresAuthentication {
                    try authenticator.authenticate(authorization: request.headers["Authorization"])
                }
                return try perform(operation, request, parameters)
            case .methodNotAllowed(let allowed):
                throw APIError.methodNotAllowed(method: request.method, allowed: allowed)
            case .notFound:
                throw APIError.routeNotFound(path: request.path)
            }
        } catch {
            if case .internalError(let reason) = error {
                logger.error("request failed", metadata: ["method": "\(request.method)", "path": "\(request.path)", "error": "\(reason)"])
            } else if case .dependencyUnavailable(let name, let reason) = error {
                logger.warning("dependency unavailable", metadata: ["dependency": "\(name)", "error": "\(reason)"])
            }
            return error.response
        }
    }

    public func respond(to rejection: HTTPRequestRejection, for request: HTTPRequest) -> HTTPResponse {
        switch rejection {
        case .bodyTooLarge(let limit): APIError.bodyTooLarge(limit: limit).response
        case .lengthRequired: APIError.lengthRequired.response
        }
    }

    private func perform(_ operation: Operation, _ request: HTTPRequest, _ parameters: [String: String]) throws(APIError) -> HTTPResponse {
        switch operation {
        case .createTransfer:
            return try createTransfer(request)
        case .getTransfer:
            return try getTransfer(id: try Self.transferID(parameters), ifNoneMatch: request.headers["If-None-Match"])
        case .listVersions:
            return try listVersions(id: try Self.transferID(parameters))
        case .getVersion:
            return try getVersion(id: try Self.transferID(parameters), version: parameters["version"] ?? "")
        case .cancelTransfer:
            return try cancelTransfer(id: try Self.transferID(parameters), ifMatch: request.headers["If-Match"])
        case .liveness:
            return Self.jsonResponse(#"{"status":"alive"}"#, status: 200)
        case .readiness:
            try readinessCheck.run()
            return Self.jsonResponse(#"{"status":"ready"}"#, status: 200)
        case .metrics:
            return HTTPResponse(
                status: 200, headers: ["Content-Type": "text/plain; version=0.0.4; charset=utf-8"], body: metrics.exposition()
            )
        }
    }

    /// `POST /transfers`: validate, store with its outbox entry (and idempotency record), publish, answer 202.
    private func createTransfer(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        let contentType = request.headers["Content-Type"]
        guard let contentType, Self.isJSON(contentType) else { throw .unsupportedMediaType(found: contentType) }
        let idempotencyKey = try request.headers["Idempotency-Key"].map { (key) throws(APIError) -> String in
            guard Self.isValidIdempotencyKey(key) else { throw .invalidIdempotencyKey }
            return key
        }
        let transferRequest: TransferRequest
        do {
            transferRequest = try TransferRequest(json: request.body)
        } catch {
            throw .invalidRequest(error)
        }
        // A fresh random id collides with an existing one only by astronomical chance; try again if it does.
        for _ in 0..<3 {
            let now = UnixMilliseconds.now()
            let transfer = Transfer.initiate(transferRequest, id: .random(), at: now.rfc3339)
            // Rendered once: the record, the event, the idempotency record and the response are the same text.
            let json = transfer.json
            let idempotency = idempotencyKey.map {
                (key: $0, record: IdempotencyRecord(requestFingerprint: transferRequest.fingerprint, status: 202, body: json))
            }
            let outcome: TransferRepository.CreateOutcome
            do {
                outcome = try repository.create(
                    transfer.id, json: json, retryAt: now.adding(milliseconds: OutboxPublisher.leaseMilliseconds),
                    idempotency: idempotency
                )
            } catch {
                throw APIError(error)
            }
            switch outcome {
            case .created:
                logger.info("transfer initiated", metadata: ["transfer_id": "\(transfer.id)"])
                metrics.transfersCreated.increment()
                publisher.publish(transfer.id, json: json)
                return Self.transferResponse(json: json, version: transfer.version, id: transfer.id, status: 202, location: true)
            case .idTaken:
                continue
            case .idempotencyKeyUsed(let record):
                guard record.requestFingerprint == transferRequest.fingerprint else { throw .idempotencyKeyReused }
                return try Self.replay(record)
            }
        }
        throw .internalError("three random transfer ids in a row were taken")
    }

    /// `GET /transfers/{id}`: the current state, or 304 when the client's `If-None-Match` names it.
    private func getTransfer(id: TransferID, ifNoneMatch: String?) throws(APIError) -> HTTPResponse {
        let transfer = try find(id)
        if let ifNoneMatch, EntityTags(ifNoneMatch).matches(version: transfer.version) {
            return HTTPResponse(status: 304, headers: ["ETag": EntityTags.tag(for: transfer.version)])
        }
        return Self.transferResponse(transfer, status: 200)
    }

    /// `GET /transfers/{id}/versions`: every version, oldest first.
    private func listVersions(id: TransferID) throws(APIError) -> HTTPResponse {
        let versions = try versions(of: id)
        let body = JSONValue.object(JSONObject([
            "transfer_id": .string(id.rawValue), "versions": .array(versions.map { .object($0.jsonObject) }),
        ]))
        return Self.jsonResponse(body.serialized, status: 200)
    }

    /// `GET /transfers/{id}/versions/{n}`: one version.
    private func getVersion(id: TransferID, version text: String) throws(APIError) -> HTTPResponse {
        guard let number = Int(text), number >= 1, String(number) == text else { throw .invalidVersionNumber(text) }
        guard let version = try versions(of: id).first(where: { $0.version == number }) else {
            throw .versionNotFound(id: id, version: number)
        }
        return Self.transferResponse(version, status: 200)
    }

    /// `POST /transfers/{id}/cancel`: only with `If-Match` naming the current version, only while `initiated`.
    private func cancelTransfer(id: TransferID, ifMatch: String?) throws(APIError) -> HTTPResponse {
        guard let ifMatch else { throw .preconditionRequired }
        let tags = EntityTags(ifMatch)
        let outcome: TransferRepository.CancelOutcome
        do {
            outcome = try repository.cancel(id, expectedVersions: tags.isWildcard ? nil : tags.versions, at: .now())
        } catch {
            throw APIError(error)
        }
        switch outcome {
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

    private func versions(of id: TransferID) throws(APIError) -> [Transfer] {
        let versions: [Transfer]?
        do {
            versions = try repository.versions(of: id)
        } catch {
            throw APIError(error)
        }
        guard let versions else { throw .transferNotFound(id) }
        return versions
    }

    private func find(_ id: TransferID) throws(APIError) -> Transfer {
        let transfer: Transfer?
        do {
            transfer = try repository.find(id)
        } catch {
            throw APIError(error)
        }
        guard let transfer else { throw .transferNotFound(id) }
        return transfer
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

    /// The first response for an idempotency key, again.
    private static func replay(_ record: IdempotencyRecord) throws(APIError) -> HTTPResponse {
        guard let transfer = try? Transfer(json: Array(record.body.utf8)) else {
            throw .internalError("an idempotency record holds an unreadable transfer")
        }
        var response = transferResponse(transfer, status: record.status, location: true)
        response.headers.add(name: "Idempotent-Replayed", value: "true")
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

    /// 1 to 255 printable ASCII characters.
    static func isValidIdempotencyKey(_ key: String) -> Bool {
        (1...255).contains(key.utf8.count) && key.utf8.allSatisfy { $0 >= 0x20 && $0 <= 0x7E }
    }
}
