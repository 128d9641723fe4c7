import ExactJSON
import Testing
import Transfers

@Suite struct TransferTests {
    let id = TransferID("3f2b8c1e-4a5d-4e6f-8a9b-0c1d2e3f4a5b")!

    @Test func initiatedTransferIsVersionOne() {
        let request = TransferRequest(senderID: "a", receiverID: "b", amount: Amount(minorUnits: 10050))
        let transfer = Transfer.initiate(request, id: id, at: "2026-11-26T08:00:00.000Z")
        #expect(transfer.status == .initiated)
        #expect(transfer.version == 1)
        #expect(transfer.json == #"{"transfer_id":"3f2b8c1e-4a5d-4e6f-8a9b-0c1d2e3f4a5b","sender_id":"a","receiver_id":"b","amount":100.5,"status":"initiated","version":1,"created_at":"2026-11-26T08:00:00.000Z","updated_at":"2026-11-26T08:00:00.000Z"}"#)
    }

    /// `json` is written field by field for speed; it must stay the text of `jsonObject`.
    @Test func jsonIsTheSerializedJSONObject() throws {
        let parties = ["a", "alice", "quote\"back\\slash", "tab\tnew\nline\u{01}", "ünïcødé €", String(repeating: "x", count: 64)]
        for (index, sender) in parties.enumerated() {
            for timestamps in [nil, "2026-11-26T08:00:00.000Z"] as [String?] {
                let transfer = Transfer(
                    id: id, senderID: sender, receiverID: parties[(index + 1) % parties.count], amount: Amount(minorUnits: Int64(index * 1001 + 7)),
                    status: TransferStatus.allCases[index % 3], version: index + 1, createdAt: timestamps, updatedAt: timestamps.map { $0 + "x" }
                )
                #expect(transfer.json == JSONValue.object(transfer.jsonObject).serialized)
                #expect(try Transfer(json: Array(transfer.json.utf8)) == transfer)
            }
        }
    }

    @Test func completingIncrementsTheVersionAndStampsTheChange() {
        let transfer = Transfer(
            id: id, senderID: "a", receiverID: "b", amount: Amount(minorUnits: 1), status: .initiated, version: 1,
            createdAt: "2026-11-26T08:00:00.000Z", updatedAt: "2026-11-26T08:00:00.000Z"
        )
        let completed = transfer.completed(at: "2026-11-26T08:00:01.000Z")
        #expect(completed.status == .completed)
        #expect(completed.version == 2)
        #expect(completed.amount == transfer.amount)
        #expect(completed.createdAt == "2026-11-26T08:00:00.000Z")
        #expect(completed.updatedAt == "2026-11-26T08:00:01.000Z")
    }

    @Test func cancellingNeedsTheCurrentVersionAndAnInitiatedTransfer() throws {
        let transfer = Transfer(id: id, senderID: "a", receiverID: "b", amount: Amount(minorUnits: 1), status: .initiated, version: 1)
        let cancelled = try transfer.cancelled(expectedVersion: 1, at: "t")
        #expect(cancelled.status == .cancelled)
        #expect(cancelled.version == 2)
        #expect(throws: CancellationRefusal.versionMismatch(currentVersion: 1)) { try transfer.cancelled(expectedVersion: 2, at: "t") }
        #expect(throws: CancellationRefusal.notCancellable(status: .cancelled)) { try cancelled.cancelled(expectedVersion: 2, at: "t") }
        let completed = transfer.completed(at: "t")
        #expect(throws: CancellationRefusal.notCancellable(status: .completed)) { try completed.cancelled(expectedVersion: 2, at: "t") }
    }

