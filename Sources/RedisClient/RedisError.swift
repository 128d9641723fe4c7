/// Why a command failed.
public struct RedisError: Error, Sendable, CustomStringConvertible {
    /// The broad cause, which tells a caller whether retrying on another connection can help.
    public enum Kind: Sendable, Hashable {
        /// The connection could not be established or set up (refused, unreachable, AUTH or SELECT rejected),
        /// or a command was sent on a connection that is already broken.
        case connection
        /// Reading or writing the socket failed, or the server closed the connection.
        case io
        /// The command timeout expired while waiting for the server; the connection is broken.
        case timeout
        /// The server answered with an error reply; the connection is still usable.
        case server
        /// The reply could not be parsed, or the request was malformed before anything was sent.
        case `protocol`
    }

    /// The broad cause.
    public var kind: Kind
    /// A human-readable explanation; for `.server` it is the error reply verbatim (e.g. `NOSCRIPT No matching script...`).
    public var message: String
    /// True when the connection can no longer be used (connection/io/timeout/protocol); false for a server error reply.
    public var isConnectionBroken: Bool

    /// Creates an error; `isConnectionBroken` defaults to true for every kind except `.server`.
    public init(kind: Kind, message: String, isConnectionBroken: Bool? = nil) {
        self.kind = kind
        self.message = message
        self.isConnectionBroken = isConnectionBroken ?? (kind != .server)
    }

    /// The leading upper-case word of a server error reply (e.g. `NOSCRIPT`, `WRONGTYPE`); nil for other kinds.
    public var serverErrorCode: String? {
        guard kind == .server else { return nil }
        let code = message.prefix { $0 != " " }
        return code.isEmpty ? nil : String(code)
    }

    /// A one-line summary such as `Redis server error: WRONGTYPE ...`.
    public var description: String {
        "Redis \(kind) error: \(message)"
    }
}
