/// Why a command failed.
public struct RedisError: Error, Sendable, CustomStringConvertible {
    /// The broad cause, which tells a caller whether retrying on another connection can help.
    public enum Kind: Sendable, Hashable {
        /// The connection could not be established or set up (refused, unreachable, SELECT rejected), the node is
        /// waiting out its reconnect backoff, the client was shut down, or a command was sent on a connection that
        /// is already broken.
        case connection
        /// The server refused our credentials (`AUTH` rejected, `WRONGPASS`) or wants some (`NOAUTH`): a
        /// configuration problem, not an outage. The command was not executed.
        case authentication
        /// Reading or writing the socket failed, or the server closed the connection.
        case io
        /// The command timeout expired while waiting for the server; the connection is broken.
        case timeout
        /// The server answered with an error reply; the connection is still usable.
        case server
        /// The reply could not be parsed, or the request was malformed before anything was sent.
        case `protocol`
        /// The request's deadline passed while the command was still queued; it was never sent.
        case deadlineExceeded
        /// The cluster did not serve the key's slot before the deadline: `CLUSTERDOWN` or `TRYAGAIN` persisted,
        /// redirections did not settle, or no primary is known for the slot. The command was not executed.
        case clusterDown
    }

    /// The broad cause.
    public var kind: Kind
    /// A human-readable explanation; for `.server` it is the error reply verbatim (e.g. `NOSCRIPT No matching script...`).
    public var message: String
    /// True when the connection can no longer be used (connection/io/timeout/protocol); false for a server error reply.
    public var isConnectionBroken: Bool
    /// False only when the command certainly did not run: it was never written to a socket (connect failed, the
    /// node was in backoff, the deadline passed while it was queued) or the server refused it before running it
    /// (`NOAUTH`, `CLUSTERDOWN`, `TRYAGAIN`). True when it was written and no reply was read (timeout, connection
    /// reset): the server may or may not have run it, and a write may or may not have happened.
    public var mayHaveExecuted: Bool

    /// Creates an error. `isConnectionBroken` defaults to false for `.server`, `.deadlineExceeded` and
    /// `.clusterDown`, true for the other kinds; `mayHaveExecuted` defaults to true for `.io`,
    /// `.timeout`, `.protocol` and `.server` (a failing script may have written before failing), false otherwise.
    public init(kind: Kind, message: String, isConnectionBroken: Bool? = nil, mayHaveExecuted: Bool? = nil) {
        self.kind = kind
        self.message = message
        switch kind {
        case .server, .deadlineExceeded, .clusterDown:
            self.isConnectionBroken = isConnectionBroken ?? false
        case .connection, .authentication, .io, .timeout, .protocol:
            self.isConnectionBroken = isConnectionBroken ?? true
        }
        switch kind {
        case .io, .timeout, .protocol, .server:
            self.mayHaveExecuted = mayHaveExecuted ?? true
        case .connection, .authentication, .deadlineExceeded, .clusterDown:
            self.mayHaveExecuted = mayHaveExecuted ?? false
        }
    }

    /// The leading upper-case word of a server error reply (e.g. `NOSCRIPT`, `WRONGTYPE`); nil for other kinds.
    public var serverErrorCode: String? {
        guard kind == .server else { return nil }
        return Self.errorCode(of: message)
    }

    /// A one-line summary such as `Redis server error: WRONGTYPE ...`.
    public var description: String {
        "Redis \(kind) error: \(message)"
    }

    /// The first word of an error reply (`MOVED`, `NOSCRIPT`, ...), or nil for an empty message.
    static func errorCode(of message: String) -> String? {
        let code = message.prefix { $0 != " " }
        return code.isEmpty ? nil : String(code)
    }

    /// True for an error reply by which the server refused to run a command for now, without running any of it:
    /// it is loading its dataset after a restart (`LOADING`), busy with a long script (`BUSY`), out of memory or
    /// unable to persist (`OOM`, `MISCONF`), short of replicas (`NOREPLICAS`), a replica that lost its primary or
    /// cannot take writes (`MASTERDOWN`, `READONLY`), or a cluster not serving the slot (`CLUSTERDOWN`, `TRYAGAIN`,
    /// and `MOVED`/`ASK` where no one follows them). Trying again later can succeed.
    public static func isTransientRefusal(_ message: String) -> Bool {
        switch errorCode(of: message) {
        case "LOADING", "BUSY", "OOM", "MISCONF", "NOREPLICAS", "MASTERDOWN", "READONLY", "CLUSTERDOWN", "TRYAGAIN", "MOVED", "ASK": true
        default: false
        }
    }

    /// True for an error reply saying the credentials are missing or wrong.
    public static func isAuthenticationFailure(_ message: String) -> Bool {
        switch errorCode(of: message) {
        case "NOAUTH", "WRONGPASS": true
        // Servers before ACLs (and `AUTH` sent to a server without a password) answer with a plain ERR.
        case "ERR": message.contains("invalid password") || message.contains("without any password configured")
            || message.contains("invalid username-password")
        default: false
        }
    }
}
