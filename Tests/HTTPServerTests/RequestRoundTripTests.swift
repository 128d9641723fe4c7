@testable import HTTPServer
import TestSupport
import Testing

@Suite struct RequestRoundTripTests {
    @Test func getReachesTheResponderAndStatusAndHeadersComeBack() async throws {
        try await withServer { _, client in
            let response = try client.get("/created", headers: [("X-Custom", "hello")])
            #expect(response.status == 201)
            #expect(response.headers["x-method"] == "GET")
            #expect(response.headers["x-path"] == "/created")
            #expect(response.headers["x-echo-custom"] == "hello")
            #expect(response.headers["content-length"] == "0")
            #expect(response.body.isEmpty)
        }
    }

    @Test func postBodyAndContentTypeAreEchoed() async throws {
        try await withServer { _, client in
            let json = #"{"amount":"12.34","currency":"EUR"}"#
            let response = try client.postJSON("/echo", json)
            #expect(response.status == 200)
            #expect(response.headers["x-method"] == "POST")
            #expect(response.headers["content-type"] == "application/json")
            #expect(response.headers["x-body-length"] == String(json.utf8.count))
            #expect(response.bodyText == json)
        }
    }

    @Test func requestHeaderLookupIgnoresTheCaseTheClientSent() async throws {
        try await withServer { _, client in
            let response = try client.get("/h", headers: [("x-CUSTOM", "mixed"), ("content-TYPE", "text/csv")])
            #expect(response.headers["x-echo-custom"] == "mixed")
            #expect(response.headers["content-type"] == "text/csv")
        }
    }

    @Test func queryIsSplitOffTheRawTarget() async throws {
        try await withServer { _, client in
            let response = try client.get("/search?q=a%20b&limit=10")
            #expect(response.headers["x-path"] == "/search")
            #expect(response.headers["x-query"] == "[q=a%20b&limit=10]")

            let noQuery = try client.get("/search")
            #expect(noQuery.headers["x-query"] == "<none>")

            let emptyQuery = try client.get("/search?")
            #expect(emptyQuery.headers["x-query"] == "[]")
        }
    }

    @Test func pathIsPercentDecoded() async throws {
        try await withServer { _, client in
            let response = try client.get("/accounts/a%20b/%C3%A9t%C3%A9?x=%20")
            #expect(response.headers["x-path"] == "/accounts/a b/été")
            #expect(response.headers["x-query"] == "[x=%20]")
        }
    }

    @Test func headRequestGetsHeadersWithoutBody() async throws {
        try await withServer { _, client in
            let response = try client.send(method: "HEAD", path: "/h", headers: [("X-Custom", "head")])
            #expect(response.status == 200)
            #expect(response.headers["x-method"] == "HEAD")
            #expect(response.body.isEmpty)
        }
    }

    @Test func bodyOfExactlyTheLimitIsAccepted() async throws {
        try await withServer { _, client in
            let body = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let response = try client.send(method: "PUT", path: "/big", body: body)
            #expect(response.status == 200)
            #expect(response.headers["x-body-length"] == String(1 << 20))
            #expect(response.body == body)
        }
    }

    @Test func chunkedBodyWithinTheLimitIsReassembled() async throws {
        try await withServer { _, client in
            let request = bytes(
                "POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                    + "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n")
            let response = try client.sendRaw(request)
            #expect(response.status == 200)
            #expect(response.bodyText == "hello world")
        }
    }

    @Test func keepAliveConnectionServesSeveralRequests() async throws {
        try await withServer { _, client in
            // Two pipelined requests on one connection; the second closes it.
            let request = bytes(
                "POST /one HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                    + "GET /two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let first = try client.sendRaw(request)
            #expect(first.status == 200)
            #expect(first.headers["x-path"] == "/one")
            #expect(first.bodyText == "abc")
        }
    }

    @Test func malformedRequestsAreAnsweredByTheLibraryAndLeaveNoRequestBehind() async throws {
        try await withServer { server, client in
            let badLength = try client.sendRaw(bytes("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"))
            #expect(badLength.status == 400)
            let badHeader = try client.sendRaw(bytes("GET /x HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n"))
            #expect(badHeader.status == 400)
            try await eventually("request contexts released") { server.inFlightRequestCount == 0 }
        }
    }

    /// RFC 9110 5.5: whitespace around a field value is not part of it (libmicrohttpd drops only the leading).
    @Test func headerValuesLoseTheWhitespaceAroundThem() async throws {
        try await withServer { _, client in
            let response = try client.sendRaw(bytes("GET /h HTTP/1.1\r\nHost: x\r\nX-Custom:  padded value \t \r\n\r\n"))
            #expect(response.status == 200)
            #expect(response.headers["x-echo-custom"] == "padded value")
        }
    }

    /// Two different Content-Length values leave the body's end ambiguous: refused (repeats of one value are not).
    @Test func conflictingContentLengthsAreRefused() async throws {
        try await withServer { server, client in
            let conflicting = try client.sendRaw(bytes("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 3\r\n\r\nabcde"))
            #expect(conflicting.status == 400)
            let repeated = try client.sendRaw(bytes("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nabcde"))
            #expect(repeated.status == 200)
            #expect(repeated.bodyText == "abcde")
            try await eventually("request contexts released") { server.inFlightRequestCount == 0 }
        }
    }

    @Test func requestAbandonedMidHeadIsReleasedWhenTheClientGoesAway() async throws {
        try await withServer { server, client in
            // The short timeout only makes the client give up and close; the assertion is about the server.
            let impatient = HTTPTestClient(port: server.port, timeout: .milliseconds(300))
            #expect(throws: HTTPTestClientError.self) {
                try impatient.sendRaw(bytes("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"))
            }
            try await eventually("abandoned request released") { server.inFlightRequestCount == 0 }
            #expect(try client.get("/after").status == 200)
        }
    }
}
