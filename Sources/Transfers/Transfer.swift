import ExactJSON

/// Where a transfer is in its life.
public enum TransferStatus: String, Sendable, Hashable, CaseIterable {
    case initiated
    case completed
    case cancelled
}

/// A money transfer: the record stored under `transfer:<id>` and the event published to Kafka.
public struct Transfer: Sendable, Hashable {
    public var id: TransferID
    public var senderID: String
    public var receiverID: String
    public var amount: Amount
    public var status: TransferStatus
    /// Grows by one with every change; the consumer's optimistic check compares it.
    public var version: Int
    /// When it was created (RFC 3339, UTC); nil for records written by the original sketch.
    public var createdAt: String?
    /// When this version was made (RFC 3339, UTC); nil for records written by the original sketch.
    public var updatedAt: String?

    public init(
        id: TransferID, senderID: String, receiverID: String, amount: Amount, status: TransferStatus, version: Int,
        createdAt: String? = nil, updatedAt: String? = nil
    ) {
        self.id = id
        self.senderID = senderID
        self.receiverID = receiverID
        self.amount = amount
        self.status = status
        self.version = version
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    /// A new transfer from a validated request: status `initiated`, version 1, created `at` the given time.
    public static func initiate(_ request: TransferRequest, id: TransferID, at time: String) -> Transfer {
        Transfer(
            id: id, senderID: request.senderID, receiverID: request.receiverID, amount: request.amount,
            status: .initiated, version: 1, createdAt: time, updatedAt: time
        )
    }
}

// MARK: - The version rule

extension Transfer {
    /// The state after the consumer processes this transfer's event: `completed`, one version later.
    public func completed(at time: String) -> Transfer {
        changed(to: .completed, at: time)
    }

    /// The state after a client cancels it, if the client saw the current version and it is still `initiated`.
    public func cancelled(expectedVersion: Int, at time: String) throws(CancellationRefusal) -> Transfer {
        guard expectedVersion == version else { throw .versionMismatch(currentVersion: version) }
        guard status == .initiated else { throw .notCancellable(status: status) }
        return changed(to: .cancelled, at: time)
    }

    private func changed(to status: TransferStatus, at time: String) -> Transfer {
        var next = self
        next.status = status
        next.version = version + 1
        next.updatedAt = time
        return next
    }
}

/// Why a transfer cannot be cancelled.
public enum CancellationRefusal: Error, Sendable, Equatable {
    /// The client's version is not the current one: it must read the transfer again.
    case versionMismatch(currentVersion: Int)
    /// It is no longer `initiated` (already completed or cancelled).
    case notCancellable(status: TransferStatus)
}

/// What processing an event did to the stored transfer. Redis applies the rule atomically in a script;
/// this type names its outcomes.
public enum CompletionOutcome: Sendable, Equatable {
    /// The stored version equalled the event's: the transfer is now completed, one version later.
    case completed
    /// The stored version differed from the event's (a redelivery, a stale event or a newer change): nothing changed.
    case conflict(storedVersion: Int)
    /// Nothing was ever stored under the event's id: the record was created from the event, as completed.
    case recreated
    /// The record is gone but the transfer existed (it has a history: deleted, or expired after its retention):
    /// nothing changed. A finished transfer is never brought back, least of all a cancelled one as completed.
    case gone

    /// What Redis holds for an event's transfer when the rule is applied.
    public enum StoredState: Sendable, Equatable {
        /// A record at this version.
        case present(version: Int)
        /// No record; `existedBefore` when the transfer has a history (it was deleted or expired).
        case absent(existedBefore: Bool)
    }

    /// The rule: apply when the versions are equal, recreate when nothing was ever stored, otherwise change nothing.
    public static func decide(eventVersion: Int, stored: StoredState) -> CompletionOutcome {
        switch stored {
        case .present(let version): version == eventVersion ? .completed : .conflict(storedVersion: version)
        case .absent(let existedBefore): existedBefore ? .gone : .recreated
        }
    }
}

// MARK: - JSON

extension Transfer {
    /// The JSON object: the sketch's six fields in the sketch's order, then the timestamps when known.
    public var jsonObject: JSONObject {
        var object = JSONObject([
            "transfer_id": .string(id.rawValue),
            "sender_id": .string(senderID),
            "receiver_id": .string(receiverID),
            "amount": .number(amount.jsonNumber),
            "status": .string(status.rawValue),
            "version": .number(String(version)),
        ])
        if let createdAt { object["created_at"] = .string(createdAt) }
        if let updatedAt { object["updated_at"] = .string(updatedAt) }
        return object
    }

