/// A complete request as the application sees it.
public struct HTTPRequest: Sendable {
    /// The request method as sent, e.g. "GET".
    public var method: String
    /// The percent-decoded path, without the query.
    public var path: String
    /// The raw (still percent-encoded) query after "?", or nil when the target has no "?".
    public var query: String?
    /// The request header fields.
    public var headers: HTTPHeaders
    /// The complete request body (empty when there is none).
    public var body: [UInt8]

    /// Creates a request; the server builds these, applications mostly need this for tests.
    public init(method: String, path: String, query: String? = nil, headers: HTTPHeaders = [:], body: [UInt8] = []) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }
}

/// A complete response.
public struct HTTPResponse: Sendable {
    /// The status code, e.g. 200.
    public var status: Int
    /// Header fields to send; Content-Length and Date are set by the server and ignored here.
    public var headers: HTTPHeaders
    /// The body bytes (not sent for HEAD requests).
    public var body: [UInt8]

    /// Creates a response.
    public init(status: Int, headers: HTTPHeaders = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// Requests the server rejects before they reach the application's handler; the application decides the response body.
public enum HTTPRequestRejection: Sendable, Equatable {
    /// The body is, or grew, larger than `HTTPServerConfiguration.maxBodySize`.
    case bodyTooLarge(limit: Int)
    /// The body came without Content-Length while `requiresContentLength` is set.
    case lengthRequired
    /// The request has Content-Length fields with different values.
    case conflictingContentLength
}

/// The application: turns requests into responses.
///
/// A responder implements one of the two `respond(to:)` forms. `respond(to:reply:)` may answer later, from any
/// thread, so the server's worker threads never wait for the application's I/O; the synchronous form answers on
/// the calling worker thread (the server then never suspends the connection) and is adapted by a default
/// `respond(to:reply:)`.
public protocol HTTPResponder: Sendable {
    /// Answers a complete request by calling `reply.send(_:)` exactly once, before returning or later from any thread.
    func respond(to request: HTTPRequest, reply: HTTPReply)
    /// Answers a complete request on the calling worker thread; may block briefly.
    func respond(to request: HTTPRequest) -> HTTPResponse
    /// Called instead of respond(to:) when a request is rejected; `request.body` is empty. Answers at once.
    func respond(to rejection: HTTPRequestRejection, for request: HTTPRequest) -> HTTPResponse
}

extension HTTPResponder {
    /// The synchronous adapter: answers with `respond(to:)` before returning.
    public func respond(to request: HTTPRequest, reply: HTTPReply) {
        reply.send(respond(to: request))
    }

    /// Only reached by a responder that implements neither form, which is a programming error.
    public func respond(to request: HTTPRequest) -> HTTPResponse {
        preconditionFailure("\(Self.self) implements neither respond(to:reply:) nor respond(to:) -> HTTPResponse")
    }
}

/// The one answer a request is owed, given to `HTTPResponder.respond(to:reply:)`.
///
/// `send(_:)` may be called from any thread, before the responder returns or later; only the first call counts.
/// A reply released without having been sent answers 500 (empty body), so a forgotten reply cannot leave a
/// client waiting forever. A request waiting for its reply counts as in flight: `HTTPServer.stop()` waits for it.
public final class HTTPReply: Sendable {
    private let pending: PendingReply

    init(_ pending: PendingReply) {
        self.pending = pending
    }

    deinit {
        pending.deliver(.response(HTTPResponse(status: 500)))
    }

    /// Sends `response`; ignored if a response was already sent.
    public func send(_ response: HTTPResponse) {
        pending.deliver(.response(response))
    }
}
