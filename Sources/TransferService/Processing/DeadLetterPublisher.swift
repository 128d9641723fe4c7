import KafkaClient
import Synchronization

/// Sends events that can never be processed to `<topic>.dlq`, with the reason in a `reason` header, and waits for
/// Kafka to confirm each one, so the consumer moves past an event only once it is safely parked.
///
/// A message too large for the dead-letter topic (Kafka takes messages a little over 1 MB by default, this
/// producer up to 1,000,000 bytes, and it adds headers) is parked as a stand-in without its value and headers: the
/// `source` header says where to read the original, for as long as the source topic keeps it. Retrying it whole
/// could never succeed and would hold up every partition of the instance.
///
/// The dead-letter topic is never created here (a cluster's defaults, e.g. its retention, may not suit it): while it
/// does not exist, dead-lettering fails with `topicMissing` and the event waits.
final class DeadLetterPublisher: Sendable {
    /// The header that carries why the event was dead-lettered.
    static let reasonHeader = "reason"
    /// The header of a stand-in: why the original value and headers are missing, and the value's size.
    static let omittedHeader = "value_omitted"
    /// The largest key a stand-in keeps (an event's key is a transfer id; a huge one is dropped like the value).
    static let standInKeyLimit = 1024

    let topic: String
    private let producerConfiguration: KafkaProducerConfiguration
    /// Replaced by a new one after a fatal error (an idempotent producer that failed fatally takes nothing more).
    private let producer: Mutex<KafkaProducer>
    private let lastFailure: FailureSlot
    /// Set once a metadata answer showed the topic; until then every dead letter (and readiness probe) asks.
    private let topicSeen = Atomic<Bool>(false)

    /// A publisher to `<sourceTopic>.dlq`.
    init(sourceTopic: String, producerConfiguration: KafkaProducerConfiguration) throws(KafkaError) {
        topic = sourceTopic + ".dlq"
        var producerConfiguration = producerConfiguration
        producerConfiguration.createsMissingTopics = false
        self.producerConfiguration = producerConfiguration
        let lastFailure = FailureSlot()
        self.lastFailure = lastFailure
        producer = Mutex(try Self.makeProducer(producerConfiguration, lastFailure: lastFailure))
    }

    private static func makeProducer(_ configuration: KafkaProducerConfiguration, lastFailure: FailureSlot) throws(KafkaError) -> KafkaProducer {
        try KafkaProducer(configuration: configuration, onDeliveryReports: { reports in
            if let failure = reports.lazy.compactMap(\.error).first {
                lastFailure.error.withLock { $0 = failure }
            }
        })
    }

    /// Throws `topicMissing` when the cluster says the dead-letter topic does not exist (asked until it once did).
    func checkTopic(timeout: Duration) throws(DeadLetterError) {
        guard !topicSeen.load(ordering: .relaxed) else { return }
        let partitions: Int?
        do {
            partitions = try producer.withLock { $0 }.partitionCount(of: topic, timeout: timeout)
        } catch {
            throw .kafka(error)
        }
        guard partitions != nil else { throw .topicMissing(topic) }
        topicSeen.store(true, ordering: .relaxed)
    }

    /// Sends `message` with `reason` and waits up to `timeout` for its delivery report. Used by one thread at a time.
    /// After a fatal error of the producer it is replaced, and the error is thrown so the caller retries.
    func deadLetter(_ message: KafkaMessage, reason: String, timeout: Duration) throws(DeadLetterError) {
        try checkTopic(timeout: timeout)
        do {
            try sendReplacingAfterFatalError(message, reason: reason, timeout: timeout)
        } catch {
            throw .kafka(error)
        }
    }

    private func sendReplacingAfterFatalError(_ message: KafkaMessage, reason: String, timeout: Duration) throws(KafkaError) {
        do {
            try send(message, reason: reason, timeout: timeout)
        } catch {
            if var fatal = producer.withLock({ $0.fatalError }) {
                let fresh = try Self.makeProducer(producerConfiguration, lastFailure: lastFailure)
                let failed = producer.withLock { producer in
                    defer { producer = fresh }
                    return producer
                }
                failed.shutdown(timeout: .zero)
                fatal.message = "the dead-letter producer failed fatally and was replaced: \(fatal.message)"
                throw fatal
            }
            throw error
        }
    }

    private func send(_ message: KafkaMessage, reason: String, timeout: Duration) throws(KafkaError) {
        let parkingHeaders = [
            KafkaHeader(key: Self.reasonHeader, value: Array(reason.utf8)),
            KafkaHeader(key: "source", value: Array("\(message.topic)/\(message.partition)/\(message.offset)".utf8)),
        ]
        do {
            try sendAndConfirm(key: message.key, value: message.value, headers: message.headers + parkingHeaders, timeout: timeout)
        } catch where error.isMessageTooLarge {
            let omitted = "\(message.value.count) bytes and \(message.headers.count) headers: too large for \(topic) (\(error.name)); "
                + "read the original from the source topic at the offset in the source header"
            let key = message.key.flatMap { $0.count <= Self.standInKeyLimit ? $0 : nil }
            try sendAndConfirm(key: key, value: [], headers: parkingHeaders + [KafkaHeader(key: Self.omittedHeader, value: Array(omitted.utf8))], timeout: timeout)
        }
    }

    private func sendAndConfirm(key: [UInt8]?, value: [UInt8], headers: [KafkaHeader], timeout: Duration) throws(KafkaError) {
        let producer = self.producer.withLock { $0 }
        lastFailure.error.withLock { $0 = nil }
        try producer.send(topic: topic, key: key, value: value, headers: headers)
        guard producer.flush(timeout: timeout) else {
            throw KafkaError(code: -192, name: "_MSG_TIMED_OUT", message: "the dead letter was not confirmed within \(timeout)")
        }
        if let failure = lastFailure.error.withLock({ $0 }) { throw failure }
    }

    /// Waits briefly for anything in flight, then releases the producer.
    func shutdown() {
        producer.withLock { $0 }.shutdown(timeout: .seconds(1))
    }
}

/// Why a message could not be parked on the dead-letter topic.
enum DeadLetterError: Error, Sendable, CustomStringConvertible {
    /// The cluster has no such topic; nothing is sent until it is created.
    case topicMissing(String)
    case kafka(KafkaError)

    var description: String {
        switch self {
        case .topicMissing(let topic): "the dead-letter topic \(topic) does not exist"
        case .kafka(let error): "\(error)"
        }
    }
}

/// The last failed delivery report, shared with the producer's report handler.
private final class FailureSlot: Sendable {
    let error = Mutex<KafkaError?>(nil)
}
