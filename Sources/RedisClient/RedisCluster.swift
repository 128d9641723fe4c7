import Dispatch
import Synchronization

/// A Redis Cluster client: routes each command to the primary serving its key's slot, one `RedisNodeClient`
/// (group commit) per primary, and follows the cluster as it changes (`MOVED`, `ASK`, failovers).
///
/// The slot map comes from `CLUSTER SHARDS` (Redis 7), or `CLUSTER SLOTS` on older servers, asked of a known
/// node or a seed. Credentials and timeouts of the configuration apply to every node; only database 0 exists.
///
/// A request's commands are split per node; each node gets its part as one submission (one pipeline, in order),
/// and the response is reassembled in the request's order once every part is done. `MOVED` resends to the new
/// owner and refreshes the map; `ASK` resends once to the target after `ASKING`; `TRYAGAIN` and `CLUSTERDOWN`
/// are retried with a short backoff while the deadline allows, then fail with `.clusterDown`. A node that cannot
/// be reached fails its commands fast (not sent) and triggers a refresh, which is how a promoted replica is found.
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
    /// Credentials and timeouts for every node (its host and port are replaced by each node's; database 0).
    public let configuration: RedisConfiguration
    /// The behaviour chosen at creation.
    public let options: Options

    /// The current slot map, immutable, read on every submission without a lock; a replaced map is freed once no
    /// reader is routing with it.
    private let currentMap = ReplaceableReference<SlotMap>()
    /// One client per node ever routed to (primaries, redirection targets, nodes asked for the map).
    private let nodeClients = Mutex<[RedisNodeID: RedisNodeClient]>([:])
    private let refresh = Mutex(RefreshState())
    private let refreshQueue = DispatchQueue(label: "RedisCluster.refresh")
    private let retryQueue = DispatchQueue(label: "RedisCluster.retry")
    private let keylessRotation = Atomic<Int>(0)
    private let isShutDown = Atomic<Bool>(false)

    /// Creates the client and tries once to load the slot map (bounded by the connect and command timeouts);
    /// when that fails, submissions fail fast (not sent) until a later refresh succeeds.
    public init(seeds: [RedisNodeID], configuration: RedisConfiguration, options: Options = Options()) {
        self.seeds = seeds
        var configuration = configuration
        configuration.database = 0
        self.configuration = configuration
        self.options = options
        do {
            try refreshSlotMap()
        } catch {
            refresh.withLock { $0.lastError = error }
        }
    }

    deinit {
        shutdown()
    }

    /// Loads the slot map now, waiting for the answer; throws when no node answers with one. Do not call it from a
    /// completion.
    public func refreshSlotMap() throws(RedisError) {
        var lastError = RedisError(kind: .clusterDown, message: "no cluster node is known (no seeds given)")
        for candidate in refreshCandidates() {
            if isShutDown.load(ordering: .relaxed) {
                throw RedisError(kind: .connection, message: "the Redis Cluster client was shut down")
            }
            do {
                let shards = try askForShards(nodeClient(for: candidate))
                publish(shards)
                refresh.withLock { $0.lastError = nil }
                return
            } catch {
                lastError = error
            }
        }
        refresh.withLock { $0.lastError = lastError }
        throw lastError
    }

    public func submit(_ request: RedisRequest, completion: @escaping @Sendable (RedisResponse) -> Void) {
        let operation = ClusterOperation(request: request, cluster: self, completion: completion)
        guard !request.commands.isEmpty else {
            operation.finish()
            return
        }
        let routes = currentMap.read { map in map.map { route(request.commands.indices, of: request.commands, in: $0) } }
        guard let routes else {
            requestRefresh()
            let error = refresh.withLock { $0.lastError } ?? RedisError(kind: .clusterDown, message: "the slot map is not known yet")
            var unsent = error
            unsent.mayHaveExecuted = false
            operation.failAll(with: unsent)
            return
        }
        operation.start(routes: routes)
    }

    /// Runs the request on the primary `node`, whatever the keys; redirections come back as error replies.
    public func submit(_ request: RedisRequest, to node: RedisNodeID, completion: @escaping @Sendable (RedisResponse) -> Void) {
        guard let client = currentMap.read({ $0?.nodes.first { $0.id == node } }) else {
            requestRefresh()
            let error = RedisError(kind: .clusterDown, message: "\(node) is not a primary of the cluster (as last known)")
            completion(RedisResponse(failing: request.commands.count, with: error, replicas: request.replicas))
            return
        }
        client.submit(request, completion: completion)
    }

    /// The primaries and their slot ranges, from the current map (loaded now when there is none yet).
    public func primaries() throws(RedisError) -> [RedisNodeDescription] {
        if currentMap.read({ $0 == nil }) { try refreshSlotMap() }
        guard let descriptions = currentMap.read({ $0?.descriptions }) else {
            throw RedisError(kind: .clusterDown, message: "the slot map is not known")
        }
        return descriptions
    }

    public func shutdown() {
        guard !isShutDown.exchange(true, ordering: .sequentiallyConsistent) else { return }
        let clients = nodeClients.withLock { Array($0.values) }
        for client in clients { client.shutdown() }
    }

    // MARK: routing

    /// Groups commands by the node serving their slot; keyless ones join the request's first keyed command (or
    /// take turns over the primaries when none has a key).
    fileprivate func route(_ indices: some Collection<Int>, of commands: [RedisCommand], in map: SlotMap) -> [Route] {
        var routes: [Route] = []
        var keyless: [Int] = []
        for index in indices {
            guard let key = commands[index].key else {
                keyless.append(index)
                continue
            }
            let slot = RedisSlot.of(key: key)
            guard let node = map.owner(of: slot) else {
                routes.append(Route(node: nil, indices: [index], slot: slot))
                continue
            }
            if let existing = routes.firstIndex(where: { $0.node === node }) {
                routes[existing].indices.append(index)
            } else {
                routes.append(Route(node: node, indices: [index], slot: slot))
            }
        }
        if !keyless.isEmpty {
            if let first = routes.firstIndex(where: { $0.node != nil }) {
                routes[first].indices.append(contentsOf: keyless)
                routes[first].indices.sort()
            } else if !map.nodes.isEmpty {
                let turn = keylessRotation.add(1, ordering: .relaxed).oldValue
                routes.append(Route(node: map.nodes[turn % map.nodes.count], indices: keyless, slot: nil))
            } else {
                routes.append(Route(node: nil, indices: keyless, slot: nil))
            }
        }
        return routes
    }

    /// The primary serving `slot` now, for a command that failed on another node.
    fileprivate func currentOwner(of slot: Int) -> RedisNodeClient? {
        currentMap.read { $0?.owner(of: slot) }
    }

    /// The client of the node at `id`, made on first use.
    fileprivate func nodeClient(for id: RedisNodeID) -> RedisNodeClient {
        nodeClients.withLock { clients in
            if let existing = clients[id] { return existing }
            var nodeConfiguration = configuration
            nodeConfiguration.host = id.host
            nodeConfiguration.port = id.port
            let client = RedisNodeClient(configuration: nodeConfiguration, options: options.node)
            if isShutDown.load(ordering: .relaxed) { client.shutdown() }
            clients[id] = client
            return client
        }
    }

    fileprivate func schedule(after delay: Duration, _ work: @escaping @Sendable () -> Void) {
        retryQueue.asyncAfter(deadline: .now() + .nanoseconds(Int(delay / .nanoseconds(1))), execute: work)
    }

    /// Runs `body` with the current slot map (nil while none is known); `body` must not keep the map.
    fileprivate func withSlotMap<Result>(_ body: (SlotMap?) -> Result) -> Result {
        currentMap.read(body)
    }

    /// Replaced slot maps not yet freed (for tests).
    var replacedSlotMapCount: Int { currentMap.replacedCount }

    // MARK: slot map

    /// Schedules a refresh, at most one at a time and `minimumRefreshInterval` apart.
    fileprivate func requestRefresh() {
        let now = ContinuousClock.now
        let delay: Duration? = refresh.withLock { state in
            guard !state.isScheduled else { return nil }
            state.isScheduled = true
            guard let last = state.lastStarted else { return .zero }
            return max(.zero, last + options.minimumRefreshInterval - now)
        }
        guard let delay, !isShutDown.load(ordering: .relaxed) else { return }
        refreshQueue.asyncAfter(deadline: .now() + .nanoseconds(Int(delay / .nanoseconds(1)))) { [self] in
            refresh.withLock { state in
                state.isScheduled = false
                state.lastStarted = .now
            }
            try? refreshSlotMap()
        }
    }

    /// Who to ask for the map: the primaries we know, then the seeds, then the replicas we know.
    private func refreshCandidates() -> [RedisNodeID] {
        let descriptions = currentMap.read { $0?.descriptions } ?? []
        var candidates: [RedisNodeID] = []
        var seen: Set<RedisNodeID> = []
        for id in descriptions.map(\.id) + seeds + descriptions.flatMap(\.replicas)
        where seen.insert(id).inserted {
            candidates.append(id)
        }
        return candidates
    }

    /// Asks one node for the shards: CLUSTER SHARDS, or CLUSTER SLOTS on a server older than Redis 7.
    private func askForShards(_ client: RedisNodeClient) throws(RedisError) -> [ClusterShard] {
        let timeout = configuration.commandTimeout > .zero ? configuration.commandTimeout : .seconds(5)
        let shards = try client.execute(RedisRequest([.command(["CLUSTER", "SHARDS"], key: nil)], timeout: timeout)).replies[0].get()
        if let message = shards.errorMessage {
            guard message.lowercased().contains("unknown subcommand") else {
                throw RedisError(kind: .clusterDown, message: "CLUSTER SHARDS on \(client.id): \(message)")
            }
            let slots = try client.execute(RedisRequest([.command(["CLUSTER", "SLOTS"], key: nil)], timeout: timeout)).replies[0].get()
            return try ClusterShard.parse(slots: slots, askedHost: client.id.host)
        }
        return try ClusterShard.parse(shards: shards, askedHost: client.id.host)
    }

    /// Publishes a map built from `shards` unless it equals the current one.
    private func publish(_ shards: [ClusterShard]) {
        let primaries = shards.compactMap { shard in shard.primary.map { (shard, nodeClient(for: $0)) } }
        let map = SlotMap(shards: primaries)
        currentMap.replace(with: map) { $0.descriptions == $1.descriptions }
    }
}

