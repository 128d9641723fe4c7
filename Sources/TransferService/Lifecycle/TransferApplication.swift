import HTTPServer
import Logging
import RedisClient

/// The whole service: HTTP API, outbox publisher and background consumer, started and stopped together.
public final class TransferApplication: Sendable {
    public let configuration: ServiceConfiguration
    private let logger: Logger
    private let publisher: OutboxPublisher
    private let processor: TransferProcessor
    private let server: HTTPServer
    private let topics: KafkaTopicAvailability

    /// Builds every part from `configuration`; nothing runs until `start`.
    public init(configuration: ServiceConfiguration, logger: Logger) throws(StartupError) {
        self.configuration = configuration
        self.logger = logger
        let pool = RedisConnectionPool(configuration: configuration.redis, maxIdleConnections: configuration.httpThreads + 4)
        let metrics = ServiceMetrics()
        let repository = TransferRepository(pool: pool, metrics: metrics)
        do {
            // Before the clients: topics created here are there when the consumer subscribes.
            topics = try KafkaTopicAvailability(configuration: configuration, logger: logger)
            topics.checkNow()
            publisher = try OutboxPublisher(
                topic: configuration.kafkaTopic, producerConfiguration: configuration.kafkaProducer,
                repository: repository, metrics: metrics, logger: logger
            )
            processor = try TransferProcessor(
                topic: configuration.kafkaTopic,
                consumerConfiguration: configuration.kafkaConsumer,
                deadLetterProducerConfiguration: configuration.kafkaProducer,
                repository: repository, metrics: metrics, logger: logger
            )
        } catch {
            throw StartupError(component: "Kafka client", reason: error.description)
        }
        var httpConfiguration = HTTPServerConfiguration(host: configuration.httpHost, port: configuration.httpPort)
        httpConfiguration.threadCount = configuration.httpThreads
        // With a known length, every oversized body is refused with 413 before any of it is read.
        httpConfiguration.requiresContentLength = true
        // In-flight requests are bounded by the request timeout; do not wait longer than that at shutdown.
        httpConfiguration.drainTimeout = .milliseconds(configuration.requestTimeoutMilliseconds + 500)
        server = HTTPServer(
            configuration: httpConfiguration,
            responder: ServiceRoutes(
                repository: repository, publisher: publisher,
                readinessCheck: ReadinessCheck(repository: repository, publisher: publisher, topics: topics),
                authenticator: Authenticator(tokens: configuration.apiTokens), metrics: metrics, logger: logger
            )
        )
    }

    /// The port the HTTP server listens on (useful when configured with port 0).
    public var httpPort: Int { server.port }

    /// Starts the consumer, the outbox sweeper and then the HTTP server.
    public func start() throws(StartupError) {
        if configuration.apiTokens.isEmpty {
            logger.warning("API_TOKENS is not set: the API runs without authentication")
        }
        processor.start()
        publisher.startSweeping()
        topics.startBackgroundChecks()
        do {
            try server.start()
        } catch {
            throw StartupError(component: "HTTP server", reason: error.description)
        }
        logger.info(
            "transfer service started",
            metadata: [
                "http": "\(configuration.httpHost):\(server.port)", "kafka": "\(configuration.kafkaBootstrapServers)",
                "topic": "\(configuration.kafkaTopic)", "redis": "\(configuration.redisHost):\(configuration.redisPort)",
                "kafka_properties": "\(configuration.kafkaPropertiesFile?.redactedDescription ?? "none")",
            ]
        )
    }

    /// Stops taking requests, finishes in-flight ones, stops the consumer after its current event (committing its
    /// offsets) and flushes the producer.
    public func stop() {
        topics.stop()
        server.stop()
        processor.stop()
        publisher.shutdown(timeout: .seconds(2))
        logger.info("transfer service stopped")
    }
}

/// A part of the service that could not start.
public struct StartupError: Error, Sendable, CustomStringConvertible {
    public var component: String
    public var reason: String
    public var description: String { "\(component) failed to start: \(reason)" }
}
