import Foundation
import KafkaClient
import RedisClient
import TestSupport
import Transfers

/// The built executables, found beside the test binary (the test target depends on them, so they are built).
public enum Products {
    public static let directory: String = {
        let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return testBinary.deletingLastPathComponent().path
    }()

    public static func path(_ name: String) -> String { directory + "/" + name }
}

/// A `dev-kafka` child process: librdkafka's mock cluster on loopback ports, whose brokers tests can take down
/// and up (fault-injection commands on its stdin). `shared` serves the whole test run; fault tests start their own.
public final class DevKafka: Sendable {
    /// The cluster most service tests share; never faulted. It creates any topic a service asks about, so each
    /// test can pick its own topic name.
    public static let shared: DevKafka = {
        do {
            return try DevKafka(autoCreatesTopics: true)
        } catch {
            fatalError("cannot start dev-kafka: \(error)")
        }
    }()

    public let process: ChildProcess
    public let bootstrapServers: String
    /// Brokers are numbered 1...brokerCount.
    public let brokerCount: Int

    /// Starts dev-kafka with `brokers` brokers; `topics` (and their `.dlq` topics) are created with `partitions`
    /// partitions (none at all with `createsTopics` false, no `.dlq` with `deadLetterTopics` false); other topics are
    /// created when a client allows it, or whenever a client asks about them with `autoCreatesTopics`.
    public init(
        brokers: Int = 3, partitions: Int = 3, topics: [String] = [], createsTopics: Bool = true, autoCreatesTopics: Bool = false,
        deadLetterTopics: Bool = true, name: String = "dev-kafka"
    ) throws {
        var arguments = ["--brokers", String(brokers), "--partitions", String(partitions)]
        for topic in topics { arguments += ["--topic", topic] }
        if !createsTopics { arguments.append("--no-topics") }
        if autoCreatesTopics { arguments.append("--auto-create-topics") }
        if !deadLetterTopics { arguments.append("--no-dead-letter-topics") }
        brokerCount = brokers
        process = try ChildProcess(executable: Products.path("dev-kafka"), arguments: arguments, name: name, stdinPipe: true)
        bootstrapServers = try process.firstStdoutLine(timeout: .seconds(30))
    }

    /// Sends one fault-injection command (`down all`, `up all`, `down 2`, `rtt all 200`, `rtt all 0`) and throws
    /// unless dev-kafka answers `ok`.
    public func inject(_ command: String) throws {
        let answer = try process.sendLine(command, replyTimeout: .seconds(10))
        guard answer == "ok" else { throw HarnessError("dev-kafka refused \"\(command)\": \(answer)") }
    }

    /// Stops the cluster (SIGTERM, then SIGKILL if it lingers).
    public func stop() {
        process.closeStdin()
        process.stop(timeout: .seconds(5))
    }
}

/// A running transfer service (the built binary, as a child process) with its own redis-server, on the shared dev-kafka, driven over real HTTP.
public final class ServiceHarness: Sendable {
    /// The instance most tests share: topic `money_transfers`, its own consumer group.
    public static let shared: ServiceHarness = {
        do {
            return try ServiceHarness(topic: "money_transfers", groupID: "transfer-processor-tests")
        } catch {
            fatalError("cannot start the service: \(error)")
        }
    }()

    public let redisServer: RedisServer
    public let instance: ServiceInstance
    public let http: HTTPTestClient
    public let redis: RedisConnectionPool
    public let topic: String
    private let producer: KafkaProducer

