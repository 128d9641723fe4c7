import Foundation
import KafkaClient
import RedisClient
import Synchronization
import TestSupport
import Transfers

/// A whole deployment for fault tests: its own dev-kafka, one redis-server (append-only, restartable on the same
/// port with its data) or a Redis Cluster of 3 primaries and 3 replicas, and any number of service instances in one
/// consumer group. Nothing is shared with other tests, so taking brokers or Redis down disturbs no one else.
public final class ServiceDeployment: Sendable {
    /// The deployment's own mock Kafka cluster.
    public let kafka: DevKafka
    /// The transfers topic; its dead-letter topic is `topic + ".dlq"`.
    public let topic: String
    /// The consumer group every instance joins.
    public let groupID: String
    /// Redis's port, the same across restarts.
    public let redisPort: Int
    /// Redis's data directory (its AOF), the same across restarts.
    public let redisDirectory: String
    /// A client pool on the deployment's Redis (broken connections are dropped, so it survives restarts); with a
    /// cluster, on its first node only: use `command` and the record helpers, which route by key.
    public let redis: RedisConnectionPool
    /// The Redis Cluster, when the deployment runs on one.
    public let cluster: RedisTestCluster?
    /// The service's own Redis client, for reads that must work on a single Redis and a cluster alike.
    public let storage: any RedisDeployment
    /// The environment every instance gets, before its own additions.
    public let environment: [String: String]
    private let redisServer: Mutex<RedisServer?>
    private let instanceList = Mutex<[ServiceInstance]>([])
    private let producer: KafkaProducer

    /// Starts dev-kafka (`brokers` brokers, the topic and, unless `deadLetterTopic` is false, its DLQ with
    /// `partitions` partitions) and Redis (a Redis Cluster with `redisCluster`); no instance yet. `environment` is
    /// added to every instance's (e.g. REQUEST_TIMEOUT_MS).
    public init(
        name: String, brokers: Int = 3, partitions: Int = 3, redisCluster: Bool = false, environment: [String: String] = [:],
        deadLetterTopic: Bool = true
    ) throws {
        topic = "\(name)_transfers"
        groupID = "\(name)-processor"
        kafka = try DevKafka(
            brokers: brokers, partitions: partitions, topics: [topic], deadLetterTopics: deadLetterTopic, name: "dev-kafka-\(name)"
        )
        var merged = [
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrapServers,
            "KAFKA_TOPIC_TRANSFERS": topic,
            "KAFKA_GROUP_ID": groupID,
            // The mock cluster otherwise holds a re-join (and a crashed member's partitions) for ~45 s.
            "KAFKA_SESSION_TIMEOUT_MS": "6000",
        ]
        if redisCluster {
            let cluster = try RedisTestCluster.start()
            self.cluster = cluster
            redisServer = Mutex(nil)
            redisPort = cluster.ports[0]
            redisDirectory = ""
            merged["REDIS_CLUSTER_NODES"] = cluster.ports.prefix(3).map { "127.0.0.1:\($0)" }.joined(separator: ",")
            storage = RedisCluster(seeds: cluster.ports.map { RedisNodeID(host: "127.0.0.1", port: $0) }, configuration: RedisConfiguration())
        } else {
            let server = try RedisServer.start(appendOnly: true)
            cluster = nil
            redisServer = Mutex(server)
            redisPort = server.port
            redisDirectory = server.directory
            merged["REDIS_HOST"] = "127.0.0.1"
            merged["REDIS_PORT"] = String(server.port)
            storage = RedisNodeClient(configuration: RedisConfiguration(host: "127.0.0.1", port: server.port))
        }
        redis = RedisConnectionPool(configuration: RedisConfiguration(host: "127.0.0.1", port: redisPort))
        merged.merge(environment) { _, override in override }
        self.environment = merged
        var producerConfiguration = KafkaProducerConfiguration(bootstrapServers: kafka.bootstrapServers)
        // Only critical messages: tests take the brokers down on purpose, and this producer would log each outage.
        producerConfiguration.properties["log_level"] = "2"
        producer = try KafkaProducer(configuration: producerConfiguration, onDeliveryReports: { _ in })
    }

    /// Stops every instance, Kafka and Redis. Call it when the test ends (also after a failure).
    public func tearDown() {
        for instance in instances where instance.isRunning { instance.terminate(timeout: .seconds(10)) }
        producer.shutdown(timeout: .seconds(2))
        kafka.stop()
        storage.shutdown()
        redisServer.withLock { $0?.stop() }
        cluster?.stop()
    }

