import Testing
import Transfers

@Suite struct TransferRequestTests {
    @Test func acceptsAValidRequest() throws {
        let request = try TransferRequest(json: Array(#"{"sender_id":"alice","receiver_id":"bob","amount":100.5}"#.utf8))
        #expect(request == TransferRequest(senderID: "alice", receiverID: "bob", amount: Amount(minorUnits: 10050)))
    }

    @Test func acceptsSixtyFourCharacterIDsAndUnicode() throws {
        let long = String(repeating: "é", count: 64)
        let request = try TransferRequest(json: Array(#"{"sender_id":"\#(long)","receiver_id":"счёт-1","amount":1}"#.utf8))
        #expect(request.senderID == long)
    }

    static let invalidBodies: [(String, String)] = [
        (#"{"sender_id":"a","receiver_id":"b","amount":"10"}"#, "amount must be a number, not a string"),
        (#"{"sender_id":"a","receiver_id":"b","amount":0}"#, "amount must be greater than zero"),
        (#"{"sender_id":"a","receiver_id":"b","amount":-5}"#, "amount must be greater than zero"),
        (#"{"sender_id":"a","receiver_id":"b","amount":1.001}"#, "amount must have at most 2 digits after the decimal point"),
        (#"{"sender_id":"a","receiver_id":"b","amount":1000000000000.01}"#, "amount must be at most 1000000000000"),
        (#"{"sender_id":"a","receiver_id":"b","amount":null}"#, "amount must be a number, not null"),
        (#"{"sender_id":"a","receiver_id":"b"}"#, "amount is required"),
        (#"{"receiver_id":"b","amount":1}"#, "sender_id is required"),
        (#"{"sender_id":"a","amount":1}"#, "receiver_id is required"),
        (#"{"sender_id":"","receiver_id":"b","amount":1}"#, "sender_id must not be empty"),
        (#"{"sender_id":"a","receiver_id":"","amount":1}"#, "receiver_id must not be empty"),
        (#"{"sender_id":12,"receiver_id":"b","amount":1}"#, "sender_id must be a string, not a number"),
        (#"{"sender_id":"a","receiver_id":["b"],"amount":1}"#, "receiver_id must be a string, not an array"),
        (#"{"sender_id":"\#(String(repeating: "x", count: 65))","receiver_id":"b","amount":1}"#, "sender_id must be at most 64 characters"),
        (#"{"sender_id":"a\nb","receiver_id":"b","amount":1}"#, "sender_id must not contain control characters"),
        (#"{"sender_id":"a","receiver_id":"b\u007f","amount":1}"#, "receiver_id must not contain control characters"),
        (#"{"sender_id":"a","receiver_id":"b\u0085","amount":1}"#, "receiver_id must not contain control characters"),
        (#"{"sender_id":"same","receiver_id":"same","amount":1}"#, "receiver_id must differ from sender_id"),
        (#"{"sender_id":"a","receiver_id":"b","amount":1,"status":"completed"}"#, "status is not a field of a transfer request"),
        (#"{"sender_id":"a","receiver_id":"b","amount":1,"version":7}"#, "version is not a field of a transfer request"),
        (#"{"sender_id":"a","receiver_id":"b","amount":1,"transfer_id":"x"}"#, "transfer_id is not a field of a transfer request"),
    ]

    @Test(arguments: invalidBodies)
    func rejectsInvalidFields(body: String, problem: String) {
        #expect {
            try TransferRequest(json: Array(body.utf8))
        } throws: { error in
            guard case .invalidFields(let problems, omitted: 0) = error as? TransferValidationError else { return false }
            return problems.map(\.description) == [problem]
        }
    }

    @Test func reportsEveryProblemAtOnce() {
        #expect(throws: TransferValidationError.invalidFields([
            FieldProblem(field: "sender_id", reason: "is required"),
            FieldProblem(field: "receiver_id", reason: "is required"),
            FieldProblem(field: "amount", reason: "is required"),
        ], omitted: 0)) { try TransferRequest(json: Array("{}".utf8)) }
    }

    @Test(arguments: ["", "{", "nope", #"{"sender_id":"a"} trailing"#, #"{"a":1,"a":2}"#])
    func rejectsMalformedJSON(body: String) {
        #expect {
            try TransferRequest(json: Array(body.utf8))
        } throws: { error in
            if case .malformedJSON = error as? TransferValidationError { return true }
            return false
        }
    }

    @Test(arguments: ["[]", "1", "\"text\"", "null", "true"])
    func rejectsJSONThatIsNotAnObject(body: String) {
        #expect {
            try TransferRequest(json: Array(body.utf8))
        } throws: { error in
            if case .notAnObject = error as? TransferValidationError { return true }
            return false
        }
    }
}
