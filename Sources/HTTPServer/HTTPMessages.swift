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
}

/// The application: turns requests into responses. Called on the server's worker threads; may block briefly.
public protocol HTTPResponder: Sendable {
    /// Answers a complete request.
    func respond(to request: HTTPRequest) -> HTTPResponse
    /// Called instead of respond(to:) when a request is rejected; `request.body` is empty.
    func respond(to rejection: HTTPRequestRejection, for request: HTTPRequest) -> HTTPResponse
}
