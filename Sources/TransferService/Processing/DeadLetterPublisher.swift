import KafkaClient
import Synchronization

/// Sends events that can never be processed to `<topic>.dlq`, with the reason in a `reason` header, and waits for
/// Kafka to confirm each one, so the consumer moves past an event only once it is safely parked.
final class DeadLetterPublisher: Sendable {
    /// The header that carries why the event was dead-lettered.
    static let reasonHeader = "reason"

    let topic: String
    private let producer: KafkaProducer
    private let lastFailure: FailureSlot

    /// A publisher to `<sourceTopic>.dlq`.
    init(sourceTopic: String, producerConfiguration: KafkaProducerConfiguration) throws(KafkaError) {
        topic = sourceTopic + ".dlq"
        let lastFailure = FailureSlot()
        self.lastFailure = lastFailure
        producer = try KafkaProducer(configuration: producerConfiguration, onDeliveryReports: { reports in
            if let failure = reports.lazy.compactMap(\.error).first {
                lastFailure.error.withLock { $0 = failure }
            }
        })
    }

    /// Sends `message` with `reason` and waits up to `timeout` for its delivery report. Used by one thread at a time.
    func deadLetter(_ message: KafkaMessage, reason: String, timeout: Duration) throws(KafkaError) {
        lastFailure.error.withLock { $0 = nil }
        let headers = message.headers + [
            KafkaHeader(key: Self.reasonHeader, value: Array(reason.utf8)),
            KafkaHeader(key: "source", value: Array("\(message.topic)/\(message.partition)/\(message.offset)".utf8)),
        ]
        try producer.send(topic: topic, key: message.key, value: message.value, headers: headers)
        guard producer.flush(timeout: timeout) else {
            throw KafkaError(code: -192, name: "_MSG_TIMED_OUT", message: "the dead letter was not confirmed within \(timeout)")
        }
        if let failure = lastFailure.error.withLock({ $0 }) { throw failure }
    }

    /// Waits briefly for anything in flight, then releases the producer.
    func shutdown() {
        producer.shutdown(timeout: .seconds(1))
    }
}

/// The last failed delivery report, shared with the producer's report handler.
private final class FailureSlot: Sendable {
    let error = Mutex<KafkaError?>(nil)
}
