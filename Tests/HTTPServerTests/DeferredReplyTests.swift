@testable import HTTPServer
import Dispatch
import Foundation
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Answers "/now" at once; keeps every other request's reply until the test sends it (`release`), or sends it
/// from another thread after `delay` when one is set.
final class DeferredResponder: HTTPResponder {
    private let held = Mutex<[(path: String, reply: HTTPReply)]>([])
    let delay: Duration?

    init(delay: Duration? = nil) {
        self.delay = delay
    }

    func respond(to request: HTTPRequest, reply: HTTPReply) {
        if request.path == "/now" {
            reply.send(HTTPResponse(status: 200, body: bytes("now")))
            return
        }
        let response = HTTPResponse(status: 200, headers: ["X-Path": request.path], body: bytes("later \(request.path)"))
        if let delay {
            Thread.detachNewThread {
                Thread.sleep(forTimeInterval: Double(delay.components.attoseconds) / 1e18 + Double(delay.components.seconds))
                reply.send(response)
            }
        } else {
            held.withLock { $0.append((request.path, reply)) }
        }
    }

    func respond(to rejection: HTTPRequestRejection, for request: HTTPRequest) -> HTTPResponse {
        HTTPResponse(status: 413)
    }

    /// Requests waiting for `release`.
    var heldCount: Int { held.withLock { $0.count } }

    /// Sends every held reply from a thread of its own (or, `onThisThread`, from the caller's), and returns how many.
    @discardableResult
    func release(onThisThread: Bool = false) -> Int {
        let replies = held.withLock { held in
            defer { held = [] }
            return held
        }
        for (path, reply) in replies {
            let response = HTTPResponse(status: 200, headers: ["X-Path": path], body: bytes("later \(path)"))
            if onThisThread {
                reply.send(response)
            } else {
                Thread.detachNewThread { reply.send(response) }
            }
        }
        return replies.count
    }

    /// Drops every held reply without sending it.
    func dropHeld() {
        held.withLock { $0 = [] }
    }
}

struct KeepAliveError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

/// Sends requests one after another on one keep-alive connection.
final class KeepAliveConnection {
    private let socket: Int32
    private var received: [UInt8] = []

    init(port: Int) throws {
        guard let socket = connectToLoopback(port: port) else { throw KeepAliveError("connect failed: errno \(errno)") }
        self.socket = socket
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit {
        close(socket)
    }

    /// GET `path` and read the answer: (status, body).
    func get(_ path: String) throws -> (status: Int, body: String) {
        let request = bytes("GET \(path) HTTP/1.1\r\nHost: test\r\n\r\n")
        guard send(socket, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else {
            throw KeepAliveError("send failed: errno \(errno)")
        }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            if let headEnd = find("\r\n\r\n") {
                let head = String(decoding: received[..<headEnd], as: UTF8.self)
                let status = Int(head.split(separator: " ")[1]) ?? 0
                let length = head.split(separator: "\r\n").compactMap { line -> Int? in
                    let parts = line.split(separator: ":", maxSplits: 1)
                    guard parts.count == 2, parts[0].lowercased() == "content-length" else { return nil }
                    return Int(parts[1].trimmingCharacters(in: .whitespaces))
                }.first ?? 0
                if received.count >= headEnd + 4 + length {
                    let body = String(decoding: received[(headEnd + 4)..<(headEnd + 4 + length)], as: UTF8.self)
                    received.removeFirst(headEnd + 4 + length)
                    return (status, body)
                }
            }
            let count = recv(socket, &buffer, buffer.count, 0)
            guard count > 0 else { throw KeepAliveError("connection closed or timed out (\(count), errno \(errno))") }
            received.append(contentsOf: buffer[..<count])
        }
    }

    private func find(_ text: String) -> Int? {
        let pattern = bytes(text)
        guard received.count >= pattern.count else { return nil }
        return (0...(received.count - pattern.count)).first { received[$0..<($0 + pattern.count)].elementsEqual(pattern) }
    }
}

/// Blocking waits throughout: the requests are held on purpose, and async tests' sleeps can resume late under load.
@Suite struct DeferredReplyTests {
    private func startServer(
        _ responder: any HTTPResponder, threads: Int = 4, afterSuspending: (@Sendable () -> Void)? = nil,
        configure: (inout HTTPServerConfiguration) -> Void = { _ in }
    ) throws -> HTTPServer {
        var configuration = HTTPServerConfiguration(host: "127.0.0.1", port: 0)
        configuration.threadCount = threads
        configure(&configuration)
        let server = HTTPServer(configuration: configuration, responder: responder, afterSuspending: afterSuspending)
        try server.start()
        return server
    }

