@testable import HTTPServer
import Synchronization
import TestSupport
import Testing

/// Counts which responder entry point the server used.
final class CountingResponder: HTTPResponder {
    let responses = Atomic<Int>(0)
    let rejections = Atomic<Int>(0)
    private let echo = EchoResponder()

    func respond(to request: HTTPRequest) -> HTTPResponse {
        responses.add(1, ordering: .relaxed)
        return echo.respond(to: request)
    }

    func respond(to rejection: HTTPRequestRejection, for request: HTTPRequest) -> HTTPResponse {
        rejections.add(1, ordering: .relaxed)
        #expect(request.body.isEmpty)
        return echo.respond(to: rejection, for: request)
    }
}

@Suite struct BodyLimitTests {
    @Test func announcedOversizedBodyIsRejectedBeforeAnyOfItIsSent() async throws {
        let responder = CountingResponder()
        try await withServer(responder) { _, client in
            // Only the head of a 100 MiB upload: an answer proves the server did not wait for the body.
            let response = try client.sendRaw(
                bytes("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n"))
            #expect(response.status == 413)
            #expect(response.bodyText == "body larger than 1048576 bytes")
            #expect(response.headers["x-rejected-path"] == "/upload")
            #expect(response.headers["connection"]?.lowercased() == "close")
            #expect(responder.rejections.load(ordering: .relaxed) == 1)
            #expect(responder.responses.load(ordering: .relaxed) == 0)
        }
    }

    @Test func oversizedBodySentInFullStillGetsTheRejection() async throws {
        try await withServer { server, client in
            // The client writes all 4 MiB; the server answers after the head and closes without reading it.
            let response = try client.send(method: "POST", path: "/big", body: Array(repeating: 1, count: 4 << 20))
            #expect(response.status == 413)
            let next = try client.get("/still-alive")
            #expect(next.status == 200)
            try await eventually("request contexts released") { server.inFlightRequestCount == 0 }
        }
    }

    @Test func announcedOversizedBodyWithExpectContinueIsRejectedWithoutContinue() async throws {
        try await withServer(configure: { $0.maxBodySize = 10 }) { _, client in
            let response = try client.sendRaw(
                bytes("PUT /u HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n"))
            #expect(response.status == 413)
            #expect(response.bodyText == "body larger than 10 bytes")
        }
    }

    @Test func bodyOneByteOverTheLimitIsRejected() async throws {
        let responder = CountingResponder()
        try await withServer(responder, configure: { $0.maxBodySize = 100 }) { _, client in
            let response = try client.send(method: "POST", path: "/p", body: Array(repeating: 7, count: 101))
            #expect(response.status == 413)
            let accepted = try client.send(method: "POST", path: "/p", body: Array(repeating: 7, count: 100))
            #expect(accepted.status == 200)
            #expect(accepted.body.count == 100)
            #expect(responder.rejections.load(ordering: .relaxed) == 1)
            #expect(responder.responses.load(ordering: .relaxed) == 1)
        }
    }

    @Test func chunkedBodyIsRefusedBeforeAnyOfItIsReadWhenContentLengthIsRequired() async throws {
        let responder = CountingResponder()
        try await withServer(responder, configure: { $0.requiresContentLength = true }) { _, client in
            // Only the head: an answer proves the server did not wait for the body.
            let response = try client.sendRaw(bytes(
                "POST /stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"))
            #expect(response.status == 411)
            #expect(responder.rejections.load(ordering: .relaxed) == 1)
            #expect(responder.responses.load(ordering: .relaxed) == 0)
            let withLength = try client.send(method: "POST", path: "/p", body: Array("ok".utf8))
            #expect(withLength.status == 200)
        }
    }

    @Test func chunkedBodyPastTheLimitThatEndsSoonGetsTheRejection() async throws {
        let responder = CountingResponder()
        try await withServer(responder, configure: { $0.maxBodySize = 1024 }) { server, client in
            let chunk = String(repeating: "a", count: 600)
            let request = bytes(
                "POST /stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "258\r\n\(chunk)\r\n258\r\n\(chunk)\r\n0\r\n\r\n")
            let response = try client.sendRaw(request)
            #expect(response.status == 413)
            #expect(response.headers["x-rejected-path"] == "/stream")
            #expect(response.headers["connection"]?.lowercased() == "close")
            #expect(responder.responses.load(ordering: .relaxed) == 0)
            #expect(responder.rejections.load(ordering: .relaxed) == 1)
            try await eventually("request contexts released") { server.inFlightRequestCount == 0 }
        }
    }

    /// libmicrohttpd 0.9.75 cannot answer in the middle of an upload, so a chunked flood is cut off:
    /// the connection closes without a response once the drain allowance is used up.
    @Test func chunkedFloodIsCutOffWithoutReadingItAllAndTheServerKeepsServing() async throws {
        let responder = CountingResponder()
        try await withServer(responder, configure: { $0.maxBodySize = 1024; $0.oversizedBodyDrainLimit = 4096 }) {
            server, client in
            var request = bytes("POST /flood HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            let chunk = bytes("10000\r\n") + Array(repeating: UInt8(ascii: "z"), count: 0x10000) + bytes("\r\n")
            for _ in 0..<512 {  // 32 MiB
                request += chunk
            }
            request += bytes("0\r\n\r\n")
            // Had the server read all 32 MiB, it would have answered 413; a closed connection proves it stopped.
            #expect(throws: HTTPTestClientError.self) { try client.sendRaw(request) }
            #expect(responder.responses.load(ordering: .relaxed) == 0)
            #expect(responder.rejections.load(ordering: .relaxed) == 0)

            let next = try client.get("/still-alive")
            #expect(next.status == 200)
            try await eventually("request contexts released") { server.inFlightRequestCount == 0 }
        }
    }

    @Test(arguments: ["POST", "PUT", "PATCH", "DELETE"])
    func announcedOversizedBodyIsRejectedForEveryMethod(method: String) async throws {
        try await withServer(configure: { $0.maxBodySize = 10 }) { server, client in
            let response = try client.sendRaw(bytes("\(method) /m HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"))
            #expect(response.status == 413)
            #expect(response.headers["connection"]?.lowercased() == "close")
            try await eventually("request contexts released") { server.inFlightRequestCount == 0 }
        }
    }
}
