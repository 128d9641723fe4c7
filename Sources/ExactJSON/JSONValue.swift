import OrderedCollections

/// A JSON value whose numbers keep their exact source text, so that amounts of money never pass through a
/// binary floating-point number.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// The number exactly as written, e.g. `"100.50"` or `"1e2"`; already checked against JSON's number grammar.
    case number(String)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)
}

/// A JSON object: members in source order, with unique names.
///
/// Members are hashed by name, so reading, adding or replacing one takes constant time and parsing an object of
/// n members takes O(n) (a linear search made a 90,000-member body take 30 s). Swift seeds its string hashing
/// per process, so a client cannot precompute names that collide. Two objects are equal when they have the same
/// members in the same order.
public struct JSONObject: Sendable, Equatable {
    /// The members by name, in order.
    private(set) var storage: OrderedDictionary<String, JSONValue>

    /// An empty object.
    public init() {
        storage = [:]
    }

    /// An object with these members, in this order; a later member replaces an earlier one with the same name.
    public init(_ members: KeyValuePairs<String, JSONValue>) {
        storage = [:]
        storage.reserveCapacity(members.count)
        for (name, value) in members {
            storage[name] = value
        }
    }

    /// The value of the member `name`, or nil. Setting replaces it in place, or appends it; setting nil removes it
    /// (which moves the members after it, so it takes linear time).
    public subscript(name: String) -> JSONValue? {
        get { storage[name] }
        set { storage[name] = newValue }
    }

    /// The members in order (a new array: iterating it takes linear time, like `names`).
    public var members: [(name: String, value: JSONValue)] {
        storage.elements.map { (name: $0.key, value: $0.value) }
    }

    /// The member names, in order.
    public var names: [String] { storage.keys.elements }

    /// How many members there are.
    public var count: Int { storage.count }
}

extension JSONValue {
    /// A short name of this value's type, for error messages ("a string", "an object", ...).
    public var kindDescription: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}
