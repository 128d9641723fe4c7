// transfer-bench: load generation and measurement helpers for scripts/bench (see README, "Performance").
// Each subcommand prints its result on stdout (JSON or shell assignments) and progress on stderr.

import ArgumentParser
import Foundation

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
    @Option var redisPort: Int
    @Option(help: "The Swift source holding the scripts.") var scriptsSource: String
    @Option(help: "Records for the compare-and-set benchmark.") var records: Int
    func run() throws { try CeilingPreparation.run(self) }
}

struct FillCatchUpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fill-catchup", abstract: "Store initiated transfers and publish their events, as a backlog."
    )
    @Option var redisPort: Int
    @Option var redisDb: Int
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
    @Option var redisPort: Int
    @Option var redisDb: Int
    @Option(help: "Kafka bootstrap servers.") var bootstrap: String
    @Option var group: String
    @Option(help: "The state file fill-catchup wrote.") var state: String
    @Option var timeoutSeconds = 300
    @Option(help: "Fail at once when this process dies.") var servicePid: Int?
    func run() throws { try CatchUpWatch.run(self) }
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
    @Option var redisPort: Int
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
