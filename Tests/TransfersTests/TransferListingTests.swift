import ExactJSON
import Testing
@testable import Transfers

/// Listing order, the listing query's validation and its cursors.
@Suite struct TransferListingTests {
    static let someID = TransferID("6f1c1f0e-4b8a-4c43-9a57-2f0f3c8f5a10")!
    static let otherID = TransferID("0a1c1f0e-4b8a-4c43-9a57-2f0f3c8f5a10")!

    // MARK: Timestamps and order

    @Test(arguments: [
        ("1970-01-01T00:00:00Z", Int64(0)),
        ("1970-01-01T00:00:00.001Z", 1),
        ("2026-11-26T08:04:39.123Z", 1_795_680_279_123),
        ("2024-02-29T23:59:59.999Z", 1_709_251_199_999),
        ("2000-03-01T00:00:00.5Z", 951_868_800_500),
        ("2026-11-26T08:04:39.123456Z", 1_795_680_279_123),
    ])
    func readsTheServicesTimestamps(text: String, milliseconds: Int64) {
        #expect(RFC3339Timestamp.milliseconds(text) == milliseconds)
    }

    @Test(arguments: [
        "", "2026-11-26", "2026-11-26T08:04:39", "2026-11-26T08:04:39.123", "2026-11-26 08:04:39Z", "2026-13-26T08:04:39Z",
        "2026-11-26T08:04:39.Z", "2026-11-26T08:04:39+01:00", "2026-11-2xT08:04:39Z", "２026-11-26T08:04:39Z",
    ])
    func refusesOtherTimestamps(text: String) {
        #expect(RFC3339Timestamp.milliseconds(text) == nil)
    }

    @Test func newerComesFirstThenTheGreaterID() {
        let older = ListingPosition(createdAtMilliseconds: 1000, id: Self.someID)
        let newer = ListingPosition(createdAtMilliseconds: 1001, id: Self.otherID)
        let tie = ListingPosition(createdAtMilliseconds: 1000, id: Self.otherID)
        #expect([older, tie, newer].sorted() == [newer, older, tie])
    }

    @Test func aRecordWithoutCreatedAtIsListedLast() {
        let transfer = Transfer(id: Self.someID, senderID: "a", receiverID: "b", amount: Amount(minorUnits: 1), status: .completed, version: 2)
        #expect(ListingPosition(of: transfer) == ListingPosition(createdAtMilliseconds: 0, id: Self.someID))
    }

    // MARK: Query

    private func query(_ parameters: [(String, String)]) throws(TransferListingError) -> TransferListingQuery {
        try TransferListingQuery(parameters: parameters.map { (name: $0.0, value: $0.1) })
    }

    private func problems(_ parameters: [(String, String)]) -> [FieldProblem] {
        do {
            _ = try query(parameters)
            return []
        } catch {
            guard case .invalidParameters(let problems, _) = error else { return [] }
            return problems
        }
    }

    /// A flood of unknown parameters is capped like a body's problems, with the count of the rest, and never hides
    /// a problem of the listing's own parameters, wherever it comes in the query.
    @Test func manyUnknownParametersAreCappedAndTheAccountProblemStillListed() {
        let unknown = (1...25).map { ("u\($0)", "1") }
        do {
            _ = try query(unknown + [("account", "")])
            Issue.record("expected the query to be refused")
        } catch {
            guard case .invalidParameters(let problems, let omitted) = error else { return }
            #expect(problems.count == 20)
            #expect(omitted == 6)
            #expect(problems.first?.field == "account")
        }
    }