    @Test func aReplySentLaterFromAnotherThreadIsTheAnswer() throws {
        let server = try startServer(DeferredResponder(delay: .milliseconds(200)))
        defer { server.stop() }
        let response = try HTTPTestClient(port: server.port).get("/later")
        #expect(response.status == 200)
        #expect(response.bodyText == "later /later")
        #expect(response.headers["x-path"] == "/later")
        try waitUntil("the request completed") { server.inFlightRequestCount == 0 }
    }

    /// With one worker thread, a request waiting for its reply must not keep that thread from answering others.
    @Test func aRequestWaitingForItsReplyDoesNotHoldTheWorkerThread() throws {
        let responder = DeferredResponder()
        let server = try startServer(responder, threads: 1)
        defer { server.stop() }
        let held = Mutex<HTTPTestResponse?>(nil)
        Thread.detachNewThread {
            let response = try? HTTPTestClient(port: server.port, timeout: .seconds(30)).get("/held")
            held.withLock { $0 = response }
        }
        try waitUntil("the held request reached the responder") { responder.heldCount == 1 }

        let now = try HTTPTestClient(port: server.port).get("/now")
        #expect(now.status == 200)
        #expect(now.bodyText == "now")
        #expect(held.withLock { $0 } == nil)
        try waitUntil("only the held request is in flight") { server.inFlightRequestCount == 1 }

        #expect(responder.release() == 1)
        try waitUntil("the held request was answered") { held.withLock { $0 != nil } }
        #expect(held.withLock { $0?.bodyText } == "later /held")
    }

    @Test func manyDelayedRepliesOnKeepAliveConnectionsArriveInOrder() throws {
        let server = try startServer(DeferredResponder(delay: .milliseconds(3)))
        defer { server.stop() }
        let connections = 16
        let requestsPerConnection = 25
        let correct = Atomic<Int>(0)
        let group = DispatchGroup()
        for connection in 0..<connections {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                guard let client = try? KeepAliveConnection(port: server.port) else { return }
                for index in 0..<requestsPerConnection {
                    // Every other request is answered synchronously, so both kinds share each connection.
                    let path = index % 2 == 0 ? "/c\(connection)/r\(index)" : "/now"
                    guard let response = try? client.get(path) else { return }
                    let expected = path == "/now" ? "now" : "later \(path)"
                    if response.status == 200 && response.body == expected {
                        correct.add(1, ordering: .relaxed)
                    }
                }
            }
        }
        #expect(group.wait(timeout: .now() + 60) == .success)
        #expect(correct.load(ordering: .relaxed) == connections * requestsPerConnection)
        try waitUntil("every request completed") { server.inFlightRequestCount == 0 }
    }

    @Test func stopWaitsForRequestsWaitingForTheirReplyAndTheyGetTheirAnswers() throws {
        let responder = DeferredResponder()
        let server = try startServer(responder, configure: { $0.drainTimeout = .seconds(60) })
        let count = 5
        let answers = Mutex<[HTTPTestResponse]>([])
        for index in 0..<count {
            Thread.detachNewThread {
                if let response = try? HTTPTestClient(port: server.port, timeout: .seconds(60)).get("/held/\(index)") {
                    answers.withLock { $0.append(response) }
                }
            }
        }
        try waitUntil("every request reached the responder") { responder.heldCount == count }

        let stopReturned = Flag()
        Thread.detachNewThread {
            server.stop()
            stopReturned.set()
        }
        try waitUntil("new connections refused while draining") {
            (try? HTTPTestClient(port: server.port, timeout: .seconds(2)).get("/now")) == nil
        }
        #expect(!stopReturned.isSet)
        #expect(server.inFlightRequestCount == count)

        #expect(responder.release() == count)
        try waitUntil("stop returned once the held requests were answered") { stopReturned.isSet }
        // The clients read their answers on their own threads, possibly after stop returned.
        try? waitUntil("every client read its answer") { answers.withLock { $0.count } == count }
        let received = answers.withLock { $0 }
        #expect(received.count == count)
        #expect(Set(received.map(\.bodyText)) == Set((0..<count).map { "later /held/\($0)" }))
        #expect(received.allSatisfy { $0.status == 200 && $0.headers["connection"]?.lowercased() == "close" })
    }

