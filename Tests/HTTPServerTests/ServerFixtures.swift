import Foundation
import HTTPServer
import Synchronization
import TestSupport
import Testing

/// Echoes the request back: method, path, query and selected headers as response headers, body as body.
struct EchoResponder: HTTPResponder {
    func respond(to request: HTTPRequest) -> HTTPResponse {
        var headers: HTTPHeaders = [
            "X-Method": request.method,
            "X-Path": request.path,
            "X-Query": request.query.map { "[\($0)]" } ?? "<none>",
            "X-Body-Length": String(request.body.count),
        ]
        if let custom = request.headers["x-custom"] {
            headers.add(name: "X-Echo-Custom", value: custom)
        }
        if let contentType = request.headers["CONTENT-TYPE"] {
            headers.add(name: "Content-Type", value: contentType)
        }
        return HTTPResponse(status: request.path == "/created" ? 201 : 200, headers: headers, body: request.body)
    }

    func respond(to rejection: HTTPRequestRejection, for request: HTTPRequest) -> HTTPResponse {
        if rejection == .conflictingContentLength { return HTTPResponse(status: 400) }
        guard case .bodyTooLarge(let limit) = rejection else { return HTTPResponse(status: 411) }
        return HTTPResponse(
            status: 413,
            headers: ["Content-Type": "text/plain", "X-Rejected-Path": request.path],
            body: Array("body larger than \(limit) bytes".utf8))
    }
}

/// Starts a server on a free port, runs `body` with a client for it, then stops the server.
func withServer<T>(
    _ responder: any HTTPResponder = EchoResponder(),
    configure: (inout HTTPServerConfiguration) -> Void = { _ in },
    _ body: (HTTPServer, HTTPTestClient) async throws -> T
) async throws -> T {
    var configuration = HTTPServerConfiguration(host: "127.0.0.1", port: 0)
    configuration.threadCount = 4
    configure(&configuration)
    let server = HTTPServer(configuration: configuration, responder: responder)
    try server.start()
    defer { server.stop() }
    return try await body(server, HTTPTestClient(port: server.port))
}

/// Runs blocking work on a dedicated thread, so it never blocks Swift concurrency's small thread pool.
func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try work() })
        }
    }
}

/// Waits (without a timed assertion: the limit only prevents a hang) until `condition` holds.
func eventually(_ what: Comment, _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now.advanced(by: .seconds(20))
    while !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("gave up waiting: \(what)")
            throw CancellationError()
        }
        try await Task.sleep(for: .milliseconds(5))
    }
}

/// The blocking twin of `eventually`, for synchronous tests.
func waitUntil(_ what: Comment, _ condition: () -> Bool) throws {
    let deadline = ContinuousClock.now.advanced(by: .seconds(20))
    while !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("gave up waiting: \(what)")
            throw CancellationError()
        }
        usleep(5_000)
    }
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