    @Test func defaults() throws {
        #expect(try query([("account", "alice")]) == TransferListingQuery(account: "alice", role: nil, status: nil, limit: 20, after: nil))
        #expect(try query([("account", "alice"), ("role", "receiver"), ("status", "cancelled"), ("limit", "100")])
            == TransferListingQuery(account: "alice", role: .receiver, status: .cancelled, limit: 100))
    }

    @Test func theAccountIsValidatedLikeASenderWithTheSameMessages() throws {
        for bad in ["", String(repeating: "x", count: 65), "tab\there"] {
            let body = JSONValue.object(JSONObject(["sender_id": .string(bad), "receiver_id": .string("b"), "amount": .number("1")]))
            var expected: [String] = []
            do {
                _ = try TransferRequest(jsonValue: body)
            } catch {
                guard case .invalidFields(let fieldProblems, _) = error else { throw error }
                expected = fieldProblems.filter { $0.field == "sender_id" }.map(\.reason)
            }
            #expect(!expected.isEmpty)
            #expect(problems([("account", bad)]).map(\.reason) == expected)
        }
    }

    @Test func everyProblemIsReportedAtOnce() {
        let found = problems([("limit", "0"), ("role", "payer"), ("status", "done"), ("page", "2"), ("limit", "5")])
        // The listing's own parameters first, then the unknown and repeated ones in query order.
        #expect(found.map(\.field) == ["account", "role", "status", "limit", "page", "limit"])
    }

    @Test(arguments: ["0", "101", "-1", "+5", "1.0", "ten", "", " 5"])
    func limitMustBeOneToAHundred(limit: String) {
        #expect(problems([("account", "a"), ("limit", limit)]).map(\.field) == ["limit"])
    }

    // MARK: Cursors

    @Test func aCursorResumesItsOwnListingOnly() throws {
        let listing = try query([("account", "alice"), ("role", "sender")])
        let position = ListingPosition(createdAtMilliseconds: 1_795_680_279_123, id: Self.someID)
        let cursor = listing.cursor(after: position)
        #expect(try query([("account", "alice"), ("role", "sender"), ("cursor", cursor), ("limit", "7")]).after == position)
        // Another account, role or status: refused.
        for other in [[("account", "bob"), ("role", "sender")], [("account", "alice")], [("account", "alice"), ("role", "receiver")],
                      [("account", "alice"), ("role", "sender"), ("status", "completed")]] {
            #expect(problems(other + [("cursor", cursor)]).map(\.field) == ["cursor"])
        }
    }

    @Test func everyGarbledCursorIsRefused() throws {
        let listing = try query([("account", "alice")])
        let cursor = Array(listing.cursor(after: ListingPosition(createdAtMilliseconds: 42, id: Self.someID)).utf8)
        var refused = 0
        for index in cursor.indices {
            var garbled = cursor
            garbled[index] = garbled[index] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
            refused += problems([("account", "alice"), ("cursor", String(decoding: garbled, as: UTF8.self))]).isEmpty ? 0 : 1
        }
        #expect(refused == cursor.count)
        for text in ["", "abc", String(decoding: cursor, as: UTF8.self).uppercased(), String(decoding: cursor.dropLast(), as: UTF8.self)] {
            #expect(problems([("account", "alice"), ("cursor", text)]).map(\.field) == ["cursor"])
        }
    }

    // MARK: Batches

    private func batch(_ json: String) throws(TransferValidationError) -> TransferBatchRequest {
        try TransferBatchRequest(json: Array(json.utf8))
    }

    @Test func itemsAreValidatedOneByOneLikeSingleCreates() throws {
        let parsed = try batch(#"{"transfers":[{"sender_id":"a","receiver_id":"b","amount":1.50},{"sender_id":"a","receiver_id":"a","amount":1}]}"#)
        #expect(try parsed.items[0].get() == TransferRequest(senderID: "a", receiverID: "b", amount: Amount(minorUnits: 150)))
        #expect(throws: TransferValidationError.invalidFields([FieldProblem(field: "receiver_id", reason: "must differ from sender_id")], omitted: 0)) {
            try parsed.items[1].get()
        }
    }

    @Test(arguments: [
        (#"[]"#, TransferValidationError.notAnObject(found: "an array")),
        (#"{}"#, .invalidFields([FieldProblem(field: "transfers", reason: "is required")], omitted: 0)),
        (#"{"transfers":[]}"#, .invalidFields([FieldProblem(field: "transfers", reason: "must hold at least one transfer")], omitted: 0)),
        (#"{"transfers":{}}"#, .invalidFields([FieldProblem(field: "transfers", reason: "must be an array, not an object")], omitted: 0)),
        (#"{"transfers":[{},"x"],"note":1}"#, .invalidFields([
            FieldProblem(field: "note", reason: "is not a member of a batch"),
            FieldProblem(field: "transfers[1]", reason: "must be an object, not a string"),
        ], omitted: 0)),
    ])
    func aBodyThatIsNotABatchIsRefusedWhole(json: String, error: TransferValidationError) {
        #expect(throws: error) { try batch(json) }
    }

    @Test func atMostAThousandItems() throws {
        let item = #"{"sender_id":"a","receiver_id":"b","amount":1}"#
        #expect(try batch(#"{"transfers":["# + Array(repeating: item, count: 1000).joined(separator: ",") + "]}").items.count == 1000)
        #expect(throws: TransferValidationError.invalidFields([FieldProblem(field: "transfers", reason: "must hold at most 1000 transfers, not 1001")], omitted: 0)) {
            try batch(#"{"transfers":["# + Array(repeating: item, count: 1001).joined(separator: ",") + "]}")
        }
    }

    @Test func theFingerprintIgnoresFormattingButNotContentOrOrder() throws {
        let first = try batch(#"{"transfers":[{"sender_id":"a","receiver_id":"b","amount":1.50},{"sender_id":"c","receiver_id":"c","amount":1}]}"#)
        let reformatted = try batch(#"{ "transfers": [ {"amount": 1.5, "receiver_id": "b", "sender_id": "a"}, {"sender_id":"c","receiver_id":"c","amount":1} ] }"#)
        let reordered = try batch(#"{"transfers":[{"sender_id":"c","receiver_id":"c","amount":1},{"sender_id":"a","receiver_id":"b","amount":1.5}]}"#)
        let changed = try batch(#"{"transfers":[{"sender_id":"a","receiver_id":"b","amount":1.51},{"sender_id":"c","receiver_id":"c","amount":1}]}"#)
        #expect(first.fingerprint == reformatted.fingerprint)
        #expect(first.fingerprint != reordered.fingerprint)
        #expect(first.fingerprint != changed.fingerprint)
    }

    @Test func batchItemIDsAreDerivedPerItemAndNeverEqualASingleCreates() {
        let ids = (0..<3).map { TransferID.derived(fromIdempotencyKey: "k", scope: "", batchItem: $0) }
        #expect(Set(ids).count == 3)
        #expect(ids[0] == TransferID.derived(fromIdempotencyKey: "k", scope: "", batchItem: 0))
        #expect(!ids.contains(TransferID.derived(fromIdempotencyKey: "k", scope: "")))
        #expect(ids[0] != TransferID.derived(fromIdempotencyKey: "k", scope: "ab", batchItem: 0))
        #expect(ids[0] != TransferID.derived(fromIdempotencyKey: "k2", scope: "", batchItem: 0))
    }
}
