import ExactJSON
import HTTPServer
import Transfers

/// Every way a request can fail, and the one place where failures become HTTP statuses and
/// `application/problem+json` bodies (RFC 9457).
public enum APIError: Error, Sendable {
    case invalidRequest(TransferValidationError)
    /// The query of `GET /transfers` is not a valid listing (a bad cursor included).
    case invalidListingQuery([FieldProblem], omitted: Int)
    case unsupportedMediaType(found: String?)
    case bodyTooLarge(limit: Int)
    case lengthRequired
    case conflictingContentLength
    case invalidTransferID(String)
    case invalidVersionNumber(String)
    case invalidIdempotencyKey
    case idempotencyKeyReused
    case unauthorized
    case preconditionRequired
    case preconditionFailed(currentVersion: Int)
    case notCancellable(id: TransferID, status: TransferStatus)
    case transferNotFound(TransferID)
    case versionNotFound(id: TransferID, version: Int)
    case routeNotFound(path: String)
    case methodNotAllowed(method: String, allowed: [String])
    /// A dependency cannot be reached; nothing was changed.
    case dependencyUnavailable(name: String, reason: String)
    /// A dependency refuses the service's credentials; nothing was changed. Fixing it is an operator's job.
    case dependencyRefusedCredentials(name: String, reason: String)
    /// A write was sent but its outcome is not known (the reply was lost, or too few replicas confirmed it).
    case outcomeUnknown(id: TransferID, reason: String)
    /// A keyed create was repeated, but the transfer the key created is no longer kept.
    case idempotentResultGone(TransferID)
    /// The instance is stopping (`/readyz` during SHUTDOWN_DELAY_MS).
    case shuttingDown
    case internalError(String)

    /// Maps a repository failure: Redis being away is a 503, an unknown outcome a 503 naming the transfer,
    /// anything else is our fault.
    init(_ error: RepositoryError) {
        switch error {
        case .unavailable(let redisError): self = .dependencyUnavailable(name: "Redis", reason: redisError.description)
        case .authenticationFailed(let redisError): self = .dependencyRefusedCredentials(name: "Redis", reason: redisError.description)
        case .outcomeUnknown(let id, _), .notReplicated(let id, _, _): self = .outcomeUnknown(id: id, reason: error.description)
        default: self = .internalError(error.description)
        }
    }

    /// The problem-details response for this error.
    var response: HTTPResponse {
        let problem = problemDetails
        var headers = problem.headers
        headers.add(name: "Content-Type", value: "application/problem+json")
        return HTTPResponse(status: problem.status, headers: headers, body: Array(JSONValue.object(problem.body).serialized.utf8))
    }

