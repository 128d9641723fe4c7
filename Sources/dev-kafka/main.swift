// dev-kafka: runs librdkafka's mock Kafka cluster on loopback for local development, until SIGTERM/SIGINT.
// The first stdout line is the bootstrap list (host:port,...); diagnostics go to stderr.
// Fault injection for tests: each line on stdin is a command (`down all`, `up 2`, `rtt all 200`), answered with
// exactly one stdout line, `ok` or `error <reason>`. See `FaultCommand`.

import Dispatch
import KafkaClient

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Command-line options, with their defaults.
struct Options {
    var brokers = 3
    var partitions = 3
    var topics: [String] = []
    /// Whether each topic gets its `.dlq` companion.
    var deadLetterTopics = true
}

/// A bad command line: printed as one line, then exit status 2.
struct UsageError: Error, CustomStringConvertible {
    var description: String
}

let usage = "usage: dev-kafka [--brokers N] [--partitions N] [--topic NAME]... [--no-dead-letter-topics]  (stdin: down|up all|ID, rtt all|ID MS, error produce CODE [COUNT])"

/// Parses the arguments after the program name.
func parseOptions(_ arguments: [String]) throws(UsageError) -> Options {
    var options = Options()
    var remaining = arguments[...]
    func value(for flag: String) throws(UsageError) -> String {
        guard let value = remaining.popFirst() else { throw UsageError(description: "\(flag) needs a value; \(usage)") }
        return value
    }
    func positive(_ flag: String) throws(UsageError) -> Int {
        let text = try value(for: flag)
        guard let number = Int(text), number > 0 else {
            throw UsageError(description: "\(flag) must be a positive integer, got \"\(text)\"")
        }
        return number
    }
    while let flag = remaining.popFirst() {
        switch flag {
        case "--brokers": options.brokers = try positive(flag)
        case "--partitions": options.partitions = try positive(flag)
        case "--no-dead-letter-topics": options.deadLetterTopics = false
        case "--topic":
            let name = try value(for: flag)
            guard !name.isEmpty else { throw UsageError(description: "--topic needs a non-empty name") }
            options.topics.append(name)
        default: throw UsageError(description: "unknown option \"\(flag)\"; \(usage)")
        }
    }
    if options.topics.isEmpty {
        options.topics = [getenv("KAFKA_TOPIC_TRANSFERS").map { String(cString: $0) } ?? "money_transfers"]
    }
    return options
}

/// Writes one line to stderr (unbuffered; C's `stderr` global is not concurrency-safe to reference in Swift 6).
func printError(_ message: String) {
    var line = Array("dev-kafka: \(message)\n".utf8)
    _ = line.withUnsafeMutableBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
}

let options: Options
do {
    options = try parseOptions(Array(CommandLine.arguments.dropFirst()))
} catch {
    printError(error.description)
    exit(2)
}

let cluster: KafkaMockCluster
do {
    cluster = try KafkaMockCluster(brokerCount: options.brokers)
    // The mock only pretends to replicate, but keep the factor valid for the broker count.
    let replicationFactor = min(3, options.brokers)
    for topic in options.topics {
        for name in options.deadLetterTopics ? [topic, "\(topic).dlq"] : [topic] {
            try cluster.createTopic(name, partitions: options.partitions, replicationFactor: replicationFactor)
        }
    }
} catch {
    printError("could not start the mock cluster: \(error)")
    exit(1)
}

print(cluster.bootstrapServers)
// Whoever started us waits for this line; nil flushes every stream (C's `stdout` global is off-limits in Swift 6).
fflush(nil)
let topicNames = options.topics.flatMap { options.deadLetterTopics ? [$0, "\($0).dlq"] : [$0] }.joined(separator: ", ")
printError("mock cluster with \(options.brokers) broker(s) up; topics (\(options.partitions) partitions each): \(topicNames)")

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
        exit(0)
    }
    source.resume()
    signalSources.append(source)
}

withExtendedLifetime(cluster) {
    dispatchMain()
}
