import Crypto
import ExactJSON

/// A client's request to create many transfers at once (`{"transfers": [...]}`), validated as a whole: the body
/// must be a batch; each item is then validated on its own, exactly like the body of a single create.
public struct TransferBatchRequest: Sendable {
    /// The most items one batch may hold.
    public static let maximumItems = 1000

    /// One per item, in request order: the valid request, or why it is not one.
    public var items: [Result<TransferRequest, TransferValidationError>]
    /// The batch in one canonical text, hashed (lowercase hex SHA-256): equal exactly when two batches hold the same
    /// items in the same order, formatting aside. A repeated `Idempotency-Key` must come with the same batch.
    public var fingerprint: String

    /// Parses a body. Whole-body problems throw: not JSON, not an object (`malformedJSON`, `notAnObject`), or not a
    /// batch (`invalidFields`: no `transfers` array, an unknown member, 0 or more than `maximumItems` items, an
    /// item that is not an object). Items with invalid fields do not throw: they are failed items.
    public init(json bytes: some Collection<UInt8>) throws(TransferValidationError) {
        let value = try TransferValidationError.parse(bytes)
        guard case .object(let object) = value else {
            throw .notAnObject(found: value.kindDescription)
        }
        // Capped like a single create's: 1,000 items that are not objects get a short answer.
        var problems = FieldProblemList()
        for name in object.names where name != "transfers" {
            problems.append(FieldProblem(field: name, reason: "is not a member of a batch"))
        }
        var elements: [JSONValue] = []
        switch object["transfers"] {
        case nil:
            problems.append(FieldProblem(field: "transfers", reason: "is required"))
        case .array(let array)?:
            if array.isEmpty {
                problems.append(FieldProblem(field: "transfers", reason: "must hold at least one transfer"))
            } else if array.count > Self.maximumItems {
                problems.append(FieldProblem(field: "transfers", reason: "must hold at most \(Self.maximumItems) transfers, not \(array.count)"))
            } else {
                elements = array
            }
        case let other?:
            problems.append(FieldProblem(field: "transfers", reason: "must be an array, not \(other.kindDescription)"))
        }
        for (index, element) in elements.enumerated() {
            if case .object = element { continue }
            problems.append(FieldProblem(field: "transfers[\(index)]", reason: "must be an object, not \(element.kindDescription)"))
        }
        guard problems.isEmpty else { throw .invalidFields(problems.listed, omitted: problems.omitted) }

        items = elements.map { element in Result { () throws(TransferValidationError) in try TransferRequest(jsonValue: element) } }
        var canonical: [UInt8] = []
        for (element, item) in zip(elements, items) {
            // A valid item by its fingerprint (formatting aside), an invalid one by its compact JSON; JSON texts never
            // hold a raw newline, so the lines are unambiguous.
            switch item {
            case .success(let request): canonical += Array(request.fingerprint.utf8)
            case .failure: canonical += Array("invalid \(element.serialized)".utf8)
            }
            canonical.append(UInt8(ascii: "\n"))
        }
        fingerprint = Hex.encode(SHA256.hash(data: canonical))
    }
}

extension TransferValidationError {
    /// A request body as one JSON value, or `malformedJSON`.
    static func parse(_ bytes: some Collection<UInt8>) throws(TransferValidationError) -> JSONValue {
        do {
            return try JSONValue.parse(bytes)
        } catch {
            throw .malformedJSON(error.description)
        }
    }
}

extension TransferID {
    /// The namespace of ids derived for the items of a keyed batch: another fixed random UUID of this service.
    static let batchItemNamespace: [UInt8] = [
        0x9a, 0x47, 0x0e, 0xc3, 0x5f, 0x21, 0x4b, 0x88, 0xb6, 0x1d, 0x72, 0xe9, 0x04, 0x3c, 0xa5, 0x5b,
    ]

    /// The id of item `index` of a batch sent with `idempotencyKey` by `scope` (see `derived(fromIdempotencyKey:scope:)`):
    /// each item's idempotency record then lives in its own transfer's hash slot, and a repeated batch names the same
    /// transfers. Ids of batch items never equal ids of single creates (another namespace).
    public static func derived(fromIdempotencyKey idempotencyKey: String, scope: String, batchItem index: Int) -> TransferID {
        var name = batchItemNamespace
        // Neither the scope (hex) nor the key (printable ASCII) contains a newline.
        name.append(contentsOf: "\(scope)\n\(idempotencyKey)\n\(index)".utf8)
        return nameBased(name)
    }
}
