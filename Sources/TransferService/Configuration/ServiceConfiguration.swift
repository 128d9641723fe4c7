import KafkaClient
import RedisClient

/// Everything the service needs to run, read from environment variables and command-line flags.
///
/// Each setting has an environment variable named after the original sketch's constants and a matching flag
/// (`REDIS_PORT` ↔ `--redis-port`); a flag wins over the environment, the environment over the default.
public struct ServiceConfiguration: Sendable, Equatable {
    public var kafkaBootstrapServers = "localhost:9092"
    public var kafkaTopic = "money_transfers"
    public var kafkaGroupID = "transfer-processor"
    /// How long the group waits for a silent consumer before giving its partitions to others (librdkafka's default).
    public var kafkaSessionTimeoutMilliseconds = 45_000
    public var redisHost = "localhost"
    public var redisPort = 6379
    public var redisDatabase = 0
    public var redisPassword: String?
    /// The Redis ACL user sent with the password (`AUTH user password`); unset: the default user.
    public var redisUsername: String?
    /// Seed nodes of a Redis Cluster; when any is given the service runs in cluster mode and `redisHost`,
    /// `redisPort` and `redisDatabase` are not used.
    public var redisClusterNodes: [HostAndPort] = []
    /// Replicas that must confirm a write (Redis `WAIT`) before it is answered; nil: the mode's default.
    public var redisWaitReplicasSetting: Int?
    public var httpHost = "0.0.0.0"
    public var httpPort = 8080
    /// The longest an HTTP request may wait on Redis (connect plus command), in milliseconds.
    public var requestTimeoutMilliseconds = 5_000
    /// libmicrohttpd worker threads; each may hold one Redis connection while it serves a request.
    public var httpThreads = 8
    public var logLevel = "info"
    /// `text` (one readable line per event) or `json` (one JSON object per line).
    public var logFormat = "text"
    /// Bearer tokens that may call the API; empty means no authentication.
    public var apiTokens: [String] = []
    /// How long a transfer may stay `initiated` before the reconciler publishes its event again, in milliseconds.
    public var reconcileAfterMilliseconds = 60_000
    /// On SIGTERM, how long `/readyz` answers 503 before the listener closes, in milliseconds (load balancers
    /// need a moment to take the instance out).
    public var shutdownDelayMilliseconds = 0
    /// How long a finished (completed or cancelled) transfer is kept, in seconds; nil keeps it forever.
    public var transferRetentionSeconds: Int?

    /// True when the service talks to a Redis Cluster.
    public var isRedisCluster: Bool { !redisClusterNodes.isEmpty }

    /// Replicas each write must reach before it is answered: as set, else 1 in cluster mode (an acknowledged
    /// transfer survives the loss of its master) and 0 with a single Redis (which has no replica to wait for).
    public var redisWaitReplicas: Int { redisWaitReplicasSetting ?? (isRedisCluster ? 1 : 0) }

    /// The defaults.
    public init() {}

    /// Redis settings whose connect and command timeouts together stay within the request timeout, since a request
    /// makes at most one connect and one command.
    public var redis: RedisConfiguration {
        let budget = Duration.milliseconds(requestTimeoutMilliseconds)
        let connectTimeout = min(budget / 4, .seconds(1))
        return RedisConfiguration(
            host: redisHost, port: redisPort, username: redisUsername, password: redisPassword, database: redisDatabase,
            connectTimeout: connectTimeout, commandTimeout: budget - connectTimeout
        )
    }

    /// The producers' settings (outbox and dead letters): librdkafka's idempotent producer, acks=all.
    public var kafkaProducer: KafkaProducerConfiguration {
        KafkaProducerConfiguration(bootstrapServers: kafkaBootstrapServers)
    }

