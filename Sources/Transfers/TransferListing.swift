import Crypto
import ExactJSON

/// Where a transfer stands in an account's listing. Listings are newest first: by creation time, then by id, both
/// descending, so every transfer has one fixed place and a walk can resume right after any of them.
public struct ListingPosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// `created_at` in milliseconds since the Unix epoch; 0 when the record has none (written by the original
    /// sketch), which places it after every timestamped transfer.
    public var createdAtMilliseconds: Int64
    public var id: TransferID

    public init(createdAtMilliseconds: Int64, id: TransferID) {
        self.createdAtMilliseconds = max(0, createdAtMilliseconds)
        self.id = id
    }

    /// The position of a stored transfer, from its own `created_at` and id.
    public init(of transfer: Transfer) {
        self.init(createdAtMilliseconds: transfer.createdAt.flatMap(RFC3339Timestamp.milliseconds) ?? 0, id: transfer.id)
    }

    /// True when `lhs` is listed before `rhs` (it is newer, or equally old with a greater id).
    public static func < (lhs: ListingPosition, rhs: ListingPosition) -> Bool {
        if lhs.createdAtMilliseconds != rhs.createdAtMilliseconds { return lhs.createdAtMilliseconds > rhs.createdAtMilliseconds }
        return lhs.id.rawValue > rhs.id.rawValue
    }

    public var description: String { "\(createdAtMilliseconds):\(id)" }
}

/// The part an account plays in a transfer.
public enum PartyRole: String, Sendable, Hashable, CaseIterable {
    case sender
    case receiver
}

/// A validated request for one page of an account's transfers (`GET /transfers?account=...`).
public struct TransferListingQuery: Sendable, Equatable {
    /// Items per page when the client names no limit.
    public static let defaultLimit = 20
    /// The most items one page may ask for.
    public static let maximumLimit = 100
    /// The query parameters a client may send.
    public static let parameterNames = ["account", "role", "status", "limit", "cursor"]

    /// The party whose transfers are listed; validated like `sender_id`.
    public var account: String
    /// Only transfers where the account plays this part; nil: both.
    public var role: PartyRole?
    /// Only transfers currently in this status; nil: any.
    public var status: TransferStatus?
    /// At most this many transfers on the page.
    public var limit: Int
    /// The page starts right after this position (from the cursor); nil: at the newest transfer.
    public var after: ListingPosition?

    public init(account: String, role: PartyRole? = nil, status: TransferStatus? = nil, limit: Int = defaultLimit, after: ListingPosition? = nil) {
        self.account = account
        self.role = role
        self.status = status
        self.limit = limit
        self.after = after
    }

    /// Validates the decoded query parameters (name, value), in order. Every problem is reported at once.
    public init(parameters: [(name: String, value: String)]) throws(TransferListingError) {
        // Capped like a body's problems: a query of thousands of unknown parameters gets a short answer. The listing's
        // own parameters are checked first, so their problems are listed whatever comes after them.
        var problems = FieldProblemList()
        var values: [String: String] = [:]
        for (name, value) in parameters where Self.parameterNames.contains(name) && values[name] == nil {
            values[name] = value
        }
        var account: String?
        if let text = values["account"] {
            account = TransferRequest.partyID("account", in: JSONObject(["account": .string(text)]), problems: &problems)
        } else {
            problems.append(FieldProblem(field: "account", reason: "is required"))
        }
        var role: PartyRole?
        if let text = values["role"] {
            role = PartyRole(rawValue: text)
            if role == nil { problems.append(FieldProblem(field: "role", reason: "must be sender or receiver")) }
        }
        var status: TransferStatus?
        if let text = values["status"] {
            status = TransferStatus(rawValue: text)
            if status == nil {
                problems.append(FieldProblem(field: "status", reason: "must be one of \(TransferStatus.allCases.map(\.rawValue).joined(separator: ", "))"))
            }
        }
        var limit = Self.defaultLimit
        if let text = values["limit"] {
            if let number = Int(text), text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
               (1...Self.maximumLimit).contains(number) {
                limit = number
            } else {
                problems.append(FieldProblem(field: "limit", reason: "must be a whole number from 1 to \(Self.maximumLimit)"))
            }
        }
        var seen: Set<String> = []
        for (name, _) in parameters {
            if !Self.parameterNames.contains(name) {
                problems.append(FieldProblem(field: name, reason: "is not a parameter of this listing"))
            } else if !seen.insert(name).inserted {
                problems.append(FieldProblem(field: name, reason: "must be given once"))
            }
        }
        guard problems.isEmpty, let account else { throw .invalidParameters(problems.listed, omitted: problems.omitted) }
        self.init(account: account, role: role, status: status, limit: limit)
        if let cursor = values["cursor"] {
            guard let position = ListingCursor.decode(cursor, for: self) else {
                throw .invalidParameters([FieldProblem(field: "cursor", reason: "is not a cursor of this listing (it must be a next_cursor, unchanged, from the same account, role and status)")], omitted: 0)
            }
            after = position
        }
    }

    /// The cursor of the page that starts right after `position`.
    public func cursor(after position: ListingPosition) -> String {
        ListingCursor.encode(position, for: self)
    }
}

/// Why a listing request is refused.
public enum TransferListingError: Error, Sendable, Equatable {
    /// Parameters missing, unknown, repeated or invalid, including a cursor that is not one of this listing's.
    /// The problems (at most 20), and how many more there were.
    case invalidParameters([FieldProblem], omitted: Int)
}

/// The opaque `next_cursor` of a listing: the position of the last transfer a page examined, bound to the listing
/// it came from. Hex of: a format byte, the position's milliseconds (8 bytes) and id (16 bytes), and 8 bytes of
/// SHA-256 over those and the listing's account, role and status. A garbled cursor, or one from another listing,
/// fails the check. It is a checksum, not a signature: whoever forges a cursor can only start a listing they
/// could read anyway at a place of their choosing.
enum ListingCursor {
    static let format: UInt8 = 1

    static func encode(_ position: ListingPosition, for query: TransferListingQuery) -> String {
        let bytes = body(position)
        return Hex.encode(bytes + check(bytes, query))
    }

    static func decode(_ text: String, for query: TransferListingQuery) -> ListingPosition? {
        guard text.utf8.count == 66, let bytes = Hex.decode(text), bytes[0] == format else { return nil }
        var milliseconds: Int64 = 0
        for byte in bytes[1..<9] { milliseconds = milliseconds << 8 | Int64(byte) }
        guard milliseconds >= 0, check(Array(bytes[0..<25]), query) == Array(bytes[25...]) else { return nil }
        return ListingPosition(createdAtMilliseconds: milliseconds, id: TransferID(uuidBytes: Array(bytes[9..<25])))
    }

    private static func body(_ position: ListingPosition) -> [UInt8] {
        var bytes: [UInt8] = [format]
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: position.createdAtMilliseconds >> Int64(shift))) }
        bytes += position.id.uuidBytes
        return bytes
    }

    private static func check(_ body: [UInt8], _ query: TransferListingQuery) -> [UInt8] {
        // The account cannot contain a newline (no control characters), so the fields are unambiguous.
        var input = body
        input += Array("\n\(query.account)\n\(query.role?.rawValue ?? "")\n\(query.status?.rawValue ?? "")".utf8)
        return Array(SHA256.hash(data: input).prefix(8))
    }
}

extension TransferID {
    /// The 16 bytes of the UUID.
    var uuidBytes: [UInt8] {
        // The raw value is canonical lowercase hex with dashes, so this cannot fail.
        Hex.decode(rawValue.replacing("-", with: "")) ?? []
    }
}