/// Which slots each primary serves, immutable once built.
final class SlotMap: Sendable {
    /// The primaries, in shard order.
    let nodes: [RedisNodeClient]
    let descriptions: [RedisNodeDescription]
    /// Per slot: an index into `nodes`, or `unassigned`.
    private let owners: [UInt16]
    private static let unassigned = UInt16.max

    init(shards: [(ClusterShard, RedisNodeClient)]) {
        var owners = [UInt16](repeating: Self.unassigned, count: RedisSlot.count)
        var nodes: [RedisNodeClient] = []
        var descriptions: [RedisNodeDescription] = []
        for (shard, client) in shards where !shard.slots.isEmpty {
            if let existing = nodes.firstIndex(where: { $0 === client }) {
                // Redis lists a primary once; be safe if a reply repeats one.
                descriptions[existing].slots += shard.slots
                for range in shard.slots { for slot in range { owners[slot] = UInt16(existing) } }
                continue
            }
            for range in shard.slots { for slot in range { owners[slot] = UInt16(nodes.count) } }
            nodes.append(client)
            descriptions.append(RedisNodeDescription(id: client.id, slots: shard.slots, replicas: shard.replicas))
        }
        for index in descriptions.indices { descriptions[index].slots.sort { $0.lowerBound < $1.lowerBound } }
        self.owners = owners
        self.nodes = nodes
        self.descriptions = descriptions
    }

