@testable import HTTPServer
import Foundation
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Holds requests to "/slow" until released, so a test can act while one is in flight.
final class GateResponder: HTTPResponder {
    let entered = Atomic<Bool>(false)
    let released = Atomic<Bool>(false)

    func respond(to request: HTTPRequest) -> HTTPResponse {
        if request.path == "/slow" {
            entered.store(true, ordering: .sequentiallyConsistent)
            // Bounded so a broken test cannot hang the worker forever.
            for _ in 0..<30_000 where !released.load(ordering: .sequentiallyConsistent) {
                usleep(1_000)
            }
        }
        return HTTPResponse(status: 200, body: Array("done \(request.path)".utf8))
    }

    func respond(to rejection: HTTPRequestRejection, for request: HTTPRequest) -> HTTPResponse {
        HTTPResponse(status: 413)
    }
}

/// A one-way flag shared between threads.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .sequentiallyConsistent) }
    func set() { value.store(true, ordering: .sequentiallyConsistent) }
}

@Suite struct LifecycleTests {
    @Test func portZeroBindsAFreePort() async throws {
        try await withServer { server, client in
            #expect(server.port > 0)
            let status = try client.get("/").status
            #expect(status == 200)
        }
    }

    @Test func manyConcurrentRequestsFromManyThreadsAreAllAnswered() async throws {
        try await withServer { _, client in
            let threads = 20
            let requestsPerThread = 10
            let answered = try await withThrowingTaskGroup(of: Int.self) { group in
                for thread in 0..<threads {
                    group.addTask {
                        try await onThread {
                            var correct = 0
                            for index in 0..<requestsPerThread {
                                let payload = "thread \(thread) request \(index)"
                                let response = try client.postJSON("/c/\(thread)/\(index)", payload)
                                if response.status == 200 && response.bodyText == payload
                                    && response.headers["x-path"] == "/c/\(thread)/\(index)"
                                {
                                    correct += 1
                                }
                            }
                            return correct
                        }
                    }
                }
                return try await group.reduce(0, +)
            }
            #expect(answered == threads * requestsPerThread)
        }
    }

    /// Synchronous, with blocking waits: an async test's sleeps can be resumed seconds late while other suites
    /// block the test runner's few threads, long enough for the held request to time out.
    @Test func stopFinishesTheInFlightRequestThenRefusesConnections() throws {
        let gate = GateResponder()
        var configuration = HTTPServerConfiguration(host: "127.0.0.1", port: 0)
        configuration.drainTimeout = .seconds(60)
        let server = HTTPServer(configuration: configuration, responder: gate)
        try server.start()
        let client = HTTPTestClient(port: server.port)

        let slow = Mutex<HTTPTestResponse?>(nil)
        Thread.detachNewThread {
            let response = try? HTTPTestClient(port: server.port, timeout: .seconds(60)).get("/slow")
            slow.withLock { $0 = response }
        }
        try waitUntil("slow request reached the responder") { gate.entered.load(ordering: .sequentiallyConsistent) }

        let stopReturned = Flag()
        Thread.detachNewThread {
            server.stop()
            stopReturned.set()
        }
        // Draining: new connections are refused while the slow request is still held.
        try waitUntil("new connections refused while draining") {
            do {
                _ = try client.get("/fast")
                return false
            } catch {
                return "\(error)".contains("refused")
            }
        }
        #expect(!stopReturned.isSet)

        gate.released.store(true, ordering: .sequentiallyConsistent)
        try waitUntil("the slow request was answered") { slow.withLock { $0 != nil } }
        let response = slow.withLock { $0 }
        #expect(response?.status == 200)
        #expect(response?.bodyText == "done /slow")
        try waitUntil("stop returned after the in-flight request") { stopReturned.isSet }

        #expect(throws: HTTPTestClientError.self) { try client.get("/after-stop") }
        server.stop()  // idempotent
    }

    @Test func startOnAPortInUseThrows() async throws {
        try await withServer { server, _ in
            let second = HTTPServer(
                configuration: HTTPServerConfiguration(host: "127.0.0.1", port: server.port),
                responder: EchoResponder())
            let error = try #require(throws: HTTPServerError.self) { try second.start() }
            #expect(error.message.contains("bind"))
            #expect(error.message.contains(String(server.port)))
        }
    }

    @Test func unresolvableHostThrows() {
        let server = HTTPServer(
            configuration: HTTPServerConfiguration(host: "no-such-host.invalid", port: 0), responder: EchoResponder())
        #expect(throws: HTTPServerError.self) { try server.start() }
    }

    @Test func startingTwiceThrowsAndStopBeforeStartIsHarmless() async throws {
        let unstarted = HTTPServer(configuration: HTTPServerConfiguration(port: 0), responder: EchoResponder())
        unstarted.stop()
        #expect(throws: HTTPServerError.self) { try unstarted.start() }

        try await withServer { server, client in
            #expect(throws: HTTPServerError.self) { try server.start() }
            let status = try client.get("/").status
            #expect(status == 200)
        }
    }
}
