import KafkaClient
import KafkaDevSupport
import Synchronization
import Testing

@Suite struct KafkaProducerFatalErrorTests {
    /// A produce request answered OUT_OF_ORDER_SEQUENCE_NUMBER for the oldest batch in flight desynchronizes the
    /// idempotent producer: librdkafka raises a fatal error, and the producer takes nothing more.
    @Test func aFatalErrorIsReportedAsFatalAndTheProducerRefusesFurtherSends() throws {
        let cluster = try KafkaMockCluster(brokerCount: 1)
        let topic = uniqueTopic("fatal")
        try cluster.createTopic(topic, partitions: 1, replicationFactor: 1)
        let reports = DeliveryReportCollector()
        let errors = Mutex<[KafkaError]>([])
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServers),
            onDeliveryReports: reports.handler,
            onError: { error in errors.withLock { $0.append(error) } }
        )
        defer { producer.shutdown(timeout: .seconds(1)) }
        try producer.send(topic: topic, key: nil, value: bytes("before"))
        #expect(producer.flush(timeout: .seconds(30)))
        #expect(producer.fatalError == nil)

        cluster.pushRequestErrors(apiKey: KafkaMockCluster.produceAPIKey, errors: [45])  // OUT_OF_ORDER_SEQUENCE_NUMBER
        try producer.send(topic: topic, key: nil, value: bytes("desynchronized"))
        _ = producer.flush(timeout: .seconds(30))

        let fatal = try #require(errors.withLock { $0 }.first { $0.isFatal }, "no fatal error reported: \(errors.withLock { $0 })")
        #expect(fatal.name == "OUT_OF_ORDER_SEQUENCE_NUMBER")
        #expect(producer.fatalError?.name == "OUT_OF_ORDER_SEQUENCE_NUMBER")
        let failed = reports.reports.filter { text($0.value) == "desynchronized" }
        #expect(failed.count == 1 && failed.first?.error != nil, "\(failed)")
        let refusal = #expect(throws: KafkaError.self) { try producer.send(topic: topic, key: nil, value: bytes("after")) }
        #expect(refusal?.isFatal == true, "expected a fatal refusal, got \(refusal.map { "\($0)" } ?? "nothing")")
    }
}