    // MARK: Instances

    /// The instances added so far.
    public var instances: [ServiceInstance] {
        instanceList.withLock { $0 }
    }

    /// Adds an instance (`environment` merged over the deployment's) and, unless told otherwise, starts it.
    @discardableResult
    public func addInstance(environment: [String: String] = [:], start: Bool = true, clientTimeout: Duration = .seconds(10)) throws -> ServiceInstance {
        let index = instanceList.withLock { $0.count } + 1
        let instance = ServiceInstance(
            name: "\(groupID)-\(index)", environment: self.environment.merging(environment) { _, override in override },
            // dev-kafka made the topics the deployment has; instances never add one.
            clientTimeout: clientTimeout, createsDeadLetterTopic: false
        )
        instanceList.withLock { $0.append(instance) }
        if start { try instance.start() }
        return instance
    }

    // MARK: Redis

    /// SIGTERM to redis-server (it writes its AOF out) and waits until it is gone.
    public func stopRedis() {
        redisServer.withLock { server in
            server?.stop()
            server = nil
        }
    }

    /// Freezes redis-server (SIGSTOP): connections stay open, nothing is answered, sent commands wait in its
    /// socket buffers until `thawRedis`.
    public func freezeRedis() {
        redisServer.withLock { $0?.process.signal(SIGSTOP) }
    }

    /// Lets a frozen redis-server run again (SIGCONT); it then runs what was sent meanwhile.
    public func thawRedis() {
        redisServer.withLock { $0?.process.signal(SIGCONT) }
    }

    /// Starts redis-server again on the same port with the same data directory.
    public func restartRedis() throws {
        let server = try RedisServer.start(appendOnly: true, port: redisPort, directory: redisDirectory)
        redisServer.withLock { $0 = server }
    }

    /// Runs one command through the service's own Redis client, routed by `key` (on a single Redis or a cluster),
    /// retrying a few times while Redis is away (a restart, a failover).
    public func command(_ arguments: [String], key: String?) throws -> RedisReply {
        var attempt = 0
        while true {
            let response = storage.execute(RedisRequest([.command(arguments, key: key)], timeout: .seconds(5)))
            switch response.replies[0] {
            case .success(.error(let message)) where attempt < 20 && (message.hasPrefix("CLUSTERDOWN") || message.hasPrefix("TRYAGAIN")):
                break
            case .success(let reply):
                return reply
            case .failure(let error) where attempt >= 20:
                throw error
            case .failure:
                break
            }
            attempt += 1
            Thread.sleep(forTimeInterval: 0.25)
        }
    }

    /// Every key matching `pattern`, on every primary (SCAN; tests only: the service never scans).
    public func keys(matching pattern: String) throws -> [String] {
        var keys: [String] = []
        for primary in try storage.primaries() {
            var cursor = "0"
            repeat {
                let response = storage.execute(
                    RedisRequest([.command(["SCAN", cursor, "MATCH", pattern, "COUNT", "1000"], key: nil)], timeout: .seconds(10)),
                    on: primary.id
                )
                guard case .success(let reply) = response.replies[0], let parts = reply.array, parts.count == 2,
                      let next = parts[0].string, let batch = parts[1].array
                else { throw HarnessError("unexpected SCAN reply: \(response.replies[0])") }
                keys += batch.compactMap(\.string)
                cursor = next
            } while cursor != "0"
        }
        return keys
    }

    /// Runs `body` on a pooled connection, retrying a few times (a pooled connection may predate a Redis restart).
    public func withRedis<T>(_ body: (RedisConnection) throws -> T) throws -> T {
        var attempt = 0
        while true {
            do {
                return try redis.withConnection(body)
            } catch {
                attempt += 1
                if attempt >= 5 { throw error }
                Thread.sleep(forTimeInterval: 0.2)
            }
        }
    }

    /// Every stored transfer record: transfer id to raw JSON.
    public func storedRecords() throws -> [String: String] {
        let ids = try keys(matching: "transfer:*").filter { !$0.hasSuffix(":history") }.map { String($0.dropFirst("transfer:".count)) }
        return try storedRecords(of: ids)
    }

