import KafkaClient
import Logging

/// Turns what the consumer reports besides messages into log lines and metrics. Runs on the processor's queue,
/// inside the consumer's poll.
struct ConsumerEventRecorder: Sendable {
    let metrics: ServiceMetrics
    let logger: Logger

    @Sendable func record(_ event: KafkaConsumerEvent) {
        switch event {
        case .partitionsAssigned(let partitions):
            logger.info("consumer group assigned partitions", metadata: ["partitions": "\(Self.names(partitions))"])
        case .partitionsRevoked(let partitions, let lost):
            for partition in partitions { metrics.recordConsumerLag(partition: partition.partition, events: 0) }
            if lost {
                logger.warning("consumer group partitions lost (taken without a handover)", metadata: ["partitions": "\(Self.names(partitions))"])
            } else {
                logger.info("consumer group revoked partitions", metadata: ["partitions": "\(Self.names(partitions))"])
            }
        case .offsetReset(let reset):
            metrics.consumerOffsetResets.increment()
            logger.error(
                "consumer offset reset: events of this partition were skipped and will not be processed",
                metadata: [
                    "topic": "\(reset.topic)", "partition": "\(reset.partition)",
                    "from_offset": "\(reset.fromOffset.map(String.init) ?? "?")", "reset_to": "\(reset.resetTo)",
                    "detail": "\(reset.detail)",
                ]
            )
        case .error(let error):
            metrics.recordDependencyError("kafka")
            logger.warning("Kafka consumer error", metadata: ["error": "\(error)"])
        case .statistics(let statistics):
            for partition in statistics.partitions {
                if let lag = partition.lag { metrics.recordConsumerLag(partition: partition.partition, events: lag) }
            }
        case .log(let record):
            logger.log(level: Self.level(ofSyslog: record.level), "\(record.message)", metadata: ["librdkafka": "\(record.facility)"])
        }
    }

    static func names(_ partitions: [KafkaTopicPartition]) -> String {
        partitions.map(\.description).joined(separator: ", ")
    }

    /// librdkafka logs with syslog levels; its "errors" (3) are mostly a broker that cannot be reached, which this
    /// service logs as warnings (a dependency away), like its own.
    static func level(ofSyslog level: Int32) -> Logger.Level {
        switch level {
        case ...2: .error
        case 3, 4: .warning
        case 5: .notice
        case 6: .info
        default: .debug
        }
    }
}