    func owner(of slot: Int) -> RedisNodeClient? {
        let index = owners[slot]
        return index == Self.unassigned ? nil : nodes[Int(index)]
    }
}

/// When the slot map was last asked for, and why the last attempt failed.
private struct RefreshState {
    var isScheduled = false
    var lastStarted: ContinuousClock.Instant?
    var lastError: RedisError?
}

/// Commands of one request bound for one node.
struct Route {
    /// nil: no primary serves the slot.
    var node: RedisNodeClient?
    var indices: [Int]
    /// The slot of the first keyed command, for re-routing after a failure.
    var slot: Int?
    /// Send each command after ASKING (an ASK redirection).
    var isAsking = false
}

/// One request on its way through the cluster: its parts, redirections and retries, and the reassembled replies.
final class ClusterOperation: Sendable {
    private let request: RedisRequest
    private let cluster: RedisCluster
    private let completion: @Sendable (RedisResponse) -> Void
    private let state: Mutex<State>

    private struct State {
        var replies: [Result<RedisReply, RedisError>?]
        var redirections: [Int]
        var retries: [Int]
        /// Parts sent or scheduled and not yet back.
        var outstanding = 0
        /// Per command, the replicas confirming the writes of the part (node) that answered it; nil while no part
        /// that wrote something answered it.
        var acknowledged: [Int?]
    }

