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
public struct JSONObject: Sendable, Equatable {
    /// The members in order.
    public private(set) var members: [(name: String, value: JSONValue)]

    /// An empty object.
    public init() {
        members = []
    }

    /// An object with these members, in this order; a later member replaces an earlier one with the same name.
    public init(_ members: KeyValuePairs<String, JSONValue>) {
        self.members = []
        for (name, value) in members {
            self[name] = value
        }
    }

    /// The value of the member `name`, or nil. Setting replaces it in place, or appends it.
    public subscript(name: String) -> JSONValue? {
        get {
            members.first(where: { $0.name == name })?.value
        }
        set {
            let index = members.firstIndex(where: { $0.name == name })
            switch (index, newValue) {
            case let (index?, value?): members[index].value = value
            case let (index?, nil): members.remove(at: index)
            case let (nil, value?): members.append((name, value))
            case (nil, nil): break
            }
        }
    }

    /// The member names, in order.
    public var names: [String] { members.map(\.name) }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.members.elementsEqual(rhs.members) { $0.name == $1.name && $0.value == $1.value }
    }
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
