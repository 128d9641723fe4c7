/// A client for one Redis server with group commit: a few connections, each owned by its own thread, each
/// sending everything queued since its last round trip as one pipeline.
///
/// Conforms to `RedisDeployment` as a single Redis (one primary serving every slot); `RedisCluster` runs one per
/// primary.
public final class RedisNodeClient: RedisDeployment {
    /// How a node client behaves; the defaults suit an HTTP service with a handful of worker threads.
    public struct Options: Sendable, Equatable {
        /// Connections (each with its own thread) to the server.
        public var connections: Int
        /// At most this many commands go into one pipeline; more wait for the next one.
        public var maximumPipelineCommands: Int
        /// The first wait after a failed connect.
        public var minimumReconnectDelay: Duration
        /// The longest wait between connect attempts while the server stays away.
        public var maximumReconnectDelay: Duration

        /// Creates options; the defaults are 2 connections, 1,024 commands per pipeline, a reconnect backoff from
        /// 50 ms doubling to 1 s.
        public init(
            connections: Int = 2, maximumPipelineCommands: Int = 1024,
            minimumReconnectDelay: Duration = .milliseconds(50), maximumReconnectDelay: Duration = .seconds(1)
        ) {
            self.connections = max(1, connections)
            self.maximumPipelineCommands = max(1, maximumPipelineCommands)
            self.minimumReconnectDelay = minimumReconnectDelay
            self.maximumReconnectDelay = max(minimumReconnectDelay, maximumReconnectDelay)
        }
    }

    /// How every connection is made (host, port, credentials, timeouts).
    public let configuration: RedisConfiguration
    /// The behaviour chosen at creation.
    public let options: Options
    /// The server's address.
    public var id: RedisNodeID { RedisNodeID(host: configuration.host, port: configuration.port) }

    /// Starts the connection threads; they connect on first use.
    public init(configuration: RedisConfiguration, options: Options = Options()) {
        self.configuration = configuration
        self.options = options
    }

    public func submit(_ request: RedisRequest, completion: @escaping @Sendable (RedisResponse) -> Void) {
        completion(RedisResponse(failing: request.commands.count, with: RedisError(kind: .connection, message: "not implemented yet"), replicas: request.replicas))
    }

    public func submit(_ request: RedisRequest, to node: RedisNodeID, completion: @escaping @Sendable (RedisResponse) -> Void) {
        submit(request, completion: completion)
    }

    public func primaries() throws(RedisError) -> [RedisNodeDescription] {
        [RedisNodeDescription(id: id, slots: [RedisSlot.all])]
    }

    public func shutdown() {}
}