    /// The consumer's settings: the group, and fetching tuned for latency and memory.
    public var kafkaConsumer: KafkaConsumerConfiguration {
        var consumer = KafkaConsumerConfiguration(bootstrapServers: kafkaBootstrapServers, groupId: kafkaGroupID)
        consumer.properties["session.timeout.ms"] = String(kafkaSessionTimeoutMilliseconds)
        consumer.properties["heartbeat.interval.ms"] = String(min(3_000, kafkaSessionTimeoutMilliseconds / 3))
        // A fetch that finds nothing returns after this; short, so a new event is seen within milliseconds
        // even by brokers that do not answer a waiting fetch as soon as data arrives (the mock cluster).
        consumer.properties["fetch.wait.max.ms"] = "10"
        // Memory: librdkafka's defaults prefetch up to 64 MB and read fetch responses of up to 50 MB (1 MB per
        // partition). Far smaller is enough to keep the batches full. A full prefetch queue pauses fetching for
        // fetch.error.backoff.ms (500 ms by default), which would starve the consumer, so that pause is short.
        consumer.properties["queued.max.messages.kbytes"] = "8192"
        consumer.properties["fetch.max.bytes"] = "4194304"
        consumer.properties["max.partition.fetch.bytes"] = "262144"
        consumer.properties["fetch.error.backoff.ms"] = "20"
        return consumer
    }

    /// One setting: its environment variable, how to apply a text value, and its help line.
    struct Setting: Sendable {
        var environmentName: String
        var help: String
        var apply: @Sendable (inout ServiceConfiguration, String) throws(ConfigurationError) -> Void

        /// `REDIS_PORT` → `--redis-port`.
        var flag: String { "--" + String(environmentName.lowercased().map { $0 == "_" ? "-" : $0 }) }
    }

