import KafkaClient
import KafkaDevSupport
import Synchronization
import Testing

/// Each test forms a consumer group on its own mock cluster; the first join takes about 3 seconds.
@Suite struct KafkaConsumerTests {
    @Test func consumedMessagesCarryTheProducedKeysValuesAndHeaders() throws {
        let cluster = try KafkaMockCluster(brokerCount: 3)
        let topic = uniqueTopic("roundtrip")
        try cluster.createTopic(topic, partitions: 3, replicationFactor: 3)
        let headers = { (index: Int) in
            [KafkaHeader(key: "index", value: bytes("\(index)")), KafkaHeader(key: "empty", value: [])]
        }
        _ = try produceNumberedMessages(to: topic, count: 10, bootstrapServers: cluster.bootstrapServers, headers: headers)

        let consumer = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(bootstrapServers: cluster.bootstrapServers, groupId: topic)
        )
        defer { consumer.close() }
        try consumer.subscribe(topics: [topic])
        let messages = pollMessages(consumer, count: 10)

        #expect(messages.count == 10)
        for message in messages {
            let index = try #require(text(message.key)?.split(separator: "-").last.flatMap { Int($0) })
            #expect(message.topic == topic)
            #expect(text(message.value) == "value-\(index)")
            #expect(message.headers == headers(index))
        }
        #expect(Set(messages.compactMap { text($0.key) }).count == 10)
    }

    @Test func newGroupMemberReceivesExactlyTheMessagesAfterTheCommittedOffset() throws {
        let cluster = try KafkaMockCluster(brokerCount: 1)
        let topic = uniqueTopic("resume")
        try cluster.createTopic(topic, partitions: 1, replicationFactor: 1)
        _ = try produceNumberedMessages(to: topic, count: 10, bootstrapServers: cluster.bootstrapServers)
        let configuration = quickRejoinConfiguration(bootstrapServers: cluster.bootstrapServers, groupId: topic)

        let first = try KafkaConsumer(configuration: configuration)
        try first.subscribe(topics: [topic])
        let firstHalf = pollMessages(first, count: 5)
        for message in firstHalf { try first.storeOffset(of: message) }
        try first.commit()
        first.close()

        let second = try KafkaConsumer(configuration: configuration)
        defer { second.close() }
        try second.subscribe(topics: [topic])
        let rest = pollMessages(second, count: 5)

        #expect(firstHalf.map(\.offset) == [0, 1, 2, 3, 4])
        #expect(rest.map(\.offset) == [5, 6, 7, 8, 9])
        #expect(rest.map { text($0.value) } == (5..<10).map { "value-\($0)" })
    }

    @Test func messagePolledButNotStoredIsRedeliveredToTheNextGroupMember() throws {
        let cluster = try KafkaMockCluster(brokerCount: 1)
        let topic = uniqueTopic("redeliver")
        try cluster.createTopic(topic, partitions: 1, replicationFactor: 1)
        _ = try produceNumberedMessages(to: topic, count: 3, bootstrapServers: cluster.bootstrapServers)
        let configuration = quickRejoinConfiguration(bootstrapServers: cluster.bootstrapServers, groupId: topic)

        let first = try KafkaConsumer(configuration: configuration)
        try first.subscribe(topics: [topic])
        let polled = pollMessages(first, count: 2)
        try first.storeOffset(of: try #require(polled.first))
        // polled[1] is "being processed" when this member leaves: its offset was never stored.
        first.close()

        let second = try KafkaConsumer(configuration: configuration)
        defer { second.close() }
        try second.subscribe(topics: [topic])
        let redelivered = pollMessages(second, count: 2)

        #expect(polled.map(\.offset) == [0, 1])
        #expect(redelivered.map(\.offset) == [1, 2])
        #expect(redelivered.first.map { text($0.value) } == "value-1")
    }

    @Test func closeFromAnotherThreadEndsAPollLoopWithAStateError() async throws {
        let cluster = try KafkaMockCluster(brokerCount: 1)
        let topic = uniqueTopic("close-while-polling")
        try cluster.createTopic(topic, partitions: 1, replicationFactor: 1)
        let consumer = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(bootstrapServers: cluster.bootstrapServers, groupId: topic)
        )
        try consumer.subscribe(topics: [topic])
        // The loop a service would run on its background queue: poll until the consumer is closed.
        let pollsStarted = Atomic<Int>(0)
        let pollLoop = Task.detached { () -> KafkaError in
            while true {
                do throws(KafkaError) {
                    pollsStarted.add(1, ordering: .relaxed)
                    _ = try consumer.poll(timeout: .milliseconds(500))
                } catch where error.name == "_STATE" {
                    return error
                } catch {
                    continue
                }
            }
        }
        // Close only once the loop is polling, so close has to wait for a running poll.
        while pollsStarted.load(ordering: .relaxed) == 0 { await Task.yield() }

        consumer.close()

        let error = await pollLoop.value
        #expect(error.message == "consumer is closed")
    }

    @Test func usingAClosedConsumerThrowsAndCloseIsIdempotent() throws {
        let cluster = try KafkaMockCluster(brokerCount: 1)
        let consumer = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(bootstrapServers: cluster.bootstrapServers, groupId: "closed")
        )
        consumer.close()
        consumer.close()
        #expect(throws: KafkaError.self) { try consumer.poll(timeout: .zero) }
        #expect(throws: KafkaError.self) { try consumer.subscribe(topics: ["t"]) }
    }
}

/// A consumer configuration whose group re-forms quickly on the mock cluster after a member left.
/// The mock holds a re-join for (session.timeout.ms - 1 s), even after a clean LeaveGroup; the
/// default 45 s session timeout would make every hand-over test take 44 s.
private func quickRejoinConfiguration(bootstrapServers: String, groupId: String) -> KafkaConsumerConfiguration {
    var configuration = KafkaConsumerConfiguration(bootstrapServers: bootstrapServers, groupId: groupId)
    configuration.properties["session.timeout.ms"] = "6000"
    configuration.properties["heartbeat.interval.ms"] = "1000"
    return configuration
}
