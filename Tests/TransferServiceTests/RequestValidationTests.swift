import ExactJSON
import Foundation
import ServiceTestSupport
import TestSupport
import Testing
import Transfers

/// Bad requests over real HTTP: each gets its 4xx problem+json answer, and nothing is written.
///
/// These run against their own service instance and redis-server (and a topic of their own), so "nothing was
/// written" can be checked as an empty database while other tests create transfers elsewhere.
@Suite struct RequestValidationTests {
    static let harness: ServiceHarness = {
        do {
            return try ServiceHarness(topic: "validation_transfers", groupID: "validation-tests")
        } catch {
            fatalError("cannot start the service: \(error)")
        }
    }()

    var harness: ServiceHarness { Self.harness }

    /// Checks the RFC 9457 body and that Redis is still empty.
    private func expectProblem(_ response: HTTPTestResponse, status: Int, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(response.status == status, "\(response.bodyText)", sourceLocation: sourceLocation)
        #expect(response.headers["content-type"] == "application/problem+json", sourceLocation: sourceLocation)
        guard case .object(let problem) = try JSONValue.parse(response.body) else {
            Issue.record("not a JSON object: \(response.bodyText)", sourceLocation: sourceLocation)
            return
        }
        #expect(problem["status"] == .number(String(status)), sourceLocation: sourceLocation)
        for member in ["type", "title", "detail"] {
            guard case .string(let text)? = problem[member], !text.isEmpty else {
                Issue.record("problem has no \(member): \(response.bodyText)", sourceLocation: sourceLocation)
                continue
            }
        }
        #expect(try harness.keyCount() == 0, "nothing may be written", sourceLocation: sourceLocation)
    }

