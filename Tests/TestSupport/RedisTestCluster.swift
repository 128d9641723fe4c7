import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A real Redis Cluster for tests: 3 primaries with one replica each, on free loopback ports, each node with its
/// data (AOF, nodes.conf) in a fresh temp directory, formed by `redis-cli --cluster create`.
///
/// Administration goes through `redis-cli`, so TestSupport stays free of the code under test. Each node's
/// cluster bus gets its own free port (`cluster-port`), so no port + 10000 arithmetic can collide.
// @unchecked Sendable is safe: the node list is behind a Mutex; everything else is immutable.
public final class RedisTestCluster: @unchecked Sendable {
    /// One redis-server of the cluster.
    public struct Node: Sendable {
        /// The client port.
        public let port: Int
        /// The cluster bus port.
        public let busPort: Int
        /// The node's working directory.
        public let directory: String
        /// The node's 40-character cluster id (stable across restarts, kept in nodes.conf).
        public let id: String
        /// The running process (replaced on restart).
        public let server: RedisServer
    }

    /// Always "127.0.0.1".
    public let host = "127.0.0.1"
    private let nodeList: Mutex<[Node]>

    /// Every node, in the order they were started (the first three were created as primaries).
    public var nodes: [Node] { nodeList.withLock { $0 } }
    /// The client ports of all nodes, for seed lists.
    public var ports: [Int] { nodes.map(\.port) }

    private let password: String?
    private let extraArguments: [String]

    private init(nodes: [Node], password: String?, extraArguments: [String]) {
        nodeList = Mutex(nodes)
        self.password = password
        self.extraArguments = extraArguments
    }

    deinit {
        for node in nodes where node.server.process.isRunning { node.server.process.signal(SIGKILL) }
    }

    /// Starts `primaries` + `primaries * replicasPerPrimary` nodes, forms the cluster and waits until every node
    /// reports `cluster_state:ok`. `extraArguments` go to every redis-server (e.g. `["--requirepass", "pw",
    /// "--masterauth", "pw"]`); pass the password as `password` too, for the admin commands.
    public static func start(
        primaries: Int = 3, replicasPerPrimary: Int = 1, extraArguments: [String] = [], password: String? = nil
    ) throws -> RedisTestCluster {
        var started: [Node] = []
        do {
            for _ in 0..<(primaries * (1 + replicasPerPrimary)) {
                started.append(try startNode(port: nil, busPort: nil, directory: nil, extraArguments: extraArguments, password: password))
            }
            let cluster = RedisTestCluster(nodes: started, password: password, extraArguments: extraArguments)
            let create = try runCLI(
                ["--cluster", "create"] + started.map { "127.0.0.1:\($0.port)" }
                    + ["--cluster-replicas", String(replicasPerPrimary), "--cluster-yes"],
                password: password, timeout: .seconds(120))
            guard create.status == 0 else {
                throw ChildProcessError("redis-cli --cluster create failed (\(create.status)):\n\(create.output)")
            }
            try cluster.waitUntilHealthy()
            try cluster.waitUntilReplicasAreInSync()
            return cluster
        } catch {
            for node in started { node.server.process.signal(SIGKILL) }
            throw error
        }
    }

    /// SIGTERM to every node, waiting for each to exit.
    public func stop() {
        for node in nodes { node.server.stop() }
    }

    // MARK: administration

    /// Runs one command on the node at `port` with redis-cli and returns its raw output (trailing newline removed).
    @discardableResult
    public func command(_ port: Int, _ arguments: [String]) throws -> String {
        let result = try Self.runCLI(["-p", String(port)] + arguments, password: password, timeout: .seconds(30))
        guard result.status == 0 else {
            throw ChildProcessError("redis-cli -p \(port) \(arguments.joined(separator: " ")) failed: \(result.output)")
        }
        var output = result.output
        while output.hasSuffix("\n") { output.removeLast() }
        return output
    }

