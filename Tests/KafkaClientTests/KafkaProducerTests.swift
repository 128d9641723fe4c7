import KafkaClient
import KafkaDevSupport
import Synchronization
import Testing

@Suite struct KafkaProducerTests {
    @Test func everyProducedMessageGetsASuccessfulReportWithItsKeyValueAndOffset() throws {
        let cluster = try KafkaMockCluster(brokerCount: 3)
        let topic = uniqueTopic("produce")
        try cluster.createTopic(topic, partitions: 3, replicationFactor: 3)

        let reports = try produceNumberedMessages(to: topic, count: 30, bootstrapServers: cluster.bootstrapServers)

        #expect(reports.count == 30)
        #expect(reports.allSatisfy { $0.error == nil && $0.topic == topic })
        let pairs = Set(reports.map { "\(text($0.key) ?? "nil")=\(text($0.value) ?? "")" })
        #expect(pairs == Set((0..<30).map { "key-\($0)=value-\($0)" }))
        // Within each partition, offsets are 0, 1, 2, ... with no gaps or repeats.
        for partition in Set(reports.map(\.partition)) {
            let offsets = reports.filter { $0.partition == partition }.map(\.offset).sorted()
            #expect(offsets == Array(0..<Int64(offsets.count)), "partition \(partition)")
        }
    }

    @Test func messageSentWhileTheBrokerIsDownIsDeliveredOnceItIsBackUp() async throws {
        let cluster = try KafkaMockCluster(brokerCount: 1)
        let topic = uniqueTopic("broker-down")
        try cluster.createTopic(topic, partitions: 1, replicationFactor: 1)
        let collector = DeliveryReportCollector()
        var configuration = KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServers)
        // Far beyond the outage, even if a busy test runner resumes this test late.
        configuration.deliveryTimeout = .seconds(300)
        let producer = try KafkaProducer(configuration: configuration, onDeliveryReports: collector.handler)
        defer { producer.shutdown(timeout: .seconds(5)) }
        // A first delivery makes sure the producer is connected and knows the partition leader.
        try producer.send(topic: topic, key: nil, value: bytes("before"))
        #expect(producer.flush(timeout: .seconds(30)))

        try cluster.setBrokerDown(1)
        try producer.send(topic: topic, key: nil, value: bytes("during"))
        // Give the producer time to run into the closed broker before it comes back (not an assertion).
        try await Task.sleep(for: .seconds(1))
        #expect(collector.reports.count == 1)
        try cluster.setBrokerUp(1)

        #expect(producer.flush(timeout: .seconds(30)))
        let reports = collector.reports
        #expect(reports.map { text($0.value) } == ["before", "during"])
        #expect(reports.map(\.offset) == [0, 1])
        #expect(reports.allSatisfy { $0.error == nil }, "\(reports.compactMap(\.error))")
    }

    @Test func messageThatCannotBeDeliveredWithinTheDeliveryTimeoutGetsAFailedReport() throws {
        let cluster = try KafkaMockCluster(brokerCount: 1)
        try cluster.setBrokerDown(1)
        let collector = DeliveryReportCollector()
        var configuration = KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServers)
        configuration.deliveryTimeout = .seconds(1)
        let producer = try KafkaProducer(configuration: configuration, onDeliveryReports: collector.handler)
        defer { producer.shutdown(timeout: .zero) }

        try producer.send(topic: uniqueTopic("timeout"), key: bytes("k"), value: bytes("lost"))

        #expect(producer.flush(timeout: .seconds(30)))
        let report = try #require(collector.reports.first)
        #expect(collector.reports.count == 1)
        #expect(text(report.key) == "k" && text(report.value) == "lost")
        let error = try #require(report.error)
        #expect(error.name == "_MSG_TIMED_OUT", "\(error)")
        #expect(error.isRetriable)
    }

    @Test func shutdownPurgesUndeliveredMessagesAndReportsThemAsFailed() throws {
        let cluster = try KafkaMockCluster(brokerCount: 1)
        try cluster.setBrokerDown(1)
        let collector = DeliveryReportCollector()
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServers),
            onDeliveryReports: collector.handler
        )
        try producer.send(topic: uniqueTopic("purge"), key: nil, value: bytes("pending"))

        producer.shutdown(timeout: .milliseconds(100))

        let reports = collector.reports
        #expect(reports.count == 1)
        #expect(reports.first?.error?.name == "_PURGE_QUEUE", "\(String(describing: reports.first?.error))")
    }

    @Test func sendAfterShutdownThrowsAndShutdownIsIdempotent() throws {
        let cluster = try KafkaMockCluster(brokerCount: 1)
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServers),
            onDeliveryReports: { _ in }
        )
        producer.shutdown(timeout: .seconds(1))
        producer.shutdown(timeout: .seconds(1))

        let error = #expect(throws: KafkaError.self) {
            try producer.send(topic: "any", key: nil, value: [1])
        }
        #expect(error?.name == "_STATE")
        #expect(producer.flush(timeout: .seconds(1)))
    }

    @Test func unknownConfigurationPropertyIsRejectedByName() {
        var configuration = KafkaProducerConfiguration(bootstrapServers: "127.0.0.1:9")
        configuration.properties = ["no.such.property": "1"]
        let error = #expect(throws: KafkaError.self) {
            _ = try KafkaProducer(configuration: configuration, onDeliveryReports: { _ in })
        }
        #expect(error?.description.contains("no.such.property") == true)
    }

    @Test func shutdownCalledFromTheReportHandlerStopsTheProducerWithoutDeadlock() async throws {
        let cluster = try KafkaMockCluster(brokerCount: 1)
        let producerBox = Mutex<KafkaProducer?>(nil)
        let (shutdownDone, signalShutdownDone) = AsyncStream.makeStream(of: Void.self)
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServers),
            onDeliveryReports: { _ in
                producerBox.withLock { $0 }?.shutdown(timeout: .seconds(5))
                signalShutdownDone.yield()
            }
        )
        producerBox.withLock { $0 = producer }

        try producer.send(topic: uniqueTopic("self-shutdown"), key: nil, value: [1])
        var iterator = shutdownDone.makeAsyncIterator()
        await iterator.next()

        let error = #expect(throws: KafkaError.self) { try producer.send(topic: "any", key: nil, value: [2]) }
        #expect(error?.name == "_STATE")
        producerBox.withLock { $0 = nil }
    }
}
