import KafkaClient
import KafkaDevSupport
import Testing

@Suite struct KafkaProducerMetadataTests {
    /// Asking never creates the topic, even on the mock cluster, which creates every topic a metadata request names.
    @Test func partitionCountOfAMissingTopicIsNilAndAskingDoesNotCreateIt() throws {
        let cluster = try KafkaMockCluster(brokerCount: 1)
        let present = uniqueTopic("present")
        let missing = uniqueTopic("missing")
        try cluster.createTopic(present, partitions: 4, replicationFactor: 1)
        var configuration = KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServers)
        configuration.createsMissingTopics = false
        let producer = try KafkaProducer(configuration: configuration, onDeliveryReports: { _ in })
        defer { producer.shutdown(timeout: .seconds(1)) }

        #expect(try producer.partitionCount(of: present, timeout: .seconds(10)) == 4)
        #expect(try producer.partitionCount(of: missing, timeout: .seconds(10)) == nil)
        #expect(try producer.partitionCount(of: missing, timeout: .seconds(10)) == nil)
        // Creating it afterwards (on purpose) is seen.
        try cluster.createTopic(missing, partitions: 2, replicationFactor: 1)
        #expect(try producer.partitionCount(of: missing, timeout: .seconds(10)) == 2)
    }
}
