import ArgumentParser
import FoundationEssentials

/// The service's settings as command-line options (swift-argument-parser). Each option is the flag of one
/// `ServiceSettings` entry, taken as text and checked there, so a flag and its environment variable share one
/// check and one error message. Commands include it with `@OptionGroup`.
public struct ServiceOptions: ParsableArguments, Sendable {
    @Option(parsing: .unconditional, help: .setting("KAFKA_BOOTSTRAP_SERVERS")) var kafkaBootstrapServers: String?
    @Option(parsing: .unconditional, help: .setting("KAFKA_TOPIC_TRANSFERS")) var kafkaTopicTransfers: String?
    @Option(parsing: .unconditional, help: .setting("KAFKA_GROUP_ID")) var kafkaGroupId: String?
    @Option(parsing: .unconditional, help: .setting("KAFKA_SESSION_TIMEOUT_MS")) var kafkaSessionTimeoutMs: String?
    @Option(parsing: .unconditional, help: .setting("KAFKA_PROPERTIES_FILE")) var kafkaPropertiesFile: String?
    @Option(parsing: .unconditional, help: .setting("KAFKA_CREATE_TOPICS")) var kafkaCreateTopics: String?
    @Option(parsing: .unconditional, help: .setting("KAFKA_TOPIC_PARTITIONS")) var kafkaTopicPartitions: String?
    @Option(parsing: .unconditional, help: .setting("KAFKA_TOPIC_REPLICATION_FACTOR")) var kafkaTopicReplicationFactor: String?
    @Option(parsing: .unconditional, help: .setting("REDIS_HOST")) var redisHost: String?
    @Option(parsing: .unconditional, help: .setting("REDIS_PORT")) var redisPort: String?
    @Option(parsing: .unconditional, help: .setting("REDIS_DB")) var redisDb: String?
    @Option(parsing: .unconditional, help: .setting("REDIS_PASSWORD")) var redisPassword: String?
    @Option(parsing: .unconditional, help: .setting("REDIS_PASSWORD_FILE")) var redisPasswordFile: String?
    @Option(parsing: .unconditional, help: .setting("REDIS_USERNAME")) var redisUsername: String?
    @Option(parsing: .unconditional, help: .setting("REDIS_CLUSTER_NODES")) var redisClusterNodes: String?
    @Option(parsing: .unconditional, help: .setting("REDIS_WAIT_REPLICAS")) var redisWaitReplicas: String?
    @Option(parsing: .unconditional, help: .setting("RECONCILE_AFTER_MS")) var reconcileAfterMs: String?
    @Option(parsing: .unconditional, help: .setting("SHUTDOWN_DELAY_MS")) var shutdownDelayMs: String?
    @Option(parsing: .unconditional, help: .setting("TRANSFER_RETENTION")) var transferRetention: String?
    @Option(parsing: .unconditional, help: .setting("HTTP_HOST")) var httpHost: String?
    @Option(parsing: .unconditional, help: .setting("HTTP_PORT")) var httpPort: String?
    @Option(parsing: .unconditional, help: .setting("REQUEST_TIMEOUT_MS")) var requestTimeoutMs: String?
    @Option(parsing: .unconditional, help: .setting("HTTP_THREADS")) var httpThreads: String?
    @Option(parsing: .unconditional, help: .setting("LOG_FORMAT")) var logFormat: String?
    @Option(parsing: .unconditional, help: .setting("API_TOKENS")) var apiTokens: String?
    @Option(parsing: .unconditional, help: .setting("API_TOKENS_FILE")) var apiTokensFile: String?
    @Option(parsing: .unconditional, help: .setting("LOG_LEVEL")) var logLevel: String?

    public init() {}

