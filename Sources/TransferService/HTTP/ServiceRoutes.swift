import ExactJSON
import HTTPServer
import Logging
import Transfers

/// The HTTP API: `POST /transfers` and `GET /transfers/{id}` mapped onto the domain and the repository, plus the
/// health endpoints.
public struct ServiceRoutes: HTTPResponder {
    /// The operations of the API; the router maps method and path to one of them.
    private enum Operation: Sendable {
        case createTransfer
        case getTransfer
        case liveness
        case readiness
    }

    private let repository: TransferRepository
    private let publisher: OutboxPublisher
    private let readinessCheck: ReadinessCheck
    private let logger: Logger
    private let router: Router<Operation>

    /// Routes backed by `repository`, publishing new transfers with `publisher`.
    public init(repository: TransferRepository, publisher: OutboxPublisher, readinessCheck: ReadinessCheck, logger: Logger) {
        self.repository = repository
        self.publisher = publisher
        self.readinessCheck = readinessCheck
        self.logger = logger
        var router = Router<Operation>()
        router.add("POST", "/transfers", .createTransfer)
        router.add("GET", "/transfers/:id", .getTransfer)
        router.add("GET", "/healthz", .liveness)
        router.add("GET", "/readyz", .readiness)
        self.router = router
    }

    public func respond(to request: HTTPRequest) -> HTTPResponse {
        do throws(APIError) {
            switch router.match(method: request.method, path: request.path) {
            case .found(.createTransfer, _):
                return try createTransfer(request)
            case .found(.getTransfer, let parameters):
                return try getTransfer(id: parameters["id"] ?? "")
            case .found(.liveness, _):
                return Self.jsonResponse(#"{"status":"alive"}"#, status: 200)
            case .found(.readiness, _):
                try readinessCheck.run()
                return Self.jsonResponse(#"{"status":"ready"}"#, status: 200)
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

    /// `POST /transfers`: validate, store with its outbox entry, publish, answer 202.
    private func createTransfer(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        let contentType = request.headers["Content-Type"]
        guard let contentType, Self.isJSON(contentType) else { throw .unsupportedMediaType(found: contentType) }
        let transferRequest: TransferRequest
        do {
            transferRequest = try TransferRequest(json: request.body)
        } catch {
            throw .invalidRequest(error)
        }
        // A fresh random id collides with an existing one only by astronomical chance; try again if it does.
        for _ in 0..<3 {
            let transfer = Transfer.initiate(transferRequest, id: .random())
            let created: Bool
            do {
                created = try repository.create(transfer, retryAt: .now().adding(milliseconds: OutboxPublisher.leaseMilliseconds))
            } catch {
                throw APIError(error)
            }
            guard created else { continue }
            logger.info("transfer initiated", metadata: ["transfer_id": "\(transfer.id)"])
            publisher.publish(transfer)
            var response = Self.transferResponse(transfer, status: 202)
            response.headers.add(name: "Location", value: "/transfers/\(transfer.id)")
            return response
        }
        throw .internalError("three random transfer ids in a row were taken")
    }

    /// `GET /transfers/{id}`: the current state.
    private func getTransfer(id text: String) throws(APIError) -> HTTPResponse {
        guard let id = TransferID(text) else { throw .invalidTransferID(text) }
        let transfer: Transfer?
        do {
            transfer = try repository.find(id)
        } catch {
            throw APIError(error)
        }
        guard let transfer else { throw .transferNotFound(id) }
        return Self.transferResponse(transfer, status: 200)
    }

    private static func transferResponse(_ transfer: Transfer, status: Int) -> HTTPResponse {
        jsonResponse(transfer.json, status: status)
    }

    private static func jsonResponse(_ json: String, status: Int) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: Array(json.utf8))
    }

    /// True for `application/json`, with or without parameters such as `; charset=utf-8`, in any letter case.
    static func isJSON(_ contentType: String) -> Bool {
        let mediaType = contentType.split(separator: ";", maxSplits: 1).first ?? ""
        return mediaType.filter { $0 != " " && $0 != "\t" }.lowercased() == "application/json"
    }
}