    /// The node (by port) that currently serves `slot` as primary, as the node at `askingPort` sees it.
    public func primaryPort(servingSlot slot: Int, askingPort: Int? = nil) throws -> Int {
        let port = try askingPort ?? livePorts().first.orThrow("no live node")
        for line in try command(port, ["CLUSTER", "NODES"]).split(separator: "\n") {
            let fields = line.split(separator: " ").map(String.init)
            guard fields.count >= 8, fields[2].contains("master"), !fields[2].contains("fail") else { continue }
            for range in fields.dropFirst(8) where !range.hasPrefix("[") {
                let bounds = range.split(separator: "-").compactMap { Int($0) }
                if let low = bounds.first, (low...(bounds.last ?? low)).contains(slot) {
                    return try Self.port(ofAddress: fields[1])
                }
            }
        }
        throw ChildProcessError("no primary serves slot \(slot) according to node \(port)")
    }

    /// The ports of the current primaries, as the node at `askingPort` sees them (failed ones excluded).
    public func primaryPorts(askingPort: Int? = nil) throws -> [Int] {
        let port = try askingPort ?? livePorts().first.orThrow("no live node")
        return try command(port, ["CLUSTER", "NODES"]).split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ").map(String.init)
            guard fields.count >= 8, fields[2].contains("master"), !fields[2].contains("fail") else { return nil }
            return try Self.port(ofAddress: fields[1])
        }
    }

    /// The port of the replica of the primary at `primaryPort`.
    public func replicaPort(of primaryPort: Int) throws -> Int {
        let primaryID = try node(primaryPort).id
        for line in try command(primaryPort, ["CLUSTER", "NODES"]).split(separator: "\n") {
            let fields = line.split(separator: " ").map(String.init)
            if fields.count >= 4, fields[2].contains("slave"), fields[3] == primaryID {
                return try Self.port(ofAddress: fields[1])
            }
        }
        throw ChildProcessError("the primary at \(primaryPort) has no replica")
    }

    /// The node listening on `port`.
    public func node(_ port: Int) throws -> Node {
        try nodes.first { $0.port == port }.orThrow("no node on port \(port)")
    }

    /// Ports of the nodes whose process runs.
    public func livePorts() -> [Int] {
        nodes.filter { $0.server.process.isRunning }.map(\.port)
    }

    /// SIGKILLs the primary at `port`, then waits until its replica has taken over (it is a primary, and every
    /// live node reports `cluster_state:ok`). Returns the new primary's port.
    @discardableResult
    public func killPrimaryAndWaitForFailover(_ port: Int) throws -> Int {
        let replica = try killPrimary(port)
        try waitForPromotion(of: replica)
        return replica
    }

    /// SIGKILLs the primary at `port` and returns the port of its replica (which the cluster will promote after
    /// `cluster-node-timeout`), without waiting.
    public func killPrimary(_ port: Int) throws -> Int {
        let replica = try replicaPort(of: port)
        try node(port).server.kill()
        return replica
    }

    /// Waits until the replica at `port` has become a primary and the cluster is healthy again.
    public func waitForPromotion(of port: Int) throws {
        try waitUntil("the replica on \(port) to become a primary") {
            try command(port, ["ROLE"]).hasPrefix("master")
        }
        try waitUntilHealthy()
    }

    /// SIGKILLs the node at `port` and returns without waiting for the cluster to react.
    public func kill(_ port: Int) throws {
        try node(port).server.kill()
    }

    /// Starts a stopped node again on its port with its data; it rejoins the cluster (a former primary as a replica).
    public func restart(_ port: Int) throws {
        let old = try node(port)
        let restarted = try Self.startNode(
            port: old.port, busPort: old.busPort, directory: old.directory, extraArguments: extraArguments, password: password)
        nodeList.withLock { nodes in
            if let index = nodes.firstIndex(where: { $0.port == port }) { nodes[index] = restarted }
        }
        try waitUntilHealthy()
        try waitUntilReplicasAreInSync()
    }

    /// Stops the node at `port` (SIGTERM, waiting for it to exit); `restart` brings it back.
    public func stopNode(_ port: Int) throws {
        try node(port).server.stop()
    }

    /// Starts moving `slot` from its primary to the primary at `targetPort`: the source answers `ASK` for keys it
    /// no longer has, the target accepts them after `ASKING`. Returns the source's port.
    @discardableResult
    public func beginMigration(slot: Int, to targetPort: Int) throws -> Int {
        let sourcePort = try primaryPort(servingSlot: slot)
        let source = try node(sourcePort)
        let target = try node(targetPort)
        try expectOK(command(targetPort, ["CLUSTER", "SETSLOT", String(slot), "IMPORTING", source.id]))
        try expectOK(command(sourcePort, ["CLUSTER", "SETSLOT", String(slot), "MIGRATING", target.id]))
        return sourcePort
    }

    /// Moves every key of `slot` from `sourcePort` to `targetPort` (MIGRATE), as a migration in progress does.
    public func migrateKeys(slot: Int, from sourcePort: Int, to targetPort: Int) throws {
        while true {
            let keys = try command(sourcePort, ["CLUSTER", "GETKEYSINSLOT", String(slot), "100"])
                .split(separator: "\n").map(String.init).filter { !$0.isEmpty }
            if keys.isEmpty { return }
            var migrate = ["MIGRATE", host, String(targetPort), "", "0", "10000"]
            if let password { migrate += ["AUTH", password] }
            let answer = try command(sourcePort, migrate + ["KEYS"] + keys)
            guard answer == "OK" else { throw ChildProcessError("MIGRATE answered \(answer)") }
        }
    }

    /// Ends a migration: the target owns `slot`, and every primary is told (others learn it from the bus).
    public func finishMigration(slot: Int, from sourcePort: Int, to targetPort: Int) throws {
        let target = try node(targetPort)
        try expectOK(command(targetPort, ["CLUSTER", "SETSLOT", String(slot), "NODE", target.id]))
        try expectOK(command(sourcePort, ["CLUSTER", "SETSLOT", String(slot), "NODE", target.id]))
        for port in try primaryPorts() where port != sourcePort && port != targetPort {
            try expectOK(command(port, ["CLUSTER", "SETSLOT", String(slot), "NODE", target.id]))
        }
    }

    /// Moves `count` slots, with their keys, from the primary at `sourcePort` to the one at `targetPort` with
    /// `redis-cli --cluster reshard`, slot by slot (each one migrating, then moved): clients meet `ASK` while a slot
    /// migrates and `MOVED` once it has moved.
    public func reshard(slots count: Int, from sourcePort: Int, to targetPort: Int, timeout: Duration = .seconds(300)) throws {
        let result = try Self.runCLI(
            ["--cluster", "reshard", "127.0.0.1:\(sourcePort)", "--cluster-from", try node(sourcePort).id,
             "--cluster-to", try node(targetPort).id, "--cluster-slots", String(count), "--cluster-yes"],
            password: password, timeout: timeout)
        guard result.status == 0 else {
            throw ChildProcessError("redis-cli --cluster reshard failed (\(result.status)):\n\(result.output.suffix(2_000))")
        }
        try waitUntilHealthy()
    }

    /// Moves `slot` and its keys to the primary at `targetPort` in one go.
    public func moveSlot(_ slot: Int, to targetPort: Int) throws {
        let sourcePort = try beginMigration(slot: slot, to: targetPort)
        try migrateKeys(slot: slot, from: sourcePort, to: targetPort)
        try finishMigration(slot: slot, from: sourcePort, to: targetPort)
    }

    /// Waits until every live node reports `cluster_state:ok` and agrees with the others on who serves the slots.
    /// Replicas must also have finished their first sync (`master_link_status:up`), or a `WAIT` right after
    /// start finds none.
    public func waitUntilHealthy() throws {
        try waitUntil("cluster_state:ok on every live node, and every replica in sync") {
            let live = livePorts()
            var views: Set<String> = []
            for port in live {
                guard try command(port, ["CLUSTER", "INFO"]).contains("cluster_state:ok") else { return false }
                let replication = try command(port, ["INFO", "replication"])
                if replication.contains("role:slave"), !replication.contains("master_link_status:up") { return false }
                views.insert(try primaryPorts(askingPort: port).sorted().map(String.init).joined(separator: ","))
            }
            return views.count == 1
        }
    }

    /// Waits until every live replica has finished its sync with its primary (the primary lists it as online), so
    /// `WAIT` counts it.
    public func waitUntilReplicasAreInSync() throws {
        try waitUntil("every live replica to be in sync") {
            let live = Set(livePorts())
            var expected: [Int: Int] = [:]
            let nodesByID = Dictionary(uniqueKeysWithValues: nodes.map { ($0.id, $0.port) })
            guard let asking = live.first else { return false }
            for line in try command(asking, ["CLUSTER", "NODES"]).split(separator: "\n") {
                let fields = line.split(separator: " ").map(String.init)
                guard fields.count >= 4, fields[2].contains("slave"), !fields[2].contains("fail"),
                    let replicaPort = try? Self.port(ofAddress: fields[1]), live.contains(replicaPort),
                    let primaryPort = nodesByID[fields[3]], live.contains(primaryPort)
                else { continue }
                expected[primaryPort, default: 0] += 1
            }
            for (primaryPort, replicas) in expected {
                let info = try command(primaryPort, ["INFO", "replication"])
                if info.components(separatedBy: "state=online").count - 1 < replicas { return false }
            }
            return true
        }
    }

    // MARK: internals

    private func expectOK(_ answer: String) throws {
        guard answer == "OK" else { throw ChildProcessError("expected OK, got \(answer)") }
    }

    private func waitUntil(_ what: String, limit: Duration = .seconds(90), _ condition: () throws -> Bool) throws {
        let deadline = ContinuousClock.now + limit
        var lastError: Error?
        while true {
            do {
                if try condition() { return }
            } catch {
                lastError = error
            }
            if ContinuousClock.now > deadline {
                throw ChildProcessError("gave up waiting for \(what) after \(limit)\(lastError.map { ": \($0)" } ?? "")")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    private static func startNode(
        port: Int?, busPort: Int?, directory: String?, extraArguments: [String], password: String?
    ) throws -> Node {
        let directory = try directory ?? ChildProcessRegistry.makeDirectory(for: "redis-cluster-node")
        let busPort = busPort ?? FreePort.find()
        let server = try RedisServer.start(
            appendOnly: true, port: port, directory: directory,
            extraArguments: [
                "--cluster-enabled", "yes", "--cluster-node-timeout", "1000",
                "--cluster-config-file", directory + "/nodes.conf", "--cluster-port", String(busPort),
            ] + extraArguments)
        let id = try runCLI(["-p", String(server.port), "CLUSTER", "MYID"], password: password, timeout: .seconds(30))
        return Node(
            port: server.port, busPort: busPort, directory: directory,
            id: id.output.trimmingCharacters(in: .whitespacesAndNewlines), server: server)
    }

    private static func runCLI(_ arguments: [String], password: String?, timeout: Duration) throws -> (status: Int32, output: String) {
        var fullArguments = ["-h", "127.0.0.1"]
        if let password { fullArguments += ["--no-auth-warning", "-a", password] }
        let process = try ChildProcess(executable: "redis-cli", arguments: fullArguments + arguments, name: "redis-cli")
        guard let status = process.waitForExit(timeout: timeout) else {
            process.signal(SIGKILL)
            throw ChildProcessError("redis-cli \(arguments.joined(separator: " ")) did not finish within \(timeout)")
        }
        let output = (try? String(contentsOfFile: process.stdoutPath, encoding: .utf8)) ?? ""
        let errors = (try? String(contentsOfFile: process.stderrPath, encoding: .utf8)) ?? ""
        return (status, output + errors)
    }

    /// The port of `host:port@busport` (as CLUSTER NODES writes an address).
    private static func port(ofAddress address: String) throws -> Int {
        let hostAndPort = address.split(separator: "@").first.map(String.init) ?? address
        return try hostAndPort.split(separator: ":").last.flatMap { Int($0) }.orThrow("bad node address \(address)")
    }
}

extension Optional {
    fileprivate func orThrow(_ message: String) throws -> Wrapped {
        guard let self else { throw ChildProcessError(message) }
        return self
    }
}