    init(request: RedisRequest, cluster: RedisCluster, completion: @escaping @Sendable (RedisResponse) -> Void) {
        self.request = request
        self.cluster = cluster
        self.completion = completion
        let count = request.commands.count
        state = Mutex(State(
            replies: Array(repeating: nil, count: count), redirections: Array(repeating: 0, count: count),
            retries: Array(repeating: 0, count: count), acknowledged: Array(repeating: nil, count: count)))
    }

    func start(routes: [Route]) {
        state.withLock { $0.outstanding = routes.count }
        for route in routes { send(route) }
    }

    func failAll(with error: RedisError) {
        state.withLock { state in
            for index in state.replies.indices { state.replies[index] = .failure(error) }
        }
        finish()
    }

    func finish() {
        let response = state.withLock { state in
            RedisResponse(
                replies: state.replies.map { $0 ?? .failure(RedisError(kind: .clusterDown, message: "no node answered")) },
                // Overall: the fewest over the parts that wrote something.
                acknowledgedReplicas: request.replicas > 0 ? (state.acknowledged.compactMap { $0 }.min() ?? 0) : nil,
                acknowledgedReplicasByCommand: request.replicas > 0 ? state.acknowledged.map { $0 ?? 0 } : nil)
        }
        completion(response)
    }

    private func send(_ route: Route) {
        guard let node = route.node else {
            let slot = route.slot.map { "slot \($0)" } ?? "keyless commands"
            let error = RedisError(kind: .clusterDown, message: "no primary serves \(slot) (as last known)")
            cluster.requestRefresh()
            partDone(settled: route.indices.map { ($0, .failure(error)) }, acknowledged: nil, followUps: [], retries: [])
            return
        }
        let commands = route.indices.map { index in
            var command = request.commands[index]
            command.isAsking = route.isAsking
            return command
        }
        node.enqueue(NodeSubmission(commands: commands, deadline: request.deadline, replicas: request.replicas) { [self] response in
            handle(response, of: route, from: node)
        })
    }

    /// Settles what is final, and sends redirected and retried commands on.
    private func handle(_ response: RedisResponse, of route: Route, from node: RedisNodeClient) {
        var settled: [(Int, Result<RedisReply, RedisError>)] = []
        var redirected: [RedisNodeID: [Int]] = [:]
        var askRedirected: [RedisNodeID: [Int]] = [:]
        var rerouted: [Int] = []
        var retried: [(index: Int, reply: String)] = []
        var wrote = false
        var needsRefresh = false
        let redirectionLimit = cluster.options.maximumRedirections
        let redirectionCounts = state.withLock { state in route.indices.map { state.redirections[$0] } }

        for (position, index) in route.indices.enumerated() {
            let result = response.replies[position]
            let redirections = redirectionCounts[position]
            switch ClusterReply(result, from: node.id) {
            case .moved(let target):
                needsRefresh = true
                if redirections < redirectionLimit {
                    redirected[target, default: []].append(index)
                } else {
                    settled.append((index, .failure(Self.tooManyRedirections(result))))
                }
            case .ask(let target):
                if redirections < redirectionLimit {
                    askRedirected[target, default: []].append(index)
                } else {
                    settled.append((index, .failure(Self.tooManyRedirections(result))))
                }
            case .retryLater(let message):
                retried.append((index, message))
            case .unreachable(let error):
                // The node is down or in backoff: the map may have moved on (a promoted replica) since routing.
                needsRefresh = true
                if redirections < redirectionLimit, let key = request.commands[index].key,
                    let owner = cluster.currentOwner(of: RedisSlot.of(key: key)), owner !== node
                {
                    rerouted.append(index)
                } else {
                    settled.append((index, .failure(error)))
                }
            case .failed(let error):
                if error.isConnectionBroken { needsRefresh = true }
                settled.append((index, .failure(error)))
            case .answered:
                wrote = true
                settled.append((index, result))
            }
        }
        if needsRefresh { cluster.requestRefresh() }

        var followUps: [Route] = []
        for (target, indices) in redirected {
            followUps.append(Route(node: cluster.nodeClient(for: target), indices: indices, slot: route.slot))
        }
        for (target, indices) in askRedirected {
            followUps.append(Route(node: cluster.nodeClient(for: target), indices: indices, slot: route.slot, isAsking: true))
        }
        if !rerouted.isEmpty {
            followUps.append(contentsOf: reroute(rerouted))
        }
        let acknowledged = wrote ? response.acknowledgedReplicas : nil
        var retryGroups: [(Duration, [Int])] = []
        if !retried.isEmpty {
            let now = ContinuousClock.now
            let attempt = state.withLock { state in retried.map { state.retries[$0.index] }.max() ?? 0 }
            let delay = min(cluster.options.minimumRetryDelay * (1 << min(attempt, 20)), cluster.options.maximumRetryDelay)
            if now + delay < request.deadline {
                retryGroups.append((delay, retried.map(\.index)))
            } else {
                for (index, reply) in retried {
                    settled.append((index, .failure(RedisError(
                        kind: .clusterDown, message: "the cluster did not serve the command before the deadline: \(reply)"))))
                }
            }
        }
        partDone(settled: settled, acknowledged: acknowledged, followUps: followUps, retries: retryGroups)
    }