    static let settings: [Setting] = [
        Setting(environmentName: "KAFKA_BOOTSTRAP_SERVERS", help: "Kafka brokers, host:port[,host:port...] (localhost:9092)") { configuration, value throws(ConfigurationError) in
            configuration.kafkaBootstrapServers = try nonEmpty(value, "KAFKA_BOOTSTRAP_SERVERS")
        },
        Setting(environmentName: "KAFKA_TOPIC_TRANSFERS", help: "topic for transfer events (money_transfers)") { configuration, value throws(ConfigurationError) in
            configuration.kafkaTopic = try topicName(value, "KAFKA_TOPIC_TRANSFERS")
        },
        Setting(environmentName: "KAFKA_GROUP_ID", help: "consumer group of the processor (transfer-processor)") { configuration, value throws(ConfigurationError) in
            configuration.kafkaGroupID = try nonEmpty(value, "KAFKA_GROUP_ID")
        },
        Setting(environmentName: "KAFKA_SESSION_TIMEOUT_MS", help: "consumer group session timeout in ms (45000)") {
            configuration, value throws(ConfigurationError) in
            configuration.kafkaSessionTimeoutMilliseconds = try integer(value, "KAFKA_SESSION_TIMEOUT_MS", in: 1_000...3_600_000)
        },
        Setting(environmentName: "REDIS_HOST", help: "Redis host (localhost)") { configuration, value throws(ConfigurationError) in
            configuration.redisHost = try nonEmpty(value, "REDIS_HOST")
        },
        Setting(environmentName: "REDIS_PORT", help: "Redis port (6379)") { configuration, value throws(ConfigurationError) in
            configuration.redisPort = try integer(value, "REDIS_PORT", in: 1...65535)
        },
        Setting(environmentName: "REDIS_DB", help: "Redis database number (0)") { configuration, value throws(ConfigurationError) in
            configuration.redisDatabase = try integer(value, "REDIS_DB", in: 0...65535)
        },
        Setting(environmentName: "REDIS_PASSWORD", help: "Redis password (unset)") { configuration, value throws(ConfigurationError) in
            configuration.redisPassword = value.isEmpty ? nil : value
        },
        Setting(environmentName: "REDIS_USERNAME", help: "Redis ACL user, sent with the password (unset: the default user)") {
            configuration, value throws(ConfigurationError) in
            configuration.redisUsername = value.isEmpty ? nil : value
        },
        Setting(environmentName: "REDIS_CLUSTER_NODES", help: "Redis Cluster seed nodes, host:port[,host:port...]; set: cluster mode (unset)") {
            configuration, value throws(ConfigurationError) in
            configuration.redisClusterNodes = try hostAndPortList(value, "REDIS_CLUSTER_NODES")
        },
        Setting(environmentName: "REDIS_WAIT_REPLICAS", help: "replicas that must confirm each write before it is answered (0; 1 in cluster mode)") {
            configuration, value throws(ConfigurationError) in
            configuration.redisWaitReplicasSetting = try integer(value, "REDIS_WAIT_REPLICAS", in: 0...16)
        },
        Setting(environmentName: "RECONCILE_AFTER_MS", help: "republish the event of a transfer still initiated after this many ms (60000)") {
            configuration, value throws(ConfigurationError) in
            configuration.reconcileAfterMilliseconds = try integer(value, "RECONCILE_AFTER_MS", in: 1_000...86_400_000)
        },
        Setting(environmentName: "SHUTDOWN_DELAY_MS", help: "on SIGTERM, answer /readyz 503 this many ms before closing the listener (0)") {
            configuration, value throws(ConfigurationError) in
            configuration.shutdownDelayMilliseconds = try integer(value, "SHUTDOWN_DELAY_MS", in: 0...600_000)
        },
        Setting(environmentName: "TRANSFER_RETENTION", help: "keep finished transfers this long, e.g. 30d, 12h, 90m (unset: forever)") {
            configuration, value throws(ConfigurationError) in
            configuration.transferRetentionSeconds = try duration(value, "TRANSFER_RETENTION")
        },
        Setting(environmentName: "HTTP_HOST", help: "address to listen on (0.0.0.0)") { configuration, value throws(ConfigurationError) in
            configuration.httpHost = try nonEmpty(value, "HTTP_HOST")
        },
        Setting(environmentName: "HTTP_PORT", help: "port to listen on; 0 picks a free one (8080)") { configuration, value throws(ConfigurationError) in
            configuration.httpPort = try integer(value, "HTTP_PORT", in: 0...65535)
        },
        Setting(environmentName: "REQUEST_TIMEOUT_MS", help: "longest an HTTP request waits on Redis, in ms (5000)") {
            configuration, value throws(ConfigurationError) in
            configuration.requestTimeoutMilliseconds = try integer(value, "REQUEST_TIMEOUT_MS", in: 100...600_000)
        },
        Setting(environmentName: "HTTP_THREADS", help: "HTTP worker threads (8)") { configuration, value throws(ConfigurationError) in
            configuration.httpThreads = try integer(value, "HTTP_THREADS", in: 1...256)
        },
        Setting(environmentName: "LOG_FORMAT", help: "text or json (text)") {
            configuration, value throws(ConfigurationError) in
            guard value == "text" || value == "json" else {
                throw ConfigurationError(setting: "LOG_FORMAT", reason: "must be text or json, not '\(value)'")
            }
            configuration.logFormat = value
        },
        Setting(environmentName: "API_TOKENS", help: "comma-separated bearer tokens; unset: no authentication") {
            configuration, value throws(ConfigurationError) in
            configuration.apiTokens = value.split(separator: ",").map { String($0.trimmingWhitespace()) }.filter { !$0.isEmpty }
        },
        Setting(environmentName: "LOG_LEVEL", help: "trace, debug, info, notice, warning, error or critical (info)") {
            configuration, value throws(ConfigurationError) in
            let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
            guard levels.contains(value) else {
                throw ConfigurationError(setting: "LOG_LEVEL", reason: "'\(value)' is not one of \(levels.joined(separator: ", "))")
            }
            configuration.logLevel = value
        },
    ]