    /// The flags that were given, by their setting's environment name.
    var flagValues: [String: String] {
        let values: [String: String?] = [
            "KAFKA_BOOTSTRAP_SERVERS": kafkaBootstrapServers, "KAFKA_TOPIC_TRANSFERS": kafkaTopicTransfers,
            "KAFKA_GROUP_ID": kafkaGroupId, "KAFKA_SESSION_TIMEOUT_MS": kafkaSessionTimeoutMs,
            "KAFKA_PROPERTIES_FILE": kafkaPropertiesFile, "KAFKA_CREATE_TOPICS": kafkaCreateTopics,
            "KAFKA_TOPIC_PARTITIONS": kafkaTopicPartitions, "KAFKA_TOPIC_REPLICATION_FACTOR": kafkaTopicReplicationFactor,
            "REDIS_HOST": redisHost, "REDIS_PORT": redisPort, "REDIS_DB": redisDb, "REDIS_PASSWORD": redisPassword,
            "REDIS_PASSWORD_FILE": redisPasswordFile, "REDIS_USERNAME": redisUsername,
            "REDIS_CLUSTER_NODES": redisClusterNodes, "REDIS_WAIT_REPLICAS": redisWaitReplicas,
            "RECONCILE_AFTER_MS": reconcileAfterMs, "SHUTDOWN_DELAY_MS": shutdownDelayMs,
            "TRANSFER_RETENTION": transferRetention, "HTTP_HOST": httpHost, "HTTP_PORT": httpPort,
            "REQUEST_TIMEOUT_MS": requestTimeoutMs, "HTTP_THREADS": httpThreads, "LOG_FORMAT": logFormat,
            "API_TOKENS": apiTokens, "API_TOKENS_FILE": apiTokensFile, "LOG_LEVEL": logLevel,
        ]
        return values.compactMapValues { $0 }
    }

    /// The configuration from the process environment and these flags.
    public func load() throws(ConfigurationError) -> ServiceConfiguration {
        try ServiceConfiguration.load(environment: ProcessInfo.processInfo.environment, options: self)
    }

    /// Parses flags alone (no subcommand), turning argument-parser errors into a `ConfigurationError` that names
    /// the flag.
    static func parseSettings(_ arguments: [String]) throws(ConfigurationError) -> ServiceOptions {
        do {
            return try parse(arguments)
        } catch {
            throw ConfigurationError(commandLineMessage: message(for: error))
        }
    }
}

extension ConfigurationError {
    /// An argument-parser message ("Unknown option '--redis-prot'"), naming the flag it quotes.
    public init(commandLineMessage message: String) {
        let firstLine = message.split(separator: "\n").first.map(String.init) ?? message
        let quotedFlag = firstLine.split(separator: "'").first { $0.hasPrefix("--") }?.split(separator: " ").first
        self.init(setting: quotedFlag.map(String.init) ?? "command line", reason: "(command line): \(firstLine)")
    }
}

extension ArgumentHelp {
    /// The help of a setting: its line from `ServiceSettings` and its environment variable.
    static func setting(_ environmentName: String) -> ArgumentHelp {
        let text = ServiceSettings.setting(environmentName)?.help ?? ""
        return ArgumentHelp("\(text) [env: \(environmentName)]")
    }
}

/// A subcommand that works with the service's configuration, loaded exactly as `transfer-service` itself loads it
/// (the same flags, environment variables and checks). Implement `run(configuration:)`; a configuration error ends
/// the process with exit code 2 and one line naming the setting (see `TransferServiceCommand`).
///
///     struct Migrate: ConfiguredCommand {
///         @OptionGroup var settings: ServiceOptions
///         func run(configuration: ServiceConfiguration) throws { ... }
///     }
public protocol ConfiguredCommand: ParsableCommand {
    /// The service's flags; declare it as `@OptionGroup var settings: ServiceOptions`.
    var settings: ServiceOptions { get }
    /// The command's work, given the loaded configuration.
    func run(configuration: ServiceConfiguration) throws
}

extension ConfiguredCommand {
    public func run() throws {
        try run(configuration: settings.load())
    }
}
