import KafkaClient
import RedisClient

/// Every setting of the service, once: its environment variable (the flag is derived from it), its help line and
/// how its text becomes part of a `ServiceConfiguration`.
public enum ServiceSettings {
    /// One setting: its environment variable, how to apply a text value, and its help line.
    struct Setting: Sendable {
        var environmentName: String
        var help: String
        var apply: @Sendable (inout ServiceConfiguration, String) throws(ConfigurationError) -> Void

        /// `REDIS_PORT` → `--redis-port`.
        var flag: String { "--" + String(environmentName.lowercased().map { $0 == "_" ? "-" : $0 }) }
    }

    /// The settings, in `--help` order.
    static let all: [Setting] = [
        Setting(environmentName: "KAFKA_BOOTSTRAP_SERVERS", help: "Kafka brokers, host:port[,host:port...] (localhost:9092)") { configuration, value throws(ConfigurationError) in
            configuration.kafkaBootstrapServers = try nonEmpty(value, "KAFKA_BOOTSTRAP_SERVERS")
        },
        Setting(environmentName: "KAFKA_TOPIC_TRANSFERS", help: "topic for transfer events; dead letters go to <topic>.dlq (money_transfers)") { configuration, value throws(ConfigurationError) in
            configuration.kafkaTopic = try topicName(value, "KAFKA_TOPIC_TRANSFERS")
        },
        Setting(environmentName: "KAFKA_GROUP_ID", help: "consumer group of the processor (transfer-processor)") { configuration, value throws(ConfigurationError) in
            configuration.kafkaGroupID = try nonEmpty(value, "KAFKA_GROUP_ID")
        },
        Setting(environmentName: "KAFKA_SESSION_TIMEOUT_MS", help: "consumer group session timeout in ms (45000)") {
            configuration, value throws(ConfigurationError) in
            configuration.kafkaSessionTimeoutMilliseconds = try integer(value, "KAFKA_SESSION_TIMEOUT_MS", in: 1_000...3_600_000)
        },
        Setting(environmentName: "KAFKA_PROPERTIES_FILE", help: "file of librdkafka properties (name=value lines, # comments) for every Kafka client: security.protocol, sasl.*, ssl.*, client.id... (unset)") {
            configuration, value throws(ConfigurationError) in
            let text = try readConfigurationFile(value, "KAFKA_PROPERTIES_FILE")
            let file: KafkaPropertiesFile
            do throws(KafkaPropertiesError) {
                file = try KafkaPropertiesFile(path: value, text: text)
            } catch {
                throw ConfigurationError(setting: "KAFKA_PROPERTIES_FILE", reason: error.description)
            }
            for entry in file.entries {
                if let reason = protectedKafkaPropertyReason(entry.name) {
                    throw ConfigurationError(
                        setting: "KAFKA_PROPERTIES_FILE", reason: "\(value) line \(entry.line): \(entry.name) is set by the service (\(reason)); remove it"
                    )
                }
            }
            configuration.kafkaPropertiesFile = file
        },
        Setting(environmentName: "KAFKA_CREATE_TOPICS", help: "true: create the topic and its .dlq at start if missing; false: only check that they exist (false)") {
            configuration, value throws(ConfigurationError) in
            configuration.kafkaCreateTopics = try boolean(value, "KAFKA_CREATE_TOPICS")
        },
        Setting(environmentName: "KAFKA_TOPIC_PARTITIONS", help: "partitions of topics created by KAFKA_CREATE_TOPICS (6)") {
            configuration, value throws(ConfigurationError) in
            configuration.kafkaTopicPartitions = try integer(value, "KAFKA_TOPIC_PARTITIONS", in: 1...10_000)
        },
        Setting(environmentName: "KAFKA_TOPIC_REPLICATION_FACTOR", help: "replicas of topics created by KAFKA_CREATE_TOPICS; -1: the broker's default (3)") {
            configuration, value throws(ConfigurationError) in
            let factor = try integer(value, "KAFKA_TOPIC_REPLICATION_FACTOR", in: -1...32)
            guard factor != 0 else {
                throw ConfigurationError(setting: "KAFKA_TOPIC_REPLICATION_FACTOR", reason: "must be -1 (the broker's default) or 1 to 32, not '0'")
            }
            configuration.kafkaTopicReplicationFactor = factor
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
        Setting(environmentName: "REDIS_PASSWORD", help: "Redis password; prefer REDIS_PASSWORD_FILE, since a flag shows in ps (unset)") {
            configuration, value throws(ConfigurationError) in
            configuration.redisPassword = value.isEmpty ? nil : value
        },
        Setting(environmentName: "REDIS_PASSWORD_FILE", help: "file holding the Redis password; a trailing newline is ignored (unset)") {
            configuration, value throws(ConfigurationError) in
            configuration.redisPassword = try secretFromFile(value, "REDIS_PASSWORD_FILE")
            configuration.redisPasswordFile = value
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
        Setting(environmentName: "API_TOKENS", help: "comma-separated bearer tokens; prefer API_TOKENS_FILE, since a flag shows in ps (unset: no authentication)") {
            configuration, value throws(ConfigurationError) in
            configuration.apiTokens = tokenList(value)
        },
        Setting(environmentName: "API_TOKENS_FILE", help: "file of bearer tokens, separated by commas or newlines (unset)") {
            configuration, value throws(ConfigurationError) in
            let tokens = tokenList(try readConfigurationFile(value, "API_TOKENS_FILE"))
            guard !tokens.isEmpty else {
                // Running without authentication because a secret was mounted empty would be a silent hole.
                throw ConfigurationError(setting: "API_TOKENS_FILE", reason: "\(value) holds no token")
            }
            configuration.apiTokens = tokens
            configuration.apiTokensFile = value
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

    /// The setting named by its environment variable.
    static func setting(_ environmentName: String) -> Setting? {
        all.first { $0.environmentName == environmentName }
    }

    /// librdkafka properties the service sets itself and relies on, with why: a properties file may not set them.
    /// (`bootstrap.servers` is allowed in the file, as managed services hand it out: see `checkCombinations`.)
    public static let protectedKafkaProperties: [String: String] = [
        "enable.idempotence": "the outbox relies on the idempotent producer",
        "acks": "events are confirmed only with acks=all",
        "request.required.acks": "events are confirmed only with acks=all",
        "transactional.id": "the producers are not transactional",
        "enable.auto.offset.store": "offsets are stored only after an event is applied (at least once)",
        "enable.auto.commit": "only stored offsets are committed, automatically",
        "auto.commit.enable": "only stored offsets are committed, automatically",
        "auto.offset.reset": "a new consumer group starts at the earliest event, so none is skipped",
        "group.id": "use KAFKA_GROUP_ID",
        "group.instance.id": "one file serves every instance, and static members must differ",
        "partition.assignment.strategy": "the consumer's rebalance handling expects the default strategy",
        "session.timeout.ms": "use KAFKA_SESSION_TIMEOUT_MS",
        "heartbeat.interval.ms": "derived from KAFKA_SESSION_TIMEOUT_MS",
        "allow.auto.create.topics": "topics are checked and created by the service (KAFKA_CREATE_TOPICS)",
        "message.timeout.ms": "the outbox lease must outlast the producer's delivery timeout",
        "delivery.timeout.ms": "the outbox lease must outlast the producer's delivery timeout",
    ]

    /// Why a properties file may not set `name`; nil when it may. librdkafka also takes a topic-level property
    /// with a `topic.` prefix (`topic.auto.offset.reset` is `auto.offset.reset`), so the prefix is looked through.
    static func protectedKafkaPropertyReason(_ name: String) -> String? {
        let prefix = "topic."
        return protectedKafkaProperties[name.hasPrefix(prefix) ? String(name.dropFirst(prefix.count)) : name]
    }

    /// Rules between settings, checked once all are read. `given` holds the environment names that had a value.
    static func checkCombinations(_ configuration: inout ServiceConfiguration, given: Set<String>) throws(ConfigurationError) {
        if configuration.isRedisCluster {
            // A cluster has no database numbers, and one Redis address next to the seed nodes is a mistake to
            // point out rather than guess which one was meant.
            for single in ["REDIS_HOST", "REDIS_PORT", "REDIS_DB"] where given.contains(single) {
                throw ConfigurationError(setting: single, reason: "cannot be used with REDIS_CLUSTER_NODES (cluster mode)")
            }
        }
        for (direct, file) in [("REDIS_PASSWORD", "REDIS_PASSWORD_FILE"), ("API_TOKENS", "API_TOKENS_FILE")]
        where given.contains(direct) && given.contains(file) {
            throw ConfigurationError(setting: file, reason: "cannot be used together with \(direct); set one of them")
        }
        // Managed services put the brokers in the properties file: take them from there, unless also set directly.
        if var file = configuration.kafkaPropertiesFile,
           let entry = file.entries.first(where: { $0.name == "bootstrap.servers" || $0.name == "metadata.broker.list" }) {
            guard !given.contains("KAFKA_BOOTSTRAP_SERVERS") else {
                throw ConfigurationError(
                    setting: "KAFKA_PROPERTIES_FILE",
                    reason: "\(file.path) line \(entry.line): \(entry.name) cannot be used together with KAFKA_BOOTSTRAP_SERVERS; set one of them"
                )
            }
            configuration.kafkaBootstrapServers = try nonEmpty(entry.value, "KAFKA_PROPERTIES_FILE")
            file.entries.removeAll { $0.name == entry.name }
            configuration.kafkaPropertiesFile = file
        }
    }
}

/// A setting that cannot be used, named so the operator can fix it. Its text never contains a secret.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The environment variable or flag.
    public var setting: String
    public var reason: String

    public init(setting: String, reason: String) {
        self.setting = setting
        self.reason = reason
    }

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

private func boolean(_ value: String, _ name: String) throws(ConfigurationError) -> Bool {
    switch value {
    case "true": return true
    case "false": return false
    default: throw ConfigurationError(setting: name, reason: "must be true or false, not '\(value)'")
    }
}

/// Tokens separated by commas or line breaks, blanks around them dropped.
private func tokenList(_ value: String) -> [String] {
    value.split { $0 == "," || $0.isNewline }.map { String($0.trimmingWhitespace()) }.filter { !$0.isEmpty }
}

/// A secret mounted as a file (Docker and Kubernetes secrets): its contents without the trailing line break.
private func secretFromFile(_ path: String, _ name: String) throws(ConfigurationError) -> String {
    var secret = try readConfigurationFile(path, name)
    while let last = secret.last, last.isNewline { secret.removeLast() }
    guard !secret.isEmpty else { throw ConfigurationError(setting: name, reason: "\(path) is empty") }
    return secret
}

/// `host:port[,host:port...]`.
private func hostAndPortList(_ value: String, _ name: String) throws(ConfigurationError) -> [RedisNodeID] {
    var nodes: [RedisNodeID] = []
    for entry in value.split(separator: ",") {
        guard let node = RedisNodeID(entry.trimmingWhitespace()), !node.host.isEmpty, node.port > 0 else {
            throw ConfigurationError(setting: name, reason: "must be host:port[,host:port...], not '\(value)'")
        }
        nodes.append(node)
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
