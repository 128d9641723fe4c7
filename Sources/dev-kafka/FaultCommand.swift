import KafkaClient
import KafkaDevSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A fault command that cannot be carried out; its text is answered after `error `.
struct UsageError: Error, CustomStringConvertible {
    var description: String
}

/// One fault-injection command read from stdin.
///
/// Grammar (one per line, words separated by spaces): `down <target>`, `up <target>`, `rtt <target> <milliseconds>`,
/// where `<target>` is `all` or a broker id (1...brokers). `rtt all 0` removes added latency. `create <topic>
/// <partitions>` creates a topic (for tests of a topic that appears after a service started). `error produce <code>
/// [count]` answers the next `count` (1) produce requests with Kafka error `code` (45, OUT_OF_ORDER_SEQUENCE_NUMBER,
/// is fatal to an idempotent producer); `error produce clear` drops the errors not used yet.
/// is fatal to an idempotent producer).
enum FaultCommand: Equatable {
    case down([Int32])
    case up([Int32])
    case roundTripTime([Int32], milliseconds: Int)
    case createTopic(String, partitions: Int)
    case produceErrors(code: Int32, count: Int)
    case clearProduceErrors

    /// Parses one line; the error text is what gets answered after `error `.
    static func parse(_ line: String, brokerCount: Int) -> Result<FaultCommand, UsageError> {
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard let verb = words.first else { return .failure(UsageError(description: "empty command")) }
        func brokers(_ word: String?) -> Result<[Int32], UsageError> {
            guard let word else { return .failure(UsageError(description: "\(verb) needs a target: all or a broker id")) }
            if word == "all" { return .success((1...brokerCount).map { Int32($0) }) }
            guard let id = Int32(word), id >= 1, id <= brokerCount else {
                return .failure(UsageError(description: "no broker \"\(word)\"; brokers are 1...\(brokerCount)"))
            }
            return .success([id])
        }
        switch (verb, words.count) {
        case ("down", 2): return brokers(words[1]).map { .down($0) }
        case ("up", 2): return brokers(words[1]).map { .up($0) }
        case ("rtt", 3):
            guard let milliseconds = Int(words[2]), milliseconds >= 0 else {
                return .failure(UsageError(description: "rtt needs milliseconds >= 0, got \"\(words[2])\""))
            }
            return brokers(words[1]).map { .roundTripTime($0, milliseconds: milliseconds) }
        case ("create", 3):
            guard let partitions = Int(words[2]), partitions > 0 else {
                return .failure(UsageError(description: "create needs a positive partition count, got \"\(words[2])\""))
            }
            return .success(.createTopic(words[1], partitions: partitions))
        case ("create", _):
            return .failure(UsageError(description: "usage: create <topic> <partitions>"))
        case ("error", 3) where words[1] == "produce" && words[2] == "clear":
            return .success(.clearProduceErrors)
        case ("error", 3), ("error", 4):
            guard words[1] == "produce", let code = Int32(words[2]), code > 0,
                  let count = words.count == 4 ? Int(words[3]) : 1, count > 0
            else { return .failure(UsageError(description: "usage: error produce <kafka error code> [count] | error produce clear")) }
            return .success(.produceErrors(code: code, count: count))
        case ("down", _), ("up", _):
            return .failure(UsageError(description: "usage: \(verb) all|<broker id>"))
        case ("rtt", _):
            return .failure(UsageError(description: "usage: rtt all|<broker id> <milliseconds>"))
        default:
            return .failure(UsageError(description: "unknown command \"\(verb)\"; commands: down, up, rtt, create, error"))
        }
    }

    /// Applies the command to every broker it names.
    func apply(to cluster: KafkaMockCluster, brokerCount: Int) throws(KafkaError) {
        switch self {
        case .down(let ids):
            for id in ids { try cluster.setBrokerDown(id) }
        case .up(let ids):
            for id in ids { try cluster.setBrokerUp(id) }
        case .roundTripTime(let ids, let milliseconds):
            for id in ids { try cluster.setBrokerRoundTripTime(id, milliseconds: milliseconds) }
        case .createTopic(let name, let partitions):
            try cluster.createTopic(name, partitions: partitions, replicationFactor: min(3, brokerCount))
        case .produceErrors(let code, let count):
            cluster.pushRequestErrors(apiKey: KafkaMockCluster.produceAPIKey, errors: Array(repeating: code, count: count))
        case .clearProduceErrors:
            cluster.clearRequestErrors(apiKey: KafkaMockCluster.produceAPIKey)
        }
    }
}

/// Reads commands from stdin until EOF, answering each with one stdout line (`ok` or `error <reason>`).
func runControlLoop(cluster: KafkaMockCluster, brokerCount: Int) {
    while let line = readLine(strippingNewline: true) {
        let answer: String
        switch FaultCommand.parse(line, brokerCount: brokerCount) {
        case .failure(let error):
            answer = "error \(error.description)"
        case .success(let command):
            do {
                try command.apply(to: cluster, brokerCount: brokerCount)
                answer = "ok"
                printError("fault injection: \(line)")
            } catch {
                answer = "error \(error)"
            }
        }
        writeStdoutLine(answer)
    }
}

/// Writes one line to stdout unbuffered, so the reader sees it at once.
func writeStdoutLine(_ text: String) {
    var line = Array((text + "\n").utf8)
    _ = line.withUnsafeMutableBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
}
