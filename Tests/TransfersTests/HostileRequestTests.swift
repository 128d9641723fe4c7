import Testing
import Transfers

/// Request bodies shaped to make the answer huge: the error lists at most 20 problems and counts the rest, and
/// never echoes a member name longer than 64 characters.
@Suite struct HostileRequestTests {
    @Test func ninetyThousandUnknownMembersGiveTwentyProblemsAndACount() {
        var body = "{"
        for index in 0..<90_000 {
            body += (index > 0 ? "," : "") + "\"k\(index)\":0"
        }
        body += "}"
        #expect {
            try TransferRequest(json: Array(body.utf8))
        } throws: { error in
            guard case .invalidFields(let problems, let omitted) = error as? TransferValidationError else { return false }
            let unknown = (0..<17).map { FieldProblem(field: "k\($0)", reason: "is not a field of a transfer request") }
            return problems == [
                FieldProblem(field: "sender_id", reason: "is required"),
                FieldProblem(field: "receiver_id", reason: "is required"),
                FieldProblem(field: "amount", reason: "is required"),
            ] + unknown && omitted == 90_003 - 20
        }
    }

    @Test func theDescriptionCountsWhatItLeavesOut() {
        let problems = (0..<20).map { FieldProblem(field: "k\($0)", reason: "is not a field of a transfer request") }
        let many = TransferValidationError.invalidFields(problems, omitted: 7).description
        #expect(many.hasSuffix("k19 is not a field of a transfer request; and 7 more problems not listed."))
        let one = TransferValidationError.invalidFields(problems, omitted: 1).description
        #expect(one.hasSuffix("; and 1 more problem not listed."))
        let none = TransferValidationError.invalidFields([problems[0]], omitted: 0).description
        #expect(none == "k0 is not a field of a transfer request.")
    }

    @Test func aMebibyteMemberNameIsCutInTheProblem() {
        let name = String(repeating: "x", count: 1 << 20)
        let body = #"{"sender_id":"a","receiver_id":"b","amount":1,"\#(name)":0}"#
        #expect(throws: TransferValidationError.invalidFields([
            FieldProblem(field: String(repeating: "x", count: 64) + "…", reason: "is not a field of a transfer request"),
        ], omitted: 0)) { try TransferRequest(json: Array(body.utf8)) }
    }

    @Test func fieldNamesAreCutByUnicodeScalarsNotCharacters() {
        // One character (a base and a million combining accents) must not slip through a per-character limit.
        let name = "e" + String(repeating: "\u{301}", count: 1 << 20)
        let problem = FieldProblem(field: name, reason: "is not a field of a transfer request")
        #expect(problem.field.unicodeScalars.count == FieldProblem.maximumFieldLength + 1)
        #expect(FieldProblem(field: String(repeating: "y", count: 64), reason: "r").field == String(repeating: "y", count: 64))
    }

    @Test func theListedProblemsAreCappedAtTwenty() {
        #expect(TransferValidationError.maximumListedProblems == 20)
        var body = #"{"sender_id":1,"receiver_id":2,"amount":"3""#
        for index in 0..<20 { body += ",\"u\(index)\":0" }
        body += "}"
        #expect {
            try TransferRequest(json: Array(body.utf8))
        } throws: { error in
            guard case .invalidFields(let problems, let omitted) = error as? TransferValidationError else { return false }
            return problems.count == 20 && problems.first?.field == "sender_id" && problems.last?.field == "u16"
                && omitted == 3
        }
    }
}