    /// Polls Redis until the stored transfer satisfies `condition`.
    public func waitForStoredTransfer(_ id: String, timeout: TimeInterval = 60, until condition: (Transfer) -> Bool) throws -> Transfer {
        let deadline = Date().addingTimeInterval(timeout)
        var last: String?
        while Date() < deadline {
            last = try command(["GET", "transfer:\(id)"], key: "transfer:\(id)").string
            if let last, let transfer = try? Transfer(json: Array(last.utf8)), condition(transfer) {
                return transfer
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw HarnessError("transfer \(id) did not reach the expected state; last stored: \(last ?? "nothing")")
    }

    /// The stored records of `ids` (missing ones are absent from the result). Reads that fail (a primary just
    /// failed over, Redis restarting) are tried again for a while.
    public func storedRecords(of ids: [String]) throws -> [String: String] {
        var records: [String: String] = [:]
        var unread = ids
        var attempt = 0
        while !unread.isEmpty {
            var failed: [String] = []
            for chunk in stride(from: 0, to: unread.count, by: 500).map({ Array(unread[$0..<min($0 + 500, unread.count)]) }) {
                let reads = chunk.map { RedisCommand.command(["GET", "transfer:\($0)"], key: "transfer:\($0)") }
                let response = storage.execute(RedisRequest(reads, timeout: .seconds(10)))
                for (id, reply) in zip(chunk, response.replies) {
                    switch reply {
                    case .success(.string(let bytes)): records[id] = String(decoding: bytes, as: UTF8.self)
                    // Nothing there, or a value that is not a string (a test put a wrong type there): no record.
                    case .success: break
                    case .failure(let error):
                        if attempt >= 40 { throw HarnessError("cannot read transfer:\(id): \(error)") }
                        failed.append(id)
                    }
                }
            }
            unread = failed
            if !unread.isEmpty {
                attempt += 1
                Thread.sleep(forTimeInterval: 0.25)
            }
        }
        return records
    }

    /// Entries in the outbox (one sorted set per hash slot, `transfers:outbox:{<slot tag>}`): events not yet
    /// confirmed by Kafka. Found with SCAN, which only tests do.
    public func outboxCount() throws -> Int {
        try keys(matching: "transfers:outbox:*").reduce(0) { count, key in
            count + Int(try command(["ZCARD", key], key: key).integer ?? 0)
        }
    }

    // MARK: Logs

    /// Per transfer id, how many times any run of any instance logged applying its event ("transfer completed",
    /// or the record being recreated from its event).
    public func appliedLogCounts() -> (completed: [String: Int], recreated: [String: Int]) {
        var completed: [String: Int] = [:]
        var recreated: [String: Int] = [:]
        for line in instances.flatMap({ $0.logLines() }) {
            // Text lines end with the message; JSON lines (LOG_FORMAT=json) carry it as a field.
            if line.hasSuffix("] transfer completed") || line.contains(#""message":"transfer completed""#),
                let id = Self.transferID(in: line)
            {
                completed[id, default: 0] += 1
            } else if line.contains("recreated from its event"), let id = Self.transferID(in: line) {
                recreated[id, default: 0] += 1
            }
        }
        return (completed, recreated)
    }

    /// The value of `transfer_id=` (swift-log's metadata) or `"transfer_id":"` (JSON logs) in a log line.
    static func transferID(in line: Substring) -> String? {
        for marker in ["transfer_id=", "\"transfer_id\":\"", "\"transfer_id\": \""] {
            if let range = line.range(of: marker) {
                let id = line[range.upperBound...].prefix(36)
                if id.count == 36 { return String(id) }
            }
        }
        return nil
    }

    static func transferID(in line: String) -> String? {
        transferID(in: line[...])
    }

    // MARK: Kafka

    /// Throws when dev-kafka has exited: nothing in a test stops it before `tearDown`, so something outside did.
    public func checkKafkaRunning() throws {
        guard kafka.process.isRunning else {
            throw HarnessError("dev-kafka exited unexpectedly (something outside the test stopped it?)\n\(kafka.process.recentOutput())")
        }
    }

    /// Creates `topic` (with dev-kafka's default partition count) by sending it a message keyed `creationProbeKey`
    /// (a send names the topic in a metadata request, and dev-kafka creates what is named); true when it was missing.
    /// The key of the message `createTopic` leaves on the topic it created.
    public static let creationProbeKey = "topic-creation-probe"

    @discardableResult
    public func createTopic(_ topic: String) throws -> Bool {
        let existed = try producer.partitionCount(of: topic, timeout: .seconds(10)) != nil
        guard !existed else { return false }
        var metadataRequests = 0
        // A send names the topic in a metadata request; dev-kafka creates it then.
        try producer.send(topic: topic, key: Array(Self.creationProbeKey.utf8), value: [])
        while try producer.partitionCount(of: topic, timeout: .seconds(10)) == nil {
            metadataRequests += 1
            guard metadataRequests < 100 else { throw HarnessError("\(topic) was not created") }
            Thread.sleep(forTimeInterval: 0.1)
        }
        guard producer.flush(timeout: .seconds(30)) else { throw HarnessError("the probe on \(topic) was not delivered") }
        return true
    }

    /// Publishes a raw message on `topic` (default: the transfers topic) and waits until Kafka has it.
    public func publish(key: String?, value: [UInt8], topic: String? = nil) throws {
        try producer.send(topic: topic ?? self.topic, key: key.map { Array($0.utf8) }, value: value)
        guard producer.flush(timeout: .seconds(30)) else { throw HarnessError("the message was not delivered") }
    }

    /// Publishes raw messages on the transfers topic in this order (per key, Kafka keeps it) and waits until Kafka
    /// has them all.
    public func publish(_ messages: [(key: String?, value: [UInt8])]) throws {
        for message in messages {
            try producer.send(topic: topic, key: message.key.map { Array($0.utf8) }, value: message.value)
        }
        guard producer.flush(timeout: .seconds(30)) else { throw HarnessError("\(messages.count) messages were not delivered") }
    }

    /// Reads the transfers topic and its dead-letter topic from the beginning, in a fresh consumer group.
    ///
    /// Kafka has no "end" for a subscriber, so first a marker is published to every partition of the DLQ topic
    /// (so the DLQ read ends once every marker is back), and the transfers topic is read until every id in
    /// `expectedKeys` has appeared, then for `quiet` more with nothing new. Markers are left out of the result.
    public func readTopics(expectedKeys: Set<String>, quiet: Duration = .seconds(2), timeout: Duration = .seconds(90)) throws -> TopicContents {
        let dlqTopic = topic + ".dlq"
        let markerRun = UUID().uuidString
        // Keys chosen until the producer's partitioner has put one on each partition; the consumer checks that.
        let markerKeys = (0..<24).map { "end-marker-\(markerRun)-\($0)" }
        for key in markerKeys {
            try producer.send(topic: dlqTopic, key: Array(key.utf8), value: Array("end marker".utf8))
        }
        guard producer.flush(timeout: .seconds(30)) else { throw HarnessError("the end markers were not delivered") }

        var configuration = KafkaConsumerConfiguration(bootstrapServers: kafka.bootstrapServers, groupId: "inspector-\(markerRun)")
        configuration.autoOffsetReset = "earliest"
        let consumer = try KafkaConsumer(configuration: configuration)
        defer { consumer.close() }
        try consumer.subscribe(topics: [topic, dlqTopic])

        var contents = TopicContents()
        var markersSeen = 0
        var missingKeys = expectedKeys
        let deadline = ContinuousClock.now + timeout
        var quietSince = ContinuousClock.now
        while ContinuousClock.now < deadline {
            try checkKafkaRunning()
            let done = markersSeen == markerKeys.count && missingKeys.isEmpty
            if done && ContinuousClock.now - quietSince >= quiet { return contents }
            guard let message = try consumer.poll(timeout: .milliseconds(100)) else { continue }
            quietSince = ContinuousClock.now
            let key = message.key.map { String(decoding: $0, as: UTF8.self) }
            if message.topic == dlqTopic {
                if let key, key.hasPrefix("end-marker-\(markerRun)") {
                    markersSeen += 1
                } else if !(key?.hasPrefix("end-marker-") ?? false) {
                    contents.deadLetters.append(message)
                }
            } else {
                contents.events.append(message)
                if let key { missingKeys.remove(key) }
            }
        }
        throw HarnessError(
            "reading the topics did not finish within \(timeout): \(markersSeen)/\(markerKeys.count) end markers, "
                + "\(missingKeys.count) expected keys never seen (e.g. \(Array(missingKeys.prefix(3))))"
        )
    }
}

/// What `ServiceDeployment.readTopics` found.
public struct TopicContents: Sendable {
    /// Messages on the transfers topic, in the order read.
    public var events: [KafkaMessage] = []
    /// Messages on the dead-letter topic (without the reader's end markers).
    public var deadLetters: [KafkaMessage] = []

    /// Nothing read yet.
    public init() {}

    /// How many events each message key has on the transfers topic.
    public var eventCountsByKey: [String: Int] {
        var counts: [String: Int] = [:]
        for event in events {
            counts[event.key.map { String(decoding: $0, as: UTF8.self) } ?? "", default: 0] += 1
        }
        return counts
    }
}
