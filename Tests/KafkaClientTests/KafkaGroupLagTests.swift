import KafkaClient
import KafkaDevSupport
import Testing

/// The lag reader against a real (mock) cluster: watermarks, committed offsets, and lag reaching zero.
@Suite struct KafkaGroupLagTests {
    @Test func groupWithoutCommitsLagsByEveryMessageAndReachesZeroAfterCommittingAll() throws {
        let cluster = try KafkaMockCluster(brokerCount: 1)
        let topic = uniqueTopic("lag")
        try cluster.createTopic(topic, partitions: 2, replicationFactor: 1)
        let reports = try produceNumberedMessages(to: topic, count: 20, bootstrapServers: cluster.bootstrapServers)
        let producedPerPartition = Dictionary(grouping: reports, by: \.partition).mapValues { Int64($0.count) }

        let reader = try KafkaGroupLagReader(bootstrapServers: cluster.bootstrapServers, groupId: topic)
        let before = try reader.lag(topic: topic, timeout: .seconds(10))
        #expect(before.map(\.partition) == [0, 1])
        #expect(before.map(\.committedOffset) == [nil, nil])
        #expect(before.map(\.highWatermark) == [producedPerPartition[0] ?? 0, producedPerPartition[1] ?? 0])
        #expect(before.map(\.lag).reduce(0, +) == 20)

        // Store and commit all but the last message: one message of lag remains, in that message's partition.
        let consumer = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(bootstrapServers: cluster.bootstrapServers, groupId: topic)
        )
        defer { consumer.close() }
        try consumer.subscribe(topics: [topic])
        let messages = pollMessages(consumer, count: 20)
        #expect(messages.count == 20)
        let held = try #require(messages.last)
        for message in messages.dropLast() { try consumer.storeOffset(of: message) }
        try consumer.commit()

        let partial = try reader.lag(topic: topic, timeout: .seconds(10))
        #expect(partial.map(\.lag).reduce(0, +) == 1)
        #expect(partial.first { $0.partition == held.partition }?.lag == 1)

        try consumer.storeOffset(of: held)
        try consumer.commit()
        let after = try reader.lag(topic: topic, timeout: .seconds(10))
        #expect(after.allSatisfy { $0.lag == 0 })
        #expect(after.map(\.committedOffset) == after.map { Optional($0.highWatermark) })

        // Offsets are per group: another group that never consumed still lags by every message.
        let otherGroup = try KafkaGroupLagReader(bootstrapServers: cluster.bootstrapServers, groupId: "\(topic)-other")
        #expect(try otherGroup.lag(topic: topic, timeout: .seconds(10)).map(\.lag).reduce(0, +) == 20)
    }
}
