/// Where and how to connect.
public struct RedisConfiguration: Sendable, Equatable {
    /// Host name or IP address of the server.
    public var host: String
    /// TCP port of the server.
    public var port: Int
    /// The ACL user to authenticate as (`AUTH username password`); nil: the default user (`AUTH password`).
    public var username: String?
    /// When set, `AUTH` is sent right after connecting.
    public var password: String?
    /// When not 0, `SELECT database` is sent right after connecting.
    public var database: Int
    /// How long establishing the TCP connection may take; `.zero` means no limit.
    public var connectTimeout: Duration
    /// How long one read or write on the socket may block; `.zero` means no limit. A reply that takes longer
    /// breaks the connection (`.timeout`, maybe executed), so `RedisNodeClient` keeps each `WAIT` within half of it.
    public var commandTimeout: Duration

    /// Creates a configuration; the defaults match a local, unauthenticated Redis.
    public init(
        host: String = "localhost", port: Int = 6379, username: String? = nil, password: String? = nil, database: Int = 0,
        connectTimeout: Duration = .seconds(2), commandTimeout: Duration = .seconds(2)
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
    }
}