    /// The compact JSON text of `jsonObject`: what is stored in Redis and published to Kafka.
    ///
    /// Written field by field rather than through `jsonObject` (the same text): every create and every completion
    /// renders one, and building the ordered dictionary first took most of the rendering time.
    public var json: String {
        var output = ""
        output.reserveCapacity(256)
        output += #"{"transfer_id":"#
        JSONValue.writeString(id.rawValue, to: &output)
        output += #","sender_id":"#
        JSONValue.writeString(senderID, to: &output)
        output += #","receiver_id":"#
        JSONValue.writeString(receiverID, to: &output)
        output += #","amount":"#
        output += amount.jsonNumber
        output += #","status":"#
        JSONValue.writeString(status.rawValue, to: &output)
        output += #","version":"#
        output += String(version)
        if let createdAt {
            output += #","created_at":"#
            JSONValue.writeString(createdAt, to: &output)
        }
        if let updatedAt {
            output += #","updated_at":"#
            JSONValue.writeString(updatedAt, to: &output)
        }
        output += "}"
        return output
    }

    /// Reads a stored record or an event: the six fields must be present and well-typed; others are ignored
    /// (records written by the sketch's own code have exactly these six).
    public init(json bytes: some Collection<UInt8>) throws(TransferDecodingError) {
        let value: JSONValue
        do {
            value = try JSONValue.parse(bytes)
        } catch {
            throw TransferDecodingError(reason: "not JSON: \(error)")
        }
        guard case .object(let object) = value else {
            throw TransferDecodingError(reason: "not a JSON object")
        }
        func string(_ name: String) throws(TransferDecodingError) -> String {
            guard case .string(let text)? = object[name] else {
                throw TransferDecodingError(reason: "\(name) must be a string")
            }
            return text
        }
        func number(_ name: String) throws(TransferDecodingError) -> String {
            guard case .number(let text)? = object[name] else {
                throw TransferDecodingError(reason: "\(name) must be a number")
            }
            return text
        }
        guard let id = TransferID(try string("transfer_id")) else {
            throw TransferDecodingError(reason: "transfer_id must be a UUID")
        }
        guard let status = TransferStatus(rawValue: try string("status")) else {
            throw TransferDecodingError(reason: "status is unknown")
        }
        // The sketch's Python writes integers; accept `1.0` too, but never a fractional or huge version.
        guard let version = DecimalText(try number("version")).flatMap(Transfer.integer(from:)), version >= 1 else {
            throw TransferDecodingError(reason: "version must be a positive integer")
        }
        let amount: Amount
        do {
            amount = try Amount(jsonNumber: try number("amount"))
        } catch {
            throw TransferDecodingError(reason: "amount \(error)")
        }
        func optionalString(_ name: String) throws(TransferDecodingError) -> String? {
            object[name] == nil || object[name] == .null ? nil : try string(name)
        }
        self.init(
            id: id, senderID: try string("sender_id"), receiverID: try string("receiver_id"),
            amount: amount, status: status, version: version,
            createdAt: try optionalString("created_at"), updatedAt: try optionalString("updated_at")
        )
    }

    private static func integer(from decimal: DecimalText) -> Int? {
        guard !decimal.isNegative, decimal.scale <= 0, decimal.digits.count - decimal.scale <= 15 else { return nil }
        var value = 0
        for digit in decimal.digits { value = value * 10 + Int(digit) }
        for _ in 0 ..< -decimal.scale { value *= 10 }
        return value
    }
}

/// Why a stored record or an event could not be read as a transfer.
public struct TransferDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
}

// MARK: - Validation of records from elsewhere

extension Transfer {
    /// What a client's create request with this transfer's parties and amount would be refused for (empty when it
    /// would be accepted). A record recreated from an event must pass the checks a request passes.
    public var requestProblems: [FieldProblem] {
        let request = JSONValue.object(JSONObject([
            "sender_id": .string(senderID), "receiver_id": .string(receiverID), "amount": .number(amount.jsonNumber),
        ]))
        do {
            _ = try TransferRequest(json: Array(request.serialized.utf8))
            return []
        } catch {
            if case .invalidFields(let problems, _) = error { return problems }
            return [FieldProblem(field: "transfer", reason: error.description)]
        }
    }
}