    static let invalidBodies: [(String, Int)] = [
        ("", 400), ("{", 400), ("nope", 400), (#"{"sender_id":"a","receiver_id":"b","amount":1} x"#, 400),
        (#"{"sender_id":"a","receiver_id":"b","amount":1}{}"#, 400), ("[]", 400), ("42", 400), ("null", 400),
        (#"{"sender_id":"a","sender_id":"c","receiver_id":"b","amount":1}"#, 400),
        ("{}", 422),
        (#"{"receiver_id":"b","amount":1}"#, 422),
        (#"{"sender_id":"a","amount":1}"#, 422),
        (#"{"sender_id":"a","receiver_id":"b"}"#, 422),
        (#"{"sender_id":1,"receiver_id":"b","amount":1}"#, 422),
        (#"{"sender_id":"a","receiver_id":null,"amount":1}"#, 422),
        (#"{"sender_id":"a","receiver_id":"b","amount":"1"}"#, 422),
        (#"{"sender_id":"a","receiver_id":"b","amount":true}"#, 422),
        (#"{"sender_id":"","receiver_id":"b","amount":1}"#, 422),
        (#"{"sender_id":"a","receiver_id":"","amount":1}"#, 422),
        (#"{"sender_id":"\#(String(repeating: "s", count: 65))","receiver_id":"b","amount":1}"#, 422),
        (#"{"sender_id":"a","receiver_id":"\#(String(repeating: "r", count: 65))","amount":1}"#, 422),
        (#"{"sender_id":"a\u0000","receiver_id":"b","amount":1}"#, 422),
        (#"{"sender_id":"a","receiver_id":"b\r\n","amount":1}"#, 422),
        (#"{"sender_id":"same","receiver_id":"same","amount":1}"#, 422),
        (#"{"sender_id":"a","receiver_id":"b","amount":0}"#, 422),
        (#"{"sender_id":"a","receiver_id":"b","amount":-1}"#, 422),
        (#"{"sender_id":"a","receiver_id":"b","amount":1.001}"#, 422),
        (#"{"sender_id":"a","receiver_id":"b","amount":1000000000000.01}"#, 422),
        (#"{"sender_id":"a","receiver_id":"b","amount":1e400}"#, 422),
        (#"{"sender_id":"a","receiver_id":"b","amount":1,"status":"completed"}"#, 422),
        (#"{"sender_id":"a","receiver_id":"b","amount":1,"version":2}"#, 422),
        (#"{"sender_id":"a","receiver_id":"b","amount":1,"transfer_id":"\#(TransferID.random())"}"#, 422),
    ]

    @Test(arguments: invalidBodies)
    func invalidBodyIsRejected(body: String, status: Int) throws {
        try expectProblem(try harness.http.postJSON("/transfers", body), status: status)
    }

    @Test func invalidFieldsAreAllListed() throws {
        let response = try harness.http.postJSON("/transfers", #"{"sender_id":"","amount":-1}"#)
        try expectProblem(response, status: 422)
        guard case .object(let problem) = try JSONValue.parse(response.body), case .array(let errors)? = problem["errors"] else {
            Issue.record("no errors list: \(response.bodyText)")
            return
        }
        let fields = errors.compactMap { error -> String? in
            if case .object(let item) = error, case .string(let field)? = item["field"] { return field }
            return nil
        }
        #expect(fields == ["sender_id", "receiver_id", "amount"])
    }

    @Test(arguments: [nil, "text/plain", "application/x-www-form-urlencoded", "application/jsonp"] as [String?])
    func wrongContentTypeIs415(contentType: String?) throws {
        let headers = contentType.map { [("Content-Type", $0)] } ?? []
        let body = Array(#"{"sender_id":"a","receiver_id":"b","amount":1}"#.utf8)
        try expectProblem(try harness.http.send(method: "POST", path: "/transfers", headers: headers, body: body), status: 415)
    }

    @Test func jsonWithCharsetParameterIsAccepted() throws {
        // Accepting a valid request writes, so this one goes to the shared instance.
        let response = try ServiceHarness.shared.http.send(
            method: "POST", path: "/transfers", headers: [("Content-Type", "Application/JSON; charset=utf-8")],
            body: Array(#"{"sender_id":"a","receiver_id":"b","amount":1}"#.utf8)
        )
        #expect(response.status == 202)
    }

    @Test func bodyOverOneMebibyteIs413WithoutBeingRead() throws {
        // Only the head is sent: the answer must come without the server waiting for 100 MiB.
        let head = "POST /transfers HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\nConnection: close\r\n\r\n"
        try expectProblem(try harness.http.sendRaw(Array(head.utf8)), status: 413)
    }

    @Test func chunkedBodyIs411BeforeAnyOfItIsRead() throws {
        var request = "POST /transfers HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        let chunk = String(repeating: " ", count: 64 * 1024)
        for _ in 0..<20 {
            request += String(chunk.utf8.count, radix: 16) + "\r\n" + chunk + "\r\n"
        }
        request += "0\r\n\r\n"
        try expectProblem(try harness.http.sendRaw(Array(request.utf8)), status: 411)
    }

    @Test(arguments: ["/", "/transfer", "/transfers/\(TransferID.random())/extra", "/nope"])
    func unknownPathIs404(path: String) throws {
        try expectProblem(try harness.http.get(path), status: 404)
    }

    @Test(arguments: [
        ("DELETE", "/transfers", "GET, POST"), ("PUT", "/transfers/\(TransferID.random())", "GET"),
        ("GET", "/transfers/\(TransferID.random())/cancel", "POST"),
        // The batch endpoint is its own resource, not a transfer named "batch" (which would be a 400).
        ("GET", "/transfers/batch", "POST"),
    ])
    func wrongMethodIs405WithAllow(method: String, path: String, allowed: String) throws {
        let response = try harness.http.send(method: method, path: path)
        try expectProblem(response, status: 405)
        #expect(response.headers["allow"] == allowed)
    }

    @Test(arguments: ["not-a-uuid", "123", "\(TransferID.random())x", "%20"])
    func nonUUIDIDIs400(id: String) throws {
        try expectProblem(try harness.http.get("/transfers/\(id)"), status: 400)
    }

    @Test func unknownTransferIs404() throws {
        try expectProblem(try harness.http.get("/transfers/\(TransferID.random())"), status: 404)
    }
}
