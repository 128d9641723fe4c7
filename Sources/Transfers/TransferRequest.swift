import ExactJSON

/// A client's request to create a transfer, validated.
public struct TransferRequest: Sendable, Hashable {
    /// The longest sender or receiver id accepted, in Unicode code points (what JSON Schema's maxLength counts).
    public static let maximumPartyIDLength = 64
    /// The fields a client may send; anything else (including `transfer_id`, `status`, `version`) is refused.
    public static let fieldNames = ["sender_id", "receiver_id", "amount"]

    public var senderID: String
    public var receiverID: String
    public var amount: Amount

    /// Parses and validates a request body. Every problem with the fields is reported at once.
    public init(json bytes: some Collection<UInt8>) throws(TransferValidationError) {
        try self.init(jsonValue: TransferValidationError.parse(bytes))
    }

    /// Validates an already parsed request (an item of a batch) like a body: the same problems, the same messages.
    public init(jsonValue value: JSONValue) throws(TransferValidationError) {
        guard case .object(let object) = value else {
            throw .notAnObject(found: value.kindDescription)
        }

        // The fields a transfer needs are checked first, so their problems are listed even when a body has
        // thousands of unknown members; those follow in body order.
        var problems = FieldProblemList()
        let senderID = Self.partyID("sender_id", in: object, problems: &problems)
        let receiverID = Self.partyID("receiver_id", in: object, problems: &problems)
        // Compared as bytes, as they are stored and indexed: Swift's String equality would call "é" and "e" with a
        // combining accent the same party.
        if let senderID, let receiverID, senderID.utf8.elementsEqual(receiverID.utf8) {
            problems.append(FieldProblem(field: "receiver_id", reason: "must differ from sender_id"))
        }
        var amount: Amount?
        switch object["amount"] {
        case nil:
            problems.append(FieldProblem(field: "amount", reason: "is required"))
        case .number(let text)?:
            do {
                amount = try Amount(jsonNumber: text)
            } catch {
                problems.append(FieldProblem(field: "amount", reason: error.description))
            }
        case let other?:
            problems.append(FieldProblem(field: "amount", reason: "must be a number, not \(other.kindDescription)"))
        }
        for name in object.names where !Self.fieldNames.contains(name) {
            problems.append(FieldProblem(field: name, reason: "is not a field of a transfer request"))
        }

        guard problems.isEmpty, let senderID, let receiverID, let amount else {
            throw .invalidFields(problems.listed, omitted: problems.omitted)
        }
        self.senderID = senderID
        self.receiverID = receiverID
        self.amount = amount
    }

    /// The request in one canonical text (fields in a fixed order, the amount in cents), so that two requests
    /// mean the same thing exactly when their fingerprints are equal, whatever their formatting.
    public var fingerprint: String {
        JSONValue.array([.string(senderID), .string(receiverID), .number(String(amount.minorUnits))]).serialized
    }

    /// A request from already-valid parts (for tests and tools).
    public init(senderID: String, receiverID: String, amount: Amount) {
        self.senderID = senderID
        self.receiverID = receiverID
        self.amount = amount
    }

    /// The party id in member `name`, or nil with its problems appended (also validates a listing's `account`).
    static func partyID(_ name: String, in object: JSONObject, problems: inout FieldProblemList) -> String? {
        let problemCount = problems.count
        switch object[name] {
        case nil:
            problems.append(FieldProblem(field: name, reason: "is required"))
        case .string(let text)?:
            let length = text.unicodeScalars.count
            if length == 0 {
                problems.append(FieldProblem(field: name, reason: "must not be empty"))
            } else if length > maximumPartyIDLength {
                problems.append(FieldProblem(field: name, reason: "must be at most \(maximumPartyIDLength) characters"))
            }
            // Unicode's control characters (general category Cc) are exactly C0, DEL and C1.
            if text.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }) {
                problems.append(FieldProblem(field: name, reason: "must not contain control characters"))
            }
            if problems.count == problemCount { return text }
        case let other?:
            problems.append(FieldProblem(field: name, reason: "must be a string, not \(other.kindDescription)"))
        }
        return nil
    }
}

/// One thing wrong with one field of a request.
public struct FieldProblem: Sendable, Hashable, CustomStringConvertible {
    /// The longest field name kept, in Unicode scalars; a longer (unknown) member name is cut and ends in "…", so
    /// that a hostile name of a megabyte is not echoed back whole.
    public static let maximumFieldLength = 64

    /// The JSON member name, cut to `maximumFieldLength`.
    public var field: String
    /// What is wrong, completing the sentence "<field> ...".
    public var reason: String

    public init(field: String, reason: String) {
        self.field = Self.excerpt(of: field)
        self.reason = reason
    }

    public var description: String { "\(field) \(reason)" }

    private static func excerpt(of name: String) -> String {
        guard name.unicodeScalars.dropFirst(maximumFieldLength).first != nil else { return name }
        return String(name.unicodeScalars.prefix(maximumFieldLength)) + "…"
    }
}

/// The problems found in one request: the first `TransferValidationError.maximumListedProblems` are kept, the
/// rest only counted, so a body of 90,000 unknown members yields a short answer.
struct FieldProblemList {
    private(set) var listed: [FieldProblem] = []
    private(set) var omitted = 0

    var count: Int { listed.count + omitted }
    var isEmpty: Bool { count == 0 }

    mutating func append(_ problem: FieldProblem) {
        if listed.count < TransferValidationError.maximumListedProblems {
            listed.append(problem)
        } else {
            omitted += 1
        }
    }
}

/// Why a request body is not a valid transfer request.
public enum TransferValidationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The most field problems one error lists; the others are only counted.
    public static let maximumListedProblems = 20

    /// The body is not a single JSON value.
    case malformedJSON(String)
    /// The body is JSON, but not an object.
    case notAnObject(found: String)
    /// The body is an object with missing, unknown or invalid fields: at most `maximumListedProblems` of them,
    /// and how many more there were.
    case invalidFields([FieldProblem], omitted: Int)

    public var description: String {
        switch self {
        case .malformedJSON(let reason): "The body is not valid JSON: \(reason)."
        case .notAnObject(let found): "The body must be a JSON object, not \(found)."
        case .invalidFields(let problems, let omitted):
            problems.map(\.description).joined(separator: "; ")
                + (omitted > 0 ? "; and \(omitted) more problem\(omitted == 1 ? "" : "s") not listed." : ".")
        }
    }
}