    /// The reply arrives after the worker suspended the connection but before it published that: the worker must
    /// notice and resume the connection itself.
    @Test func aReplyArrivingBetweenTheResponderReturningAndTheSuspensionIsSent() throws {
        let responder = DeferredResponder()
        let server = try startServer(responder, threads: 1, afterSuspending: {
            // Sent from another thread, and finished, before the worker goes on to suspend.
            let sent = DispatchSemaphore(value: 0)
            Thread.detachNewThread {
                responder.release(onThisThread: true)
                sent.signal()
            }
            sent.wait()
        })
        defer { server.stop() }
        let client = try KeepAliveConnection(port: server.port)
        for index in 0..<20 {
            let response = try client.get("/raced/\(index)")
            #expect(response.status == 200)
            #expect(response.body == "later /raced/\(index)")
        }
        try waitUntil("every request completed") { server.inFlightRequestCount == 0 }
    }

    /// Replies sent from other threads with no delay race the worker at every step; all must arrive.
    @Test func repliesRacingTheWorkerAreAllSent() throws {
        let server = try startServer(DeferredResponder(delay: .zero))
        defer { server.stop() }
        let correct = Atomic<Int>(0)
        let group = DispatchGroup()
        for connection in 0..<8 {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                guard let client = try? KeepAliveConnection(port: server.port) else { return }
                for index in 0..<100 {
                    if let response = try? client.get("/r/\(connection)/\(index)"), response.body == "later /r/\(connection)/\(index)" {
                        correct.add(1, ordering: .relaxed)
                    }
                }
            }
        }
        #expect(group.wait(timeout: .now() + 60) == .success)
        #expect(correct.load(ordering: .relaxed) == 800)
    }

    @Test func aReplyReleasedWithoutBeingSentAnswers500() throws {
        let responder = DeferredResponder()
        let server = try startServer(responder)
        defer { server.stop() }
        let answer = Mutex<HTTPTestResponse?>(nil)
        Thread.detachNewThread {
            let response = try? HTTPTestClient(port: server.port).get("/dropped")
            answer.withLock { $0 = response }
        }
        try waitUntil("the request reached the responder") { responder.heldCount == 1 }
        responder.dropHeld()
        try waitUntil("the request was answered") { answer.withLock { $0 != nil } }
        #expect(answer.withLock { $0?.status } == 500)
    }

    /// Past the drain timeout, requests still waiting are closed unanswered (MHD must not stop with suspended
    /// connections); a reply sent afterwards is ignored.
    @Test func stopPastTheDrainTimeoutClosesRequestsStillWaiting() throws {
        let responder = DeferredResponder()
        let server = try startServer(responder, configure: { $0.drainTimeout = .milliseconds(200) })
        let outcome = Mutex<String?>(nil)
        Thread.detachNewThread {
            do {
                let response = try HTTPTestClient(port: server.port, timeout: .seconds(30)).get("/never")
                outcome.withLock { $0 = "answered \(response.status)" }
            } catch {
                outcome.withLock { $0 = "failed" }
            }
        }
        try waitUntil("the request reached the responder") { responder.heldCount == 1 }
        server.stop()
        try waitUntil("the client saw the connection end") { outcome.withLock { $0 != nil } }
        #expect(outcome.withLock { $0 } == "failed")
        #expect(responder.release() == 1)  // too late: ignored, and touches no freed connection
        usleep(50_000)
    }
}
