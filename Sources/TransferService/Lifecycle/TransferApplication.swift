import HTTPServer
#if canImport(Glibc)
import Glibc
#endif
import Logging
import RedisClient

/// The whole service: HTTP API, outbox publisher, sweeper and background consumer, started and stopped together.
public final class TransferApplication: Sendable {
    public let configuration: ServiceConfiguration
    private let logger: Logger
    private let redis: any RedisDeployment
    private let repository: TransferRepository
    private let publisher: OutboxPublisher
    private let sweeper: Sweeper
    private let processor: TransferProcessor
    private let server: HTTPServer
    private let readinessCheck: ReadinessCheck
    private let topics: KafkaTopicAvailability

    /// Builds every part from `configuration`; nothing runs until `start`.
    public init(configuration: ServiceConfiguration, logger: Logger) throws(StartupError) {
        self.configuration = configuration
        self.logger = logger
        redis = Self.makeRedisDeployment(configuration)
        let metrics = ServiceMetrics()
        repository = TransferRepository(
            redis: redis,
            settings: TransferRepository.Settings(
                timeout: .milliseconds(configuration.requestTimeoutMilliseconds), replicas: configuration.redisWaitReplicas,
                retentionSeconds: configuration.transferRetentionSeconds, outboxLeaseMilliseconds: OutboxPublisher.leaseMilliseconds
            ),
            metrics: metrics
        )
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
        sweeper = Sweeper(
            repository: repository, publisher: publisher, reconcileAfterMilliseconds: configuration.reconcileAfterMilliseconds,
            metrics: metrics, logger: logger
        )
        var httpConfiguration = HTTPServerConfiguration(host: configuration.httpHost, port: configuration.httpPort)
        httpConfiguration.threadCount = configuration.httpThreads
        // With a known length, every oversized body is refused with 413 before any of it is read.
        httpConfiguration.requiresContentLength = true
        // In-flight requests are bounded by the request timeout; do not wait longer than that at shutdown.
        httpConfiguration.drainTimeout = .milliseconds(configuration.requestTimeoutMilliseconds + 500)
        readinessCheck = ReadinessCheck(repository: repository, publisher: publisher, topics: topics, metrics: metrics)
        server = HTTPServer(
            configuration: httpConfiguration,
            responder: ServiceRoutes(
                repository: repository, publisher: publisher,
                readinessCheck: readinessCheck,
                authenticator: Authenticator(tokens: configuration.apiTokens), metrics: metrics, logger: logger
            )
        )
    }

    /// A single Redis, or a Redis Cluster when seed nodes are configured; either way requests are group-committed.
    private static func makeRedisDeployment(_ configuration: ServiceConfiguration) -> any RedisDeployment {
        if configuration.isRedisCluster {
            return RedisCluster(
                seeds: configuration.redisClusterNodes, configuration: configuration.redis
            )
        }
        return RedisNodeClient(configuration: configuration.redis)
    }

    /// The port the HTTP server listens on (useful when configured with port 0).
    public var httpPort: Int { server.port }

    /// Starts the HTTP server, then the consumer and the sweeper: an instance that cannot take its port exits
    /// before it ever joins the consumer group (a member that dies without leaving holds its partitions until its
    /// session times out, on every restart of a crash loop).
    public func start() throws(StartupError) {
        if configuration.apiTokens.isEmpty {
            logger.warning("API_TOKENS is not set: the API runs without authentication")
        }
        if (try? repository.hasLegacyData()) == true {
            logger.warning("Redis holds data in the layout of the release before cluster support: run `transfer-service migrate`")
        }
        do {
            try server.start()
        } catch {
            throw StartupError(component: "HTTP server", reason: error.description)
        }
        do {
            try processor.start()
        } catch {
            throw StartupError(component: "Kafka consumer", reason: error.description)
        }
        sweeper.start()
        topics.startBackgroundChecks()
        let redisDescription = configuration.isRedisCluster
            ? "cluster " + configuration.redisClusterNodes.map(\.description).joined(separator: ",")
            : "\(configuration.redisHost):\(configuration.redisPort)"
        logger.info(
            "transfer service started",
            metadata: [
                "http": "\(configuration.httpHost):\(server.port)", "kafka": "\(configuration.kafkaBootstrapServers)",
                "topic": "\(configuration.kafkaTopic)", "redis": "\(redisDescription)",
                "kafka_properties": "\(configuration.kafkaPropertiesFile?.redactedDescription ?? "none")",
            ]
        )
    }

    /// With `SHUTDOWN_DELAY_MS`, first answers `/readyz` with 503 for that long while serving everything else, so
    /// load balancers take the instance out before its listener closes. Then stops taking requests, finishes
    /// in-flight ones, stops the consumer after its current batch (committing its offsets) and the sweeper, flushes
    /// the producer and closes the Redis connections.
    public func stop() {
        let delay = configuration.shutdownDelayMilliseconds
        if delay > 0 {
            readinessCheck.announceShutdown()
            logger.info("shutting down: /readyz answers 503 until the listener closes", metadata: ["shutdown_delay_ms": "\(delay)"])
            usleep(UInt32(clamping: delay) * 1_000)
        }
        topics.stop()
        server.stop()
        processor.stop()
        sweeper.stop()
        publisher.shutdown(timeout: .seconds(2))
        redis.shutdown()
        logger.info("transfer service stopped")
    }
}

/// A part of the service that could not start.
public struct StartupError: Error, Sendable, CustomStringConvertible {
    public var component: String
    public var reason: String
    public var description: String { "\(component) failed to start: \(reason)" }
}