    /// Reads the environment, then the flags (`--name value` or `--name=value`).
    public static func load(environment: [String: String], arguments: [String]) throws(ConfigurationError) -> ServiceConfiguration {
        var configuration = ServiceConfiguration()
        var given: Set<String> = []
        for setting in settings {
            if let value = environment[setting.environmentName] {
                try setting.apply(&configuration, value)
                given.insert(setting.environmentName)
            }
        }
        var remaining = arguments[...]
        while let argument = remaining.popFirst() {
            let name: String
            let value: String
            if let equals = argument.firstIndex(of: "=") {
                name = String(argument[..<equals])
                value = String(argument[argument.index(after: equals)...])
            } else {
                name = argument
                guard let next = remaining.popFirst() else {
                    throw ConfigurationError(setting: argument, reason: "needs a value")
                }
                value = next
            }
            guard let setting = settings.first(where: { $0.flag == name }) else {
                throw ConfigurationError(setting: name, reason: "is not a known option (see --help)")
            }
            try setting.apply(&configuration, value)
            given.insert(setting.environmentName)
        }
        if configuration.isRedisCluster {
            // A cluster has no database numbers, and one Redis address next to the seed nodes is a mistake to
            // point out rather than guess which one was meant.
            for single in ["REDIS_HOST", "REDIS_PORT", "REDIS_DB"] where given.contains(single) {
                throw ConfigurationError(setting: single, reason: "cannot be used with REDIS_CLUSTER_NODES (cluster mode)")
            }
        }
        return configuration
    }

    /// The `--help` text: every flag, its variable and its default.
    public static var usage: String {
        var lines = ["usage: transfer-service [--option value ...]", "", "Options (each also read from the environment variable shown):"]
        for setting in settings {
            let flag = setting.flag + String(repeating: " ", count: max(1, 28 - setting.flag.count))
            lines.append("  \(flag)\(setting.environmentName): \(setting.help)")
        }
        return lines.joined(separator: "\n")
    }
}

/// A network address as `host:port`.
public struct HostAndPort: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { "\(host):\(port)" }
}

/// A setting that cannot be used, named so the operator can fix it.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The environment variable or flag.
    public var setting: String
    public var reason: String

    public var description: String { "invalid configuration: \(setting) \(reason)" }
}

private func nonEmpty(_ value: String, _ name: String) throws(ConfigurationError) -> String {
    guard !value.isEmpty else { throw ConfigurationError(setting: name, reason: "must not be empty") }
    return value
}

private func integer(_ value: String, _ name: String, in range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
    guard let number = Int(value), range.contains(number) else {
        throw ConfigurationError(setting: name, reason: "must be a whole number from \(range.lowerBound) to \(range.upperBound), not '\(value)'")
    }
    return number
}

/// `host:port[,host:port...]`.
private func hostAndPortList(_ value: String, _ name: String) throws(ConfigurationError) -> [HostAndPort] {
    var nodes: [HostAndPort] = []
    for entry in value.split(separator: ",") {
        let text = entry.trimmingWhitespace()
        guard let colon = text.lastIndex(of: ":"), colon != text.startIndex,
              let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port)
        else {
            throw ConfigurationError(setting: name, reason: "must be host:port[,host:port...], not '\(value)'")
        }
        nodes.append(HostAndPort(host: String(text[..<colon]), port: port))
    }
    guard !nodes.isEmpty else { throw ConfigurationError(setting: name, reason: "must name at least one host:port") }
    return nodes
}

/// A duration such as `45s`, `90m`, `12h` or `30d`, in seconds.
private func duration(_ value: String, _ name: String) throws(ConfigurationError) -> Int {
    let units: [Character: Int] = ["s": 1, "m": 60, "h": 3_600, "d": 86_400]
    guard let unit = value.last.flatMap({ units[$0] }), let count = Int(value.dropLast()), count > 0,
          !count.multipliedReportingOverflow(by: unit).overflow
    else {
        throw ConfigurationError(setting: name, reason: "must be a positive whole number followed by s, m, h or d (e.g. 30d), not '\(value)'")
    }
    return count * unit
}

/// Kafka topic names: 1 to 249 of `[a-zA-Z0-9._-]`.
private func topicName(_ value: String, _ name: String) throws(ConfigurationError) -> String {
    let allowed = value.utf8.allSatisfy { byte in
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: ".")
            || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
    }
    guard allowed, (1...249).contains(value.utf8.count), value != ".", value != ".." else {
        throw ConfigurationError(setting: name, reason: "must be 1 to 249 characters of letters, digits, '.', '_' or '-', not '\(value)'")
    }
    return value
}
