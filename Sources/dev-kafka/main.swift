// dev-kafka: runs librdkafka's mock Kafka cluster on loopback for local development, until SIGTERM/SIGINT.
// The first stdout line is the bootstrap list (host:port,...); diagnostics go to stderr.
// Fault injection for tests: each line on stdin is a command (`down all`, `up 2`, `rtt all 200`), answered with
// exactly one stdout line, `ok` or `error <reason>`. See `FaultCommand`.

import ArgumentParser
import Dispatch
import KafkaClient
import KafkaDevSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The command line. `--help` lists it; a bad one exits 2 with one line on stderr.
struct DevKafkaOptions: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev-kafka",
        abstract: "librdkafka's mock Kafka cluster on loopback, for development and tests.",
        discussion: """
            Prints the bootstrap list (host:port,...) as its first stdout line and runs until SIGTERM or SIGINT. \
            Each topic is created with its dead-letter topic <topic>.dlq. Fault injection: each stdin line is a \
            command (down all|ID, up all|ID, rtt all|ID MS, create TOPIC PARTITIONS, error produce CODE [COUNT] | clear), answered \
            with one stdout line, ok or error <reason>. \
            The mock cluster has no CreateTopics API (and no controller), and auto-creates a topic that a client \
            asks about with allow.auto.create.topics=true (librdkafka producers' default).
            """
    )

    @Option(help: "Brokers, numbered 1...N.") var brokers = 3
    @Option(help: "Partitions of each topic created.") var partitions = 3
    @Option(name: .customLong("topic"), help: "A topic to create with its .dlq; repeatable (default: $KAFKA_TOPIC_TRANSFERS or money_transfers).")
    var topics: [String] = []
    @Flag(help: "Create no topic at all (to see a service find its topics missing).") var noTopics = false
    @Flag(help: "Create the topics without their .dlq (to see a service without its dead-letter topic).")
    var noDeadLetterTopics = false
    @Flag(help: "Create any topic a client asks about, even with allow.auto.create.topics=false (the mock's own behaviour; for test runs that pick topic names freely).")
    var autoCreateTopics = false

    func validate() throws {
        guard brokers > 0 else { throw ValidationError("--brokers must be a positive integer, got \(brokers)") }
        guard partitions > 0 else { throw ValidationError("--partitions must be a positive integer, got \(partitions)") }
        guard !topics.contains("") else { throw ValidationError("--topic needs a non-empty name") }
        guard !(noTopics && !topics.isEmpty) else { throw ValidationError("--no-topics cannot be used with --topic") }
    }

    /// The topics to create, with their .dlq unless told otherwise.
    var topicsToCreate: [String] {
        if noTopics { return [] }
        let named = topics.isEmpty ? [getenv("KAFKA_TOPIC_TRANSFERS").map { String(cString: $0) } ?? "money_transfers"] : topics
        return named.flatMap { noDeadLetterTopics ? [$0] : [$0, "\($0).dlq"] }
    }

    /// The parsed command line, or the process ends: `--help` with 0, a bad command line with 2.
    static func parseOrExitWithOneLine() -> DevKafkaOptions {
        do {
            return try parse(Array(CommandLine.arguments.dropFirst()))
        } catch {
            if exitCode(for: error) == .success {
                print(fullMessage(for: error))
                Glibc.exit(0)
            }
            printError(message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid command line")
            Glibc.exit(2)
        }
    }
}

/// Writes one line to stderr (unbuffered; C's `stderr` global is not concurrency-safe to reference in Swift 6).
func printError(_ message: String) {
    var line = Array("dev-kafka: \(message)\n".utf8)
    _ = line.withUnsafeMutableBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
}

let options = DevKafkaOptions.parseOrExitWithOneLine()

let cluster: KafkaMockCluster
do {
    cluster = try KafkaMockCluster(brokerCount: options.brokers)
    // The mock advertises Metadata up to v2, which cannot carry allow.auto.create.topics=false, so it creates every
    // topic a client merely asks about. v4 (which it parses) lets clients say no, as real brokers do.
    if !options.autoCreateTopics {
        try cluster.setSupportedVersions(apiKey: 3, 0...4)
    }
    // The mock only pretends to replicate, but keep the factor valid for the broker count.
    let replicationFactor = min(3, options.brokers)
    for name in options.topicsToCreate {
        try cluster.createTopic(name, partitions: options.partitions, replicationFactor: replicationFactor)
    }
} catch {
    printError("could not start the mock cluster: \(error)")
    exit(1)
}

print(cluster.bootstrapServers)
// Whoever started us waits for this line; nil flushes every stream (C's `stdout` global is off-limits in Swift 6).
fflush(nil)
let topicNames = options.topicsToCreate.joined(separator: ", ")
printError("mock cluster with \(options.brokers) broker(s) up; topics (\(options.partitions) partitions each): \(topicNames.isEmpty ? "none" : topicNames)")

// Blocking reads belong on a thread of their own; a stdin at EOF (e.g. /dev/null) just ends the loop.
let controlQueue = DispatchQueue(label: "dev-kafka-control")
controlQueue.async { [cluster, options] in
    runControlLoop(cluster: cluster, brokerCount: options.brokers)
}

// Dispatch sources see the signals only once their default action (terminate) is disabled.
var signalSources: [any DispatchSourceSignal] = []
for signalNumber in [SIGTERM, SIGINT] {
    signal(signalNumber, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .main)
    source.setEventHandler {
        printError("signal \(signalNumber), stopping")
        Glibc.exit(0)
    }
    source.resume()
    signalSources.append(source)
}

withExtendedLifetime(cluster) {
    dispatchMain()
}
