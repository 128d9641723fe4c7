import KafkaClient
import RedisClient

/// Everything the service needs to run, read from environment variables and command-line flags.
///
/// Each setting has an environment variable named after the original sketch's constants and a matching flag
/// (`REDIS_PORT` ↔ `--redis-port`); a flag wins over the environment, the environment over the default. The
/// settings, their help and their checks are listed once, in `ServiceSettings`.
public struct ServiceConfiguration: Sendable, Equatable {
    public var kafkaBootstrapServers = "localhost:9092"
    public var kafkaTopic = "money_transfers"
    public var kafkaGroupID = "transfer-processor"
    /// How long the group waits for a silent consumer before giving its partitions to others (librdkafka's default).
    public var kafkaSessionTimeoutMilliseconds = 45_000
    /// librdkafka properties from `KAFKA_PROPERTIES_FILE` (security, client.id...), given to every Kafka client;
    /// nil without a file. Never holds one the service sets itself (see `ServiceSettings.protectedKafkaProperties`).
    public var kafkaPropertiesFile: KafkaPropertiesFile?
    /// Create the transfer topic and its dead-letter topic at start when they are missing.
    public var kafkaCreateTopics = false
    /// Partitions of topics the service creates: the most consumers that can share the work, and 6 spreads evenly
    /// over 1, 2, 3 or 6 instances. Adding partitions later moves keys, so it starts with room.
    public var kafkaTopicPartitions = 6
    /// Replicas of topics the service creates: 3 keeps an acknowledged (acks=all) event through the loss of a
    /// broker, and stays writable with `min.insync.replicas=2` while one broker is down.
    public var kafkaTopicReplicationFactor = 3
    public var redisHost = "localhost"
    public var redisPort = 6379
    public var redisDatabase = 0
    public var redisPassword: String?
    /// Where `redisPassword` was read from (`REDIS_PASSWORD_FILE`), if from a file.
    public var redisPasswordFile: String?
    /// The Redis ACL user sent with the password (`AUTH user password`); unset: the default user.
    public var redisUsername: String?
    /// Seed nodes of a Redis Cluster; when any is given the service runs in cluster mode and `redisHost`,
    /// `redisPort` and `redisDatabase` are not used.
    public var redisClusterNodes: [RedisNodeID] = []
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
    /// Where `apiTokens` were read from (`API_TOKENS_FILE`), if from a file.
    public var apiTokensFile: String?
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

    /// Redis settings whose connect and command timeouts together stay within the request timeout. A request that
    /// needs a second round trip (a read-back after a lost reply, a cancel's read then write) gets only what is left
    /// of its budget: the client limits each wait to the request's deadline.
    public var redis: RedisConfiguration {
        let budget = Duration.milliseconds(requestTimeoutMilliseconds)
        let connectTimeout = min(budget / 4, .seconds(1))
        return RedisConfiguration(
            host: redisHost, port: redisPort, username: redisUsername, password: redisPassword, database: redisDatabase,
            connectTimeout: connectTimeout, commandTimeout: budget - connectTimeout
        )
    }

    /// The properties file's librdkafka properties, which every Kafka client of the service gets.
    public var kafkaProperties: [String: String] {
        kafkaPropertiesFile?.properties ?? [:]
    }

    /// The dead-letter topic: `<topic>.dlq`.
    public var kafkaDeadLetterTopic: String { kafkaTopic + ".dlq" }

    /// The producers' settings (outbox and dead letters): librdkafka's idempotent producer, acks=all, plus the
    /// properties file.
    public var kafkaProducer: KafkaProducerConfiguration {
        var producer = KafkaProducerConfiguration(bootstrapServers: kafkaBootstrapServers)
        producer.properties = kafkaProperties
        // Topics come from the operator or KAFKA_CREATE_TOPICS, never from a send to a mistyped name.
        producer.properties["allow.auto.create.topics"] = "false"
        return producer
    }

    /// The consumer's settings: the group, fetching tuned for latency and memory, and the properties file (which may
    /// change the tuning, not the group or offset handling).
    public var kafkaConsumer: KafkaConsumerConfiguration {
        var consumer = KafkaConsumerConfiguration(bootstrapServers: kafkaBootstrapServers, groupId: kafkaGroupID)
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
        // A subscribed topic created after start (see KafkaTopicAvailability) is found at the next refresh;
        // librdkafka's default waits 5 minutes.
        consumer.properties["topic.metadata.refresh.interval.ms"] = "30000"
        consumer.properties.merge(kafkaProperties) { _, fromFile in fromFile }
        // Set last: the file may not change them (ServiceSettings refuses a file that tries).
        consumer.properties["session.timeout.ms"] = String(kafkaSessionTimeoutMilliseconds)
        consumer.properties["heartbeat.interval.ms"] = String(min(3_000, kafkaSessionTimeoutMilliseconds / 3))
        consumer.properties["allow.auto.create.topics"] = "false"
        return consumer
    }

    /// The topics the service needs, as it creates them with `KAFKA_CREATE_TOPICS=true`.
    public var kafkaTopicsToCreate: [KafkaNewTopic] {
        [kafkaTopic, kafkaDeadLetterTopic].map {
            KafkaNewTopic(name: $0, partitions: kafkaTopicPartitions, replicationFactor: kafkaTopicReplicationFactor)
        }
    }

    /// Reads the environment, then the flags (`--name value` or `--name=value`): each setting takes the flag's
    /// value if given, else the environment's, else keeps its default.
    public static func load(environment: [String: String], arguments: [String]) throws(ConfigurationError) -> ServiceConfiguration {
        try load(environment: environment, options: ServiceOptions.parseSettings(arguments))
    }

    /// As `load(environment:arguments:)`, with the flags already parsed (by a command that has them as an
    /// `@OptionGroup`).
    public static func load(environment: [String: String], options: ServiceOptions) throws(ConfigurationError) -> ServiceConfiguration {
        var configuration = ServiceConfiguration()
        var values: [String: String] = [:]
        for setting in ServiceSettings.all {
            guard let value = options.flagValues[setting.environmentName] ?? environment[setting.environmentName] else { continue }
            values[setting.environmentName] = value
        }
        for setting in ServiceSettings.all {
            if let value = values[setting.environmentName] {
                try setting.apply(&configuration, value)
            }
        }
        try ServiceSettings.checkCombinations(&configuration, given: Set(values.keys))
        return configuration
    }
}
