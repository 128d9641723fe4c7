import KafkaClient
import Synchronization
import Testing

/// Collects delivery reports from the producer's poll thread for later inspection.
final class DeliveryReportCollector: Sendable {
    private let collected = Mutex<[KafkaDeliveryReport]>([])

    /// Pass this as the producer's onDeliveryReports handler.
    var handler: @Sendable ([KafkaDeliveryReport]) -> Void {
        { reports in self.collected.withLock { $0.append(contentsOf: reports) } }
    }

    var reports: [KafkaDeliveryReport] { collected.withLock { $0 } }
}

/// A topic name no other test uses.
func uniqueTopic(_ purpose: String) -> String {
    "\(purpose)-\(UInt32.random(in: 0...UInt32.max))"
}

/// Bytes of a string, for keys and values.
func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Text of bytes, for readable comparisons.
func text(_ bytes: [UInt8]?) -> String? { bytes.map { String(decoding: $0, as: UTF8.self) } }

/// Polls until `count` messages arrived; stops at `deadline` only to avoid a hung test (the caller then
/// sees fewer messages). Consumer errors (e.g. transient connection errors while the group forms) are skipped.
func pollMessages(
    _ consumer: KafkaConsumer,
    count: Int,
    deadline: ContinuousClock.Instant = .now + .seconds(60)
) -> [KafkaMessage] {
    var messages: [KafkaMessage] = []
    while messages.count < count && ContinuousClock.now < deadline {
        if let message = try? consumer.poll(timeout: .milliseconds(200)) {
            messages.append(message)
        }
    }
    return messages
}

/// Produces `count` messages keyed "key-<i>" with value "value-<i>" and waits for all reports.
func produceNumberedMessages(
    to topic: String,
    count: Int,
    bootstrapServers: String,
    headers: (Int) -> [KafkaHeader] = { _ in [] }
) throws -> [KafkaDeliveryReport] {
    let collector = DeliveryReportCollector()
    let producer = try KafkaProducer(
        configuration: KafkaProducerConfiguration(bootstrapServers: bootstrapServers),
        onDeliveryReports: collector.handler
    )
    for index in 0..<count {
        try producer.send(
            topic: topic, key: bytes("key-\(index)"), value: bytes("value-\(index)"), headers: headers(index)
        )
    }
    #expect(producer.flush(timeout: .seconds(60)))
    producer.shutdown(timeout: .seconds(5))
    return collector.reports
}
