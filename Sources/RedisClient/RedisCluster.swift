/// A Redis Cluster client: routes each command to the primary serving its key's slot, one `RedisNodeClient`
/// (group commit) per primary, and follows the cluster as it changes (`MOVED`, `ASK`, failovers).
///
/// The slot map comes from `CLUSTER SHARDS` (Redis 7), or `CLUSTER SLOTS` on older servers, asked of a known
/// node or a seed. Credentials and timeouts of the configuration apply to every node; only database 0 exists.
public final class RedisCluster: RedisDeployment {
    /// How the cluster client behaves.
    public struct Options: Sendable, Equatable {
        /// Options of the client of each primary.
        public var node: RedisNodeClient.Options
        /// Slot-map refreshes (after `MOVED` or a failing node) are at least this far apart.
        public var minimumRefreshInterval: Duration
        /// How many redirections (`MOVED`, `ASK`) one command may follow before it fails with `.clusterDown`.
        public var maximumRedirections: Int
        /// The first wait before retrying after `TRYAGAIN` or `CLUSTERDOWN`; it doubles up to `maximumRetryDelay`.
        public var minimumRetryDelay: Duration
        /// The longest wait between retries after `TRYAGAIN` or `CLUSTERDOWN`.
        public var maximumRetryDelay: Duration

        /// Creates options; the defaults refresh at most every 100 ms, follow 5 redirections, and retry from
        /// 10 ms doubling to 200 ms.
        public init(
            node: RedisNodeClient.Options = RedisNodeClient.Options(), minimumRefreshInterval: Duration = .milliseconds(100),
            maximumRedirections: Int = 5, minimumRetryDelay: Duration = .milliseconds(10),
            maximumRetryDelay: Duration = .milliseconds(200)
        ) {
            self.node = node
            self.minimumRefreshInterval = minimumRefreshInterval
            self.maximumRedirections = max(1, maximumRedirections)
            self.minimumRetryDelay = minimumRetryDelay
            self.maximumRetryDelay = max(minimumRetryDelay, maximumRetryDelay)
        }
    }

    /// The nodes asked for the slot map when no known node answers.
    public let seeds: [RedisNodeID]
    /// Credentials and timeouts for every node (its host and port are replaced by each node's).
    public let configuration: RedisConfiguration
    /// The behaviour chosen at creation.
    public let options: Options

    /// Creates the client and tries once to load the slot map (bounded by the connect and command timeouts);
    /// when that fails, submissions fail fast (not sent) until a later refresh succeeds.
    public init(seeds: [RedisNodeID], configuration: RedisConfiguration, options: Options = Options()) {
        self.seeds = seeds
        self.configuration = configuration
        self.options = options
    }

    /// Loads the slot map now, waiting for the answer; throws when no node answers with one.
    public func refreshSlotMap() throws(RedisError) {
        throw RedisError(kind: .connection, message: "not implemented yet")
    }

    public func submit(_ request: RedisRequest, completion: @escaping @Sendable (RedisResponse) -> Void) {
        completion(RedisResponse(failing: request.commands.count, with: RedisError(kind: .connection, message: "not implemented yet"), replicas: request.replicas))
    }

    public func submit(_ request: RedisRequest, to node: RedisNodeID, completion: @escaping @Sendable (RedisResponse) -> Void) {
        submit(request, completion: completion)
    }

    public func primaries() throws(RedisError) -> [RedisNodeDescription] {
        throw RedisError(kind: .connection, message: "not implemented yet")
    }

    public func shutdown() {}
}