    /// Routes commands again through the current map.
    private func reroute(_ indices: [Int]) -> [Route] {
        cluster.withSlotMap { map in
            guard let map else { return [Route(node: nil, indices: indices, slot: nil)] }
            return cluster.route(indices, of: request.commands, in: map)
        }
    }

    /// Records a finished part; sends what follows from it; completes the request when nothing is outstanding.
    private func partDone(
        settled: [(Int, Result<RedisReply, RedisError>)], acknowledged: Int?, followUps: [Route], retries: [(Duration, [Int])]
    ) {
        let isLast = state.withLock { state in
            for (index, result) in settled { state.replies[index] = result }
            for (index, _) in settled { state.acknowledged[index] = acknowledged }
            for route in followUps { for index in route.indices { state.redirections[index] += 1 } }
            for (_, indices) in retries { for index in indices { state.retries[index] += 1 } }
            state.outstanding += followUps.count + retries.count - 1
            return state.outstanding == 0
        }
        for route in followUps { send(route) }
        for (delay, indices) in retries {
            cluster.schedule(after: delay) { [self] in
                let routes = reroute(indices)
                state.withLock { $0.outstanding += routes.count - 1 }
                for route in routes { send(route) }
            }
        }
        if isLast { finish() }
    }

    private static func tooManyRedirections(_ result: Result<RedisReply, RedisError>) -> RedisError {
        let reply = (try? result.get())?.errorMessage ?? "redirection"
        return RedisError(kind: .clusterDown, message: "redirections did not settle (last: \(reply))")
    }
}

/// What a node's answer to one command means for the cluster client.
enum ClusterReply {
    case moved(RedisNodeID)
    case ask(RedisNodeID)
    /// TRYAGAIN, CLUSTERDOWN: not executed; worth another try shortly.
    case retryLater(String)
    /// Not sent: the node is down or in backoff.
    case unreachable(RedisError)
    /// Any other failure (a command maybe executed, a deadline, authentication).
    case failed(RedisError)
    case answered

    init(_ result: Result<RedisReply, RedisError>, from node: RedisNodeID) {
        switch result {
        case .failure(let error):
            self = error.kind == .connection && !error.mayHaveExecuted ? .unreachable(error) : .failed(error)
        case .success(.error(let message)):
            switch RedisError.errorCode(of: message) {
            case "MOVED", "ASK":
                // MOVED <slot> <host>:<port>; an empty host means the node that answered.
                let parts = message.split(separator: " ")
                if parts.count >= 3, var target = RedisNodeID(parts[2]) {
                    if target.host.isEmpty { target.host = node.host }
                    self = parts[0] == "MOVED" ? .moved(target) : .ask(target)
                } else {
                    self = .answered
                }
            case "TRYAGAIN", "CLUSTERDOWN":
                self = .retryLater(message)
            default:
                self = .answered
            }
        case .success:
            self = .answered
        }
    }
}

