import ExactJSON
import ServiceTestSupport
import TestSupport
import Testing
import Transfers

/// Bodies under the 1 MiB limit that are built to be expensive: tens of thousands of members, a member name of
/// a megabyte. Each gets a short problem answer, and nothing is written. They use the validation suite's
/// service, whose Redis stays empty.
@Suite struct HostileBodyTests {
    var harness: ServiceHarness { RequestValidationTests.harness }

    /// The problem body of a response that must be an invalid-fields 422; records an issue otherwise.
    private func invalidFieldsProblem(_ response: HTTPTestResponse, sourceLocation: SourceLocation = #_sourceLocation) throws -> JSONObject? {
        #expect(response.status == 422, "\(response.bodyText.prefix(500))", sourceLocation: sourceLocation)
        #expect(response.headers["content-type"] == "application/problem+json", sourceLocation: sourceLocation)
        #expect(try harness.keyCount() == 0, "nothing may be written", sourceLocation: sourceLocation)
        guard case .object(let problem) = try JSONValue.parse(response.body) else {
            Issue.record("not a JSON object: \(response.bodyText.prefix(500))", sourceLocation: sourceLocation)
            return nil
        }
        return problem
    }

    private func fields(of problem: JSONObject) -> [String] {
        guard case .array(let errors)? = problem["errors"] else { return [] }
        return errors.compactMap { error -> String? in
            if case .object(let item) = error, case .string(let field)? = item["field"] { return field }
            return nil
        }
    }

    @Test func ninetyThousandMembersGetAShort422() throws {
        var body = "{"
        for index in 0..<90_000 {
            body += (index > 0 ? "," : "") + "\"k\(index)\":0"
        }
        body += "}"
        #expect(body.utf8.count < 1 << 20)

        let response = try harness.http.postJSON("/transfers", body)
        guard let problem = try invalidFieldsProblem(response) else { return }
        let fields = fields(of: problem)
        #expect(fields.count == 20)
        #expect(Array(fields.prefix(4)) == ["sender_id", "receiver_id", "amount", "k0"])
        #expect(problem["errors_omitted"] == .number("89983"))
        guard case .string(let detail)? = problem["detail"] else {
            Issue.record("no detail")
            return
        }
        #expect(detail.hasSuffix("; and 89983 more problems not listed."))
        #expect(response.body.count < 4096, "the answer must not grow with the body: \(response.body.count) bytes")
    }

    @Test func aMebibyteMemberNameIsNotEchoedWhole() throws {
        let name = String(repeating: "x", count: (1 << 20) - 100)
        let response = try harness.http.postJSON("/transfers", #"{"sender_id":"a","receiver_id":"b","amount":1,"\#(name)":0}"#)
        guard let problem = try invalidFieldsProblem(response) else { return }
        #expect(fields(of: problem) == [String(repeating: "x", count: 64) + "…"])
        #expect(problem["errors_omitted"] == .number("0"))
        #expect(response.body.count < 1024)
    }

    @Test func aDuplicatedHalfMebibyteNameGetsAShort400() throws {
        let name = String(repeating: "d", count: (1 << 19) - 100)
        let response = try harness.http.postJSON("/transfers", #"{"\#(name)":1,"\#(name)":2}"#)
        #expect(response.status == 400)
        #expect(response.body.count < 1024)
        #expect(try harness.keyCount() == 0)
    }

    @Test func deepMixedNestingGetsA400() throws {
        let response = try harness.http.postJSON("/transfers", String(repeating: #"{"a":["#, count: 50_000))
        #expect(response.status == 400)
        #expect(response.bodyText.contains("nesting is too deep"))
        #expect(try harness.keyCount() == 0)
    }
}