    @Test func fingerprintIgnoresFormattingButNotMeaning() throws {
        let a = try TransferRequest(json: Array(#"{"sender_id":"a","receiver_id":"b","amount":1.50}"#.utf8))
        let b = try TransferRequest(json: Array(#"{ "amount": 15e-1, "receiver_id": "b", "sender_id": "a" }"#.utf8))
        let c = try TransferRequest(json: Array(#"{"sender_id":"a","receiver_id":"b","amount":1.51}"#.utf8))
        #expect(a.fingerprint == b.fingerprint)
        #expect(a.fingerprint != c.fingerprint)
    }

    @Test(arguments: [
        (1, CompletionOutcome.StoredState.present(version: 1), CompletionOutcome.completed),
        (1, .present(version: 2), .conflict(storedVersion: 2)),
        (2, .present(version: 1), .conflict(storedVersion: 1)),
        (1, .absent(existedBefore: false), .recreated),
        (1, .absent(existedBefore: true), .gone),
    ])
    func versionRule(eventVersion: Int, stored: CompletionOutcome.StoredState, outcome: CompletionOutcome) {
        #expect(CompletionOutcome.decide(eventVersion: eventVersion, stored: stored) == outcome)
    }

    @Test func readsARecordWrittenByTheSketch() throws {
        // Python's json.dumps: spaces after separators, a float amount.
        let sketch = #"{"transfer_id": "3F2B8C1E-4A5D-4E6F-8A9B-0C1D2E3F4A5B", "sender_id": "a", "receiver_id": "b", "amount": 100.5, "status": "initiated", "version": 1}"#
        let transfer = try Transfer(json: Array(sketch.utf8))
        #expect(transfer == Transfer(id: id, senderID: "a", receiverID: "b", amount: Amount(minorUnits: 10050), status: .initiated, version: 1))
    }

    @Test(arguments: [
        "not json", "[]", #"{"transfer_id":"x","sender_id":"a","receiver_id":"b","amount":1,"status":"initiated","version":1}"#,
        #"{"transfer_id":"3f2b8c1e-4a5d-4e6f-8a9b-0c1d2e3f4a5b","sender_id":"a","receiver_id":"b","amount":1,"status":"odd","version":1}"#,
        #"{"transfer_id":"3f2b8c1e-4a5d-4e6f-8a9b-0c1d2e3f4a5b","sender_id":"a","receiver_id":"b","amount":1,"status":"initiated","version":1.5}"#,
        #"{"transfer_id":"3f2b8c1e-4a5d-4e6f-8a9b-0c1d2e3f4a5b","sender_id":"a","receiver_id":"b","amount":1,"status":"initiated","version":"1"}"#,
        #"{"transfer_id":"3f2b8c1e-4a5d-4e6f-8a9b-0c1d2e3f4a5b","sender_id":"a","receiver_id":"b","amount":0.001,"status":"initiated","version":1}"#,
        #"{"transfer_id":"3f2b8c1e-4a5d-4e6f-8a9b-0c1d2e3f4a5b","receiver_id":"b","amount":1,"status":"initiated","version":1}"#,
    ])
    func rejectsRecordsThatAreNotTransfers(text: String) {
        #expect(throws: TransferDecodingError.self) { try Transfer(json: Array(text.utf8)) }
    }

    @Test func randomIDsAreLowercaseVersion4UUIDs() {
        for _ in 0..<100 {
            let text = TransferID.random().rawValue
            #expect(text.count == 36)
            #expect(text == text.lowercased())
            #expect(Array(text)[14] == "4")
            #expect("89ab".contains(Array(text)[19]))
            #expect(TransferID(text)?.rawValue == text)
        }
    }

    @Test func idsDerivedFromAnIdempotencyKeyAreStandardVersion5UUIDsPerScope() {
        // Expected values from Python's uuid.uuid5 with the same namespace and name.
        #expect(TransferID.derived(fromIdempotencyKey: "order-4711", scope: "").rawValue == "b824249e-bf03-5c7a-948b-8e594857c5ab")
        #expect(TransferID.derived(fromIdempotencyKey: "order-4711", scope: "abc").rawValue == "5ea45a97-0367-5aea-b019-2e76ebe6e42b")
        #expect(TransferID.derived(fromIdempotencyKey: "order-4711", scope: "abc") == TransferID.derived(fromIdempotencyKey: "order-4711", scope: "abc"))
    }

    @Test(arguments: ["", "nope", "3f2b8c1e4a5d4e6f8a9b0c1d2e3f4a5b", "3f2b8c1e-4a5d-4e6f-8a9b-0c1d2e3f4a5", "3f2b8c1e-4a5d-4e6f-8a9b-0c1d2e3f4a5g"])
    func rejectsTextThatIsNotAUUID(text: String) {
        #expect(TransferID(text) == nil)
    }
}