/// One shard of a `CLUSTER SHARDS` or `CLUSTER SLOTS` answer.
struct ClusterShard: Equatable {
    var slots: [ClosedRange<Int>]
    var primary: RedisNodeID?
    var replicas: [RedisNodeID]

    /// Parses `CLUSTER SHARDS` (Redis 7): per shard a map with `slots` (start, end, ...) and `nodes` (maps with
    /// `ip`, `endpoint`, `port`, `role`, `health`).
    static func parse(shards reply: RedisReply, askedHost: String) throws(RedisError) -> [ClusterShard] {
        guard let shards = reply.array else { throw unexpected("CLUSTER SHARDS", reply) }
        var parsed: [ClusterShard] = []
        for shard in shards {
            guard let fields = shard.array.map(pairs) else { throw unexpected("CLUSTER SHARDS", reply) }
            let bounds = (fields["slots"]?.array ?? []).compactMap { $0.integer.map(Int.init) }
            var slots: [ClosedRange<Int>] = []
            for start in stride(from: 0, to: bounds.count - 1, by: 2) where bounds[start] <= bounds[start + 1] {
                slots.append(bounds[start]...bounds[start + 1])
            }
            var entry = ClusterShard(slots: slots, primary: nil, replicas: [])
            var primaryIsOnline = false
            for node in fields["nodes"]?.array ?? [] {
                guard let node = node.array.map(pairs), let port = node["port"]?.integer else { continue }
                var host = node["endpoint"]?.string ?? ""
                if host.isEmpty || host == "?" { host = node["ip"]?.string ?? "" }
                if host.isEmpty || host == "?" { host = askedHost }
                let id = RedisNodeID(host: host, port: Int(port))
                if node["role"]?.string == "master" {
                    // Should a shard ever list a failed primary next to its successor, the live one wins.
                    let isOnline = node["health"]?.string == "online"
                    if entry.primary == nil || (isOnline && !primaryIsOnline) {
                        entry.primary = id
                        primaryIsOnline = isOnline
                    }
                } else {
                    entry.replicas.append(id)
                }
            }
            parsed.append(entry)
        }
        return parsed
    }

    /// Parses `CLUSTER SLOTS`: per range `[start, end, [host, port, id], [replica host, port, id]...]`.
    static func parse(slots reply: RedisReply, askedHost: String) throws(RedisError) -> [ClusterShard] {
        guard let ranges = reply.array else { throw unexpected("CLUSTER SLOTS", reply) }
        var parsed: [ClusterShard] = []
        for range in ranges {
            guard let fields = range.array, fields.count >= 3, let start = fields[0].integer, let end = fields[1].integer,
                start <= end
            else { throw unexpected("CLUSTER SLOTS", reply) }
            let nodes: [RedisNodeID] = fields.dropFirst(2).compactMap { node in
                guard let parts = node.array, parts.count >= 2, let port = parts[1].integer else { return nil }
                var host = parts[0].string ?? ""
                if host.isEmpty || host == "?" { host = askedHost }
                return RedisNodeID(host: host, port: Int(port))
            }
            guard let primary = nodes.first else { continue }
            let slots = Int(start)...Int(end)
            if let existing = parsed.firstIndex(where: { $0.primary == primary }) {
                parsed[existing].slots.append(slots)
            } else {
                parsed.append(ClusterShard(slots: [slots], primary: primary, replicas: Array(nodes.dropFirst())))
            }
        }
        return parsed
    }

    /// A RESP2 map (a flat array of names and values) as a dictionary.
    private static func pairs(_ elements: [RedisReply]) -> [String: RedisReply] {
        var dictionary: [String: RedisReply] = [:]
        for start in stride(from: 0, to: elements.count - 1, by: 2) {
            if let name = elements[start].string { dictionary[name] = elements[start + 1] }
        }
        return dictionary
    }

    private static func unexpected(_ command: String, _ reply: RedisReply) -> RedisError {
        RedisError(kind: .protocol, message: "unexpected \(command) answer: \(reply)", isConnectionBroken: false)
    }
}