    public init(topic: String, groupID: String) throws {
        self.topic = topic
        redisServer = try RedisServer.start(appendOnly: true)
        instance = ServiceInstance(name: "transfer-service-\(topic)", environment: [
            "KAFKA_BOOTSTRAP_SERVERS": DevKafka.shared.bootstrapServers,
            "KAFKA_TOPIC_TRANSFERS": topic,
            "KAFKA_GROUP_ID": groupID,
            "REDIS_HOST": "127.0.0.1",
            "REDIS_PORT": String(redisServer.port),
        ])
        http = instance.http
        redis = RedisConnectionPool(configuration: RedisConfiguration(host: "127.0.0.1", port: redisServer.port))
        var producerConfiguration = KafkaProducerConfiguration(bootstrapServers: DevKafka.shared.bootstrapServers)
        // Twice librdkafka's default, as Kafka brokers take a little over 1 MB: tests publish what the service's own
        // producers could not.
        producerConfiguration.properties["message.max.bytes"] = "2000000"
        producer = try KafkaProducer(configuration: producerConfiguration, onDeliveryReports: { _ in })
        try instance.start()
    }

    // MARK: Redis

    /// The raw stored value of `transfer:<id>`.
    public func storedRecord(_ id: String) throws -> String? {
        let reply = try redis.withConnection { try $0.command(["GET", "transfer:\(id)"]) }
        return reply.string
    }

    /// Stores a raw value under `transfer:<id>`, as another writer (the sketch) would.
    public func storeRecord(_ id: String, _ json: String) throws {
        _ = try redis.withConnection { try $0.command(["SET", "transfer:\(id)", json]) }
    }

    /// The number of keys in the service's Redis database that hold data: the sweeper's short-lived lease
    /// (`transfers:sweeper:{...}`, which says which instance walks the slots) is not data and does not count.
    public func keyCount() throws -> Int64 {
        // One script, so a lease expiring between the two counts cannot skew them.
        let script = "return redis.call('DBSIZE') - #redis.call('KEYS', 'transfers:sweeper:*')"
        return try redis.withConnection { try $0.command(["EVAL", script, "0"]) }.integer ?? -1
    }

    // MARK: Kafka

    /// Publishes a raw message on the service's topic and waits until Kafka has it.
    public func publish(key: String?, value: [UInt8]) throws {
        try producer.send(topic: topic, key: key.map { Array($0.utf8) }, value: value)
        guard producer.flush(timeout: .seconds(30)) else { throw HarnessError("the message was not delivered") }
    }

    public func publish(key: String?, _ value: String) throws {
        try publish(key: key, value: Array(value.utf8))
    }

    /// Waits until the consumer has processed everything published before now with message key `key`: sends an
    /// event with the same key (so the same partition, behind them) for a transfer Redis does not have, and waits
    /// for the consumer to recreate it.
    public func waitUntilConsumed(key: String) throws {
        let marker = TransferID.random()
        try publish(key: key, Self.sketchJSON(id: marker.rawValue, version: 1, status: "initiated"))
        _ = try waitForStoredTransfer(marker.rawValue) { $0.status == .completed }
    }

    // MARK: Waiting

    /// Polls Redis until the stored transfer satisfies `condition`.
    public func waitForStoredTransfer(_ id: String, timeout: TimeInterval = 60, until condition: (Transfer) -> Bool) throws -> Transfer {
        let deadline = Date().addingTimeInterval(timeout)
        var last: String?
        while Date() < deadline {
            last = try storedRecord(id)
            if let last, let transfer = try? Transfer(json: Array(last.utf8)), condition(transfer) {
                return transfer
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw HarnessError("transfer \(id) did not reach the expected state; last stored: \(last ?? "nothing")\n\(instance.recentOutput())")
    }

    /// A record or event exactly as the original sketch's Python writes it (`json.dumps`: spaces after separators).
    public static func sketchJSON(
        id: String, version: Int, status: String, amount: String = "100.5", sender: String = "alice", receiver: String = "bob"
    ) -> String {
        #"{"transfer_id": "\#(id)", "sender_id": "\#(sender)", "receiver_id": "\#(receiver)", "amount": \#(amount), "status": "\#(status)", "version": \#(version)}"#
    }
}

/// A harness step that failed, with the service output that explains it.
public struct HarnessError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
