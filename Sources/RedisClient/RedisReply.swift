/// A reply from the server.
public indirect enum RedisReply: Sendable, Equatable {
    /// A simple status such as `OK` or `QUEUED`.
    case status(String)
    /// An error reply, e.g. `WRONGTYPE Operation against a key holding the wrong kind of value`.
    case error(String)
    /// An integer reply.
    case integer(Int64)
    /// A bulk string, as raw bytes (binary safe).
    case string([UInt8])
    /// A nil bulk string or nil array (missing key, timed-out blocking pop, ...).
    case null
    /// A multi-bulk reply.
    case array([RedisReply])

    /// A bulk string or status decoded as UTF-8; nil for other replies or bytes that are not valid UTF-8.
    public var string: String? {
        switch self {
        case .string(let bytes): String(validating: bytes, as: UTF8.self)
        case .status(let text): text
        default: nil
        }
    }

    /// The raw bytes of a bulk string; nil for other replies.
    public var bytes: [UInt8]? {
        if case .string(let bytes) = self { bytes } else { nil }
    }

    /// The value of an integer reply; nil for other replies.
    public var integer: Int64? {
        if case .integer(let value) = self { value } else { nil }
    }

    /// The elements of an array reply; nil for other replies.
    public var array: [RedisReply]? {
        if case .array(let elements) = self { elements } else { nil }
    }

    /// True for a nil reply.
    public var isNull: Bool {
        self == .null
    }

    /// The message of an error reply; nil for other replies.
    public var errorMessage: String? {
        if case .error(let message) = self { message } else { nil }
    }
}
