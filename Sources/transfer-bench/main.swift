// transfer-bench: load generation and measurement helpers for scripts/bench (see README, "Performance").
// Each subcommand prints its result on stdout (JSON or shell assignments) and progress on stderr.

import ArgumentParser
import Foundation
import RedisClient

/// The subcommands; `transfer-bench <command> --help` lists each one's options.
struct TransferBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transfer-bench",
        abstract: "Load generation and measurement helpers for scripts/bench.",
        subcommands: [
            PrintScriptsCommand.self, PrepareCeilingsCommand.self, FillCatchUpCommand.self, WatchCatchUpCommand.self,
            WaitLagCommand.self, EndToEndCommand.self, ReportCommand.self,
        ]
    )
}

struct PrintScriptsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "print-scripts", abstract: "Print the service's Lua scripts as extracted.")
    @Option(help: "The Swift source holding the scripts.") var scriptsSource: String
    func run() throws { try PrintScripts.run(self) }
}

struct PrepareCeilingsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare-ceilings", abstract: "Load the scripts into Redis and fill records for redis-benchmark."
    )
    @Option(help: "A single Redis to prepare (or give --redis-cluster-nodes).") var redisPort: Int?
    @Option(help: "A Redis Cluster's seed nodes, host:port[,...]: the first primary is prepared, with keys in one of its slots.")
    var redisClusterNodes: String?
    @Option(help: "The Swift source holding the scripts.") var scriptsSource: String
    @Option(help: "Records for the compare-and-set benchmark.") var records: Int
    func run() throws { try CeilingPreparation.run(self) }
}

struct FillCatchUpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fill-catchup", abstract: "Store initiated transfers and publish their events, as a backlog."
    )
    @OptionGroup var redis: RedisTargetOptions
    @Option(help: "Kafka bootstrap servers.") var bootstrap: String
    @Option var topic: String
    @Option var count: Int
    @Option(help: "Where to write the state file for watch-catchup.") var state: String
    func run() throws { try CatchUpFill.run(self) }
}

struct WatchCatchUpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch-catchup", abstract: "Measure how fast the fill-catchup backlog is completed."
    )
    @OptionGroup var redis: RedisTargetOptions
    @Option(help: "Kafka bootstrap servers.") var bootstrap: String
    @Option var group: String
    @Option(help: "The state file fill-catchup wrote.") var state: String
    @Option var timeoutSeconds = 300
    @Option(help: "Fail at once when this process dies.") var servicePid: Int?
    func run() throws { try CatchUpWatch.run(self) }
}

/// Where the service's Redis is: one server (and database), or a cluster.
struct RedisTargetOptions: ParsableArguments {
    @Option(help: "A single Redis.") var redisPort: Int?
    @Option var redisDb = 0
    @Option(help: "A Redis Cluster's seed nodes, host:port[,...] (instead of --redis-port).") var redisClusterNodes: String?

    /// A client for the target, through the service's own Redis client (group commit, cluster routing).
    func deployment() throws -> any RedisDeployment {
        if let nodes = redisClusterNodes {
            let seeds = try nodes.split(separator: ",").map { node -> RedisNodeID in
                guard let colon = node.lastIndex(of: ":"), let port = Int(node[node.index(after: colon)...]) else {
                    throw BenchError("--redis-cluster-nodes: \(node) is not host:port", isUsage: true)
                }
                return RedisNodeID(host: String(node[..<colon]), port: port)
            }
            return RedisCluster(seeds: seeds, configuration: RedisConfiguration(host: seeds[0].host, port: seeds[0].port))
        }
        guard let redisPort else { throw BenchError("give --redis-port or --redis-cluster-nodes", isUsage: true) }
        return RedisNodeClient(configuration: RedisConfiguration(host: "127.0.0.1", port: redisPort, database: redisDb))
    }
}

struct WaitLagCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "wait-lag", abstract: "Wait until a group's committed lag is 0.")
    @Option(help: "Kafka bootstrap servers.") var bootstrap: String
    @Option var topic: String
    @Option var group: String
    @Option var timeoutSeconds = 300
    func run() throws { try WaitForLag.run(self) }
}

struct EndToEndCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "e2e", abstract: "POST at a fixed rate and time each transfer to completed.")
    @Option var httpPort: Int
    @Option(help: "The Redis whose keyspace notifications show completions; repeat it for every primary of a cluster.")
    var redisPort: [Int]
    @Option(help: "POSTs per second.") var rate: Double
    @Option(help: "Seconds.") var duration: Double
    @Option var connections = 32
    func run() throws { try EndToEnd.run(self) }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "report", abstract: "Print the table and write the JSON report.")
    @Option(help: "The directory scripts/bench wrote its phase outputs to.") var dir: String
    @Option(help: "The JSON file to write.") var out: String
    @Option var mode = "full"
    @Option(help: "What the service ran on, for the report's title.") var deployment = "single Redis"
    @Option var date = ""
    @Option var machine = ""
    @Option var commit = ""
    func run() throws { try Report.run(self) }
}

// A bad command line exits 2 (argument-parser's own code would be 64); a failed command exits 1.
do {
    var command = try TransferBench.parseAsRoot()
    try command.run()
} catch let error as BenchError {
    log("\(error)")
    exit(error.isUsage ? 2 : 1)
} catch {
    switch TransferBench.exitCode(for: error) {
    case .success:
        print(TransferBench.fullMessage(for: error))
        exit(0)
    case .validationFailure:
        FileHandle.standardError.write(Data((TransferBench.fullMessage(for: error) + "\n").utf8))
        exit(2)
    default:
        log("\(error)")
        exit(1)
    }
}