    /// The problem details of this error: the status, the headers that go with it, and the RFC 9457 object (which
    /// is also how a failed item of a batch is reported).
    var problemDetails: (status: Int, headers: HTTPHeaders, body: JSONObject) {
        var problem = JSONObject()
        var headers: HTTPHeaders = [:]
        let status: Int
        let type: String
        let title: String
        let detail: String
        switch self {
        case .invalidRequest(.malformedJSON(let reason)):
            (status, type, title) = (400, "malformed-json", "Malformed JSON")
            detail = "The request body is not valid JSON: \(reason)."
        case .invalidRequest(.notAnObject(let found)):
            (status, type, title) = (400, "malformed-json", "Malformed JSON")
            detail = "The request body must be a JSON object, not \(found)."
        case .invalidRequest(.invalidFields(let problems, let omitted)):
            (status, type, title) = (422, "invalid-fields", "Invalid transfer request")
            detail = TransferValidationError.invalidFields(problems, omitted: omitted).description
            problem["errors"] = Self.fieldErrors(problems)
            problem["errors_omitted"] = .number(String(omitted))
        case .invalidListingQuery(let problems, let omitted):
            (status, type, title) = (400, "invalid-query", "Invalid query")
            detail = TransferValidationError.invalidFields(problems, omitted: omitted).description
            problem["errors"] = Self.fieldErrors(problems)
            problem["errors_omitted"] = .number(String(omitted))
        case .unsupportedMediaType(let found):
            (status, type, title) = (415, "unsupported-media-type", "Unsupported media type")
            detail = "The request body must be sent as application/json" + (found.map { ", not \($0)." } ?? ".")
            headers.add(name: "Accept-Post", value: "application/json")
        case .bodyTooLarge(let limit):
            (status, type, title) = (413, "body-too-large", "Request body too large")
            detail = "The request body must be at most \(limit) bytes."
        case .lengthRequired:
            (status, type, title) = (411, "length-required", "Length required")
            detail = "The request body must be sent with a Content-Length header, not chunked."
        case .conflictingContentLength:
            (status, type, title) = (400, "conflicting-content-length", "Conflicting Content-Length")
            detail = "The request has Content-Length headers with different values; send one."
        case .invalidTransferID(let text):
            (status, type, title) = (400, "invalid-transfer-id", "Invalid transfer id")
            detail = "'\(text.prefix(80))' is not a transfer id; transfer ids are UUIDs."
        case .invalidVersionNumber(let text):
            (status, type, title) = (400, "invalid-version-number", "Invalid version number")
            detail = "'\(text.prefix(40))' is not a version number; versions are whole numbers from 1."
        case .invalidIdempotencyKey:
            (status, type, title) = (400, "invalid-idempotency-key", "Invalid idempotency key")
            detail = "Idempotency-Key must be 1 to 255 printable ASCII characters."
        case .idempotencyKeyReused:
            (status, type, title) = (422, "idempotency-key-reused", "Idempotency key reused")
            detail = "This Idempotency-Key was already used with a different request; use a new key for a new transfer."
        case .unauthorized:
            (status, type, title) = (401, "unauthorized", "Unauthorized")
            detail = "A valid 'Authorization: Bearer <token>' header is required."
            headers.add(name: "WWW-Authenticate", value: "Bearer")
        case .preconditionRequired:
            (status, type, title) = (428, "precondition-required", "Precondition required")
            detail = "Send If-Match with the transfer's current version (its ETag), e.g. If-Match: \"1\"."
        case .preconditionFailed(let currentVersion):
            (status, type, title) = (412, "precondition-failed", "Precondition failed")
            detail = "The transfer has changed: its current version is \(currentVersion). Read it again before deciding."
            headers.add(name: "ETag", value: EntityTags.tag(for: currentVersion))
        case .notCancellable(let id, let transferStatus):
            (status, type, title) = (409, "not-cancellable", "Transfer cannot be cancelled")
            detail = "Transfer \(id) is \(transferStatus.rawValue); only an initiated transfer can be cancelled."
        case .versionNotFound(let id, let version):
            (status, type, title) = (404, "version-not-found", "Version not found")
            detail = "Transfer \(id) has no version \(version)."
        case .transferNotFound(let id):
            (status, type, title) = (404, "transfer-not-found", "Transfer not found")
            detail = "There is no transfer \(id)."
        case .routeNotFound(let path):
            (status, type, title) = (404, "not-found", "Not found")
            detail = "There is no resource at \(path.prefix(200))."
        case .methodNotAllowed(let method, let allowed):
            (status, type, title) = (405, "method-not-allowed", "Method not allowed")
            detail = "\(method.prefix(20)) is not allowed here; use \(allowed.joined(separator: " or "))."
            headers.add(name: "Allow", value: allowed.joined(separator: ", "))
        case .dependencyUnavailable(let name, _):
            (status, type, title) = (503, "dependency-unavailable", "Service unavailable")
            detail = "\(name) is unavailable; nothing was changed. Retry shortly."
            headers.add(name: "Retry-After", value: "1")
        case .dependencyRefusedCredentials(let name, _):
            (status, type, title) = (503, "dependency-authentication", "Service misconfigured")
            detail = "\(name) refuses the service's credentials (\(name) authentication); nothing was changed. An operator must fix the configuration."
        case .outcomeUnknown(let id, _):
            (status, type, title) = (503, "outcome-unknown", "Outcome unknown")
            detail = "The change to transfer \(id) was sent to storage but not confirmed, so it may or may not have happened. "
                + "Read the transfer (GET /transfers/\(id)) or retry with the same Idempotency-Key."
            problem["transfer_id"] = .string(id.rawValue)
            headers.add(name: "Retry-After", value: "1")
        case .idempotentResultGone(let id):
            (status, type, title) = (422, "idempotency-key-reused", "Idempotency key reused")
            detail = "This Idempotency-Key created transfer \(id), which is no longer kept; use a new key for a new transfer."
        case .shuttingDown:
            (status, type, title) = (503, "shutting-down", "Service stopping")
            detail = "This instance is shutting down; send requests to another instance."
        case .internalError:
            (status, type, title) = (500, "internal-error", "Internal error")
            detail = "The service failed to handle the request."
        }
        problem["type"] = .string(Self.typeBase + type)
        problem["title"] = .string(title)
        problem["status"] = .number(String(status))
        problem["detail"] = .string(detail)
        return (status, headers, problem)
    }

    /// The `errors` member of a problem about fields: `[{field, detail}]`.
    private static func fieldErrors(_ problems: [FieldProblem]) -> JSONValue {
        .array(problems.map { .object(JSONObject(["field": .string($0.field), "detail": .string($0.reason)])) })
    }

    /// Problem type URIs: `tag:` URIs (RFC 4151), which name a kind of problem without pretending to be a web page.
    static let typeBase = "tag:transfer-service,2026:problem:"
}
