import Dispatch

/// A Redis deployment, one server (`RedisNodeClient`) or a Redis Cluster (`RedisCluster`), that runs requests
/// without blocking the caller.
///
/// Completions run on the client's own threads: keep them short (hand the response over, do not block), since the
/// next pipeline of that connection waits for them.
public protocol RedisDeployment: Sendable {
    /// Queues the request; `completion` runs exactly once, on a client thread, by the deadline (plus the time of
    /// one round trip already under way). After `shutdown()` it runs at once, on the caller's thread.
    func submit(_ request: RedisRequest, completion: @escaping @Sendable (RedisResponse) -> Void)

    /// Runs the request's commands on one given primary, whatever their keys (PING, TIME, INFO, a script over
    /// several slots of that node). Redirections (`MOVED`, `ASK`) come back as error replies, not followed.
    /// A node that is not a known primary fails every command with `.clusterDown` (not sent).
    func submit(_ request: RedisRequest, to node: RedisNodeID, completion: @escaping @Sendable (RedisResponse) -> Void)

    /// The primaries and the slots each serves; a single Redis is one node serving every slot.
    /// Throws when the deployment's topology cannot be learned (no node answers).
    func primaries() throws(RedisError) -> [RedisNodeDescription]

    /// Fails whatever is queued (`.connection`, not sent), closes the connections and stops the client's
    /// threads; waits for commands already on the wire. Later submissions fail at once.
    func shutdown()
}

extension RedisDeployment {
    /// Submits the request and waits for its response: for threads that may block (tools, tests, background
    /// loops). Never call it from a completion: that thread would wait for itself.
    public func execute(_ request: RedisRequest) -> RedisResponse {
        let waiter = RedisResponseWaiter()
        submit(request) { waiter.deliver($0) }
        return waiter.wait()
    }

    /// `execute` on one given primary (see `submit(_:to:completion:)`).
    public func execute(_ request: RedisRequest, on node: RedisNodeID) -> RedisResponse {
        let waiter = RedisResponseWaiter()
        submit(request, to: node) { waiter.deliver($0) }
        return waiter.wait()
    }
}

/// Where a Redis server listens; in a cluster it names a node.
public struct RedisNodeID: Hashable, Sendable, CustomStringConvertible {
    /// Host name or IP address.
    public var host: String
    /// TCP port.
    public var port: Int

    /// Creates an address.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` (the port after the last colon, so `::1:6379` works); nil when that is not the shape.
    public init?(_ text: some StringProtocol) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.init(host: host, port: port)
    }

    /// `host:port`.
    public var description: String { "\(host):\(port)" }
}

/// A primary of a deployment and what it serves.
public struct RedisNodeDescription: Sendable, Equatable {
    /// Where the primary listens.
    public var id: RedisNodeID
    /// The slot ranges it serves, ascending; `[0...16383]` for a single Redis.
    public var slots: [ClosedRange<Int>]
    /// Its replicas as the cluster last reported them (empty for a single Redis).
    public var replicas: [RedisNodeID]

    /// Creates a description.
    public init(id: RedisNodeID, slots: [ClosedRange<Int>], replicas: [RedisNodeID] = []) {
        self.id = id
        self.slots = slots
        self.replicas = replicas
    }
}

/// Hands one response from a client thread (a `submit` completion) to one thread that waits for it: `execute`,
/// or a caller that sends now and reads the response later.
public final class RedisResponseWaiter: @unchecked Sendable {
    // @unchecked Sendable is safe: `response` is written once before `signal` and read after `wait`, which orders them.
    private var response: RedisResponse?
    private let semaphore = DispatchSemaphore(value: 0)

    /// Creates a waiter with no response yet.
    public init() {}

    /// Stores the response and wakes the waiting thread; call it exactly once.
    public func deliver(_ response: RedisResponse) {
        self.response = response
        semaphore.signal()
    }

    /// Blocks until `deliver` has run, then returns its response; call it exactly once.
    public func wait() -> RedisResponse {
        semaphore.wait()
        return response!
    }
}
