import KafkaClient
import KafkaDevSupport
import Synchronization
import Testing

/// Group membership, rebalances and the consumer's events, against the mock cluster.
@Suite struct KafkaConsumerGroupTests {
    /// The root cause behind a consumer that stopped reading two of three partitions: a member closed before the
    /// coordinator answered its first JoinGroup has no member id, so librdkafka sends no LeaveGroup; the mock
    /// keeps the member, and the election hands it partitions that nobody reads until its session times out.
    @Test func aMemberClosedBeforeItsJoinIsAnsweredIsHandedPartitionsUntilItsSessionTimesOut() throws {
        let cluster = try KafkaMockCluster(brokerCount: 1)
        let topic = uniqueTopic("ghost")
        try cluster.createTopic(topic, partitions: 3, replicationFactor: 1)
        let configuration = sixSecondSessionConfiguration(bootstrapServers: cluster.bootstrapServers, groupId: topic)
        let allPartitions = Set((0..<3).map { KafkaTopicPartition(topic: topic, partition: $0) })

        let survivorEvents = EventCollector()
        let survivor = try KafkaConsumer(configuration: configuration, onEvent: survivorEvents.handler)
        defer { survivor.close() }
        try survivor.subscribe(topics: [topic])
        try #require(pollUntil(survivor) { survivor.assignedPartitions == allPartitions }, "the first member never got the partitions")
        let assignmentsBefore = survivorEvents.assignments.count

        let leaver = try KafkaConsumer(configuration: configuration)
        try leaver.subscribe(topics: [topic])
        _ = pollUntil(leaver, for: .seconds(1)) { false }  // the mock holds this join for session.timeout - 1 s
        #expect(leaver.memberID == nil, "the join was answered within a second; the scenario needs it pending")
        leaver.close()

        // The next generation is formed with the departed member still in it: the survivor gets only a share.
        try #require(pollUntil(survivor) { survivorEvents.assignments.count > assignmentsBefore }, "no new assignment")
        let shared = Set(survivorEvents.assignments[assignmentsBefore])
        #expect(shared.count < 3, "the survivor got every partition although the group counted the departed member: \(shared)")
        // Once that member's session times out, the survivor gets everything back.
        #expect(pollUntil(survivor, for: .seconds(60)) { survivor.assignedPartitions == allPartitions })
    }

    @Test func aMessagePolledBeforeItsPartitionWasRevokedIsNotStored() throws {
        let cluster = try KafkaMockCluster(brokerCount: 1)
        let topic = uniqueTopic("revoked")
        try cluster.createTopic(topic, partitions: 1, replicationFactor: 1)
        _ = try produceNumberedMessages(to: topic, count: 1, bootstrapServers: cluster.bootstrapServers)
        let configuration = sixSecondSessionConfiguration(bootstrapServers: cluster.bootstrapServers, groupId: topic)
        let events = EventCollector()
        let first = try KafkaConsumer(configuration: configuration, onEvent: events.handler)
        defer { first.close() }
        try first.subscribe(topics: [topic])
        let message = try #require(pollMessages(first, count: 1).first)
        #expect(first.isStillAssigned(message))
        #expect(events.assignments.first == [KafkaTopicPartition(topic: topic, partition: 0)])

        // A second member joins: the eager protocol revokes everything from the first before reassigning.
        let second = try KafkaConsumer(configuration: configuration)
        defer { second.close() }
        try second.subscribe(topics: [topic])
        try #require(pollUntil(first) { !events.revocations.isEmpty }, "the first member's partition was never revoked")

        #expect(events.revocations.first == [KafkaTopicPartition(topic: topic, partition: 0)])
        #expect(!first.isStillAssigned(message))
        let error = #expect(throws: KafkaError.self) { try first.storeOffset(of: message) }
        #expect(error?.name == "_STATE")
        #expect(error?.message.contains("revoked after the message was polled") == true)
    }

    @Test func anOffsetOutOfRangeIsReportedAsAResetWithItsPartitionAndOffset() throws {
        let (cluster, topic) = try fiveMessagesAndACommitAtOffset100("reset")
        let events = EventCollector()
        let consumer = try KafkaConsumer(
            configuration: sixSecondSessionConfiguration(bootstrapServers: cluster.bootstrapServers, groupId: topic), onEvent: events.handler
        )
        defer { consumer.close() }
        try consumer.subscribe(topics: [topic])
        var messages: [KafkaMessage] = []
        _ = pollUntil(consumer, batch: { messages += $0 }) { messages.count == 5 }

        let reset = try #require(events.resets.first, "no offset reset reported; events: \(events.all)")
        #expect(events.resets.count == 1)
        #expect(reset.topic == topic && reset.partition == 0)
        #expect(reset.fromOffset == 100)
        #expect(reset.detail.contains("Offset out of range"))
        // auto.offset.reset=earliest: the consumer went on from the oldest offset.
        #expect(messages.map(\.offset) == [0, 1, 2, 3, 4])
    }

    @Test func withAutoOffsetResetErrorTheResetArrivesThroughABatchPoll() throws {
        let (cluster, topic) = try fiveMessagesAndACommitAtOffset100("reset-error")
        var configuration = sixSecondSessionConfiguration(bootstrapServers: cluster.bootstrapServers, groupId: topic)
        configuration.autoOffsetReset = "error"

        let events = EventCollector()
        let consumer = try KafkaConsumer(configuration: configuration, onEvent: events.handler)
        defer { consumer.close() }
        try consumer.subscribe(topics: [topic])
        #expect(pollUntil(consumer) { !events.resets.isEmpty }, "no reset reported; events: \(events.all)")
        let reset = try #require(events.resets.first)
        #expect(reset.topic == topic && reset.partition == 0)
        #expect(reset.resetTo.contains("auto.offset.reset=error"))
    }

    @Test func statisticsReportTheLagOfEachAssignedPartition() throws {
        let cluster = try KafkaMockCluster(brokerCount: 1)
        let topic = uniqueTopic("lag")
        try cluster.createTopic(topic, partitions: 2, replicationFactor: 1)
        _ = try produceNumberedMessages(to: topic, count: 20, bootstrapServers: cluster.bootstrapServers)
        var configuration = sixSecondSessionConfiguration(bootstrapServers: cluster.bootstrapServers, groupId: topic)
        configuration.statisticsInterval = .seconds(1)
        let events = EventCollector()
        let consumer = try KafkaConsumer(configuration: configuration, onEvent: events.handler)
        defer { consumer.close() }
        try consumer.subscribe(topics: [topic])
        let messages = pollMessages(consumer, count: 20)
        try #require(messages.count == 20)
        // Processed: the first three of partition 0 and nothing of partition 1.
        let partition0 = messages.filter { $0.partition == 0 }.sorted { $0.offset < $1.offset }
        let partition1Count = Int64(messages.count - partition0.count)
        try consumer.storeOffset(of: partition0[2])
        // Partition 0: the log's end minus the stored offset (3); partition 1: nothing stored or committed, unknown.
        let expected: [Figures] = [
            Figures(partition: 0, lag: Int64(partition0.count) - 3, highWatermark: Int64(partition0.count)),
            Figures(partition: 1, lag: nil, highWatermark: partition1Count),
        ]
        func figures(_ statistics: KafkaConsumerStatistics) -> [Figures] {
            statistics.partitions.map { Figures(partition: $0.partition, lag: $0.lag, highWatermark: $0.highWatermark) }
        }

        let arrivedBefore = events.statistics.count
        #expect(pollUntil(consumer) { events.statistics.dropFirst(arrivedBefore).contains { figures($0) == expected } },
                "statistics never showed \(expected); last: \(events.statistics.last.map { "\($0)" } ?? "none")")
        #expect(events.statistics.allSatisfy { $0.partitions.allSatisfy { $0.topic == topic } })
    }

    @Test func aMemberReadsTheGroupsCommittedLagOfEveryPartition() throws {
        let cluster = try KafkaMockCluster(brokerCount: 1)
        let topic = uniqueTopic("group-lag")
        try cluster.createTopic(topic, partitions: 2, replicationFactor: 1)
        _ = try produceNumberedMessages(to: topic, count: 10, bootstrapServers: cluster.bootstrapServers)
        let consumer = try KafkaConsumer(configuration: sixSecondSessionConfiguration(bootstrapServers: cluster.bootstrapServers, groupId: topic))
        defer { consumer.close() }
        try consumer.subscribe(topics: [topic])
        let messages = pollMessages(consumer, count: 10)
        let partition0 = messages.filter { $0.partition == 0 }.sorted { $0.offset < $1.offset }
        try #require(partition0.count >= 2, "the producer put fewer than 2 of 10 messages on partition 0")
        try consumer.storeOffset(of: partition0[1])
        try consumer.commit()

        let lag = try consumer.groupLag(topic: topic, timeout: .seconds(10))
        #expect(lag.map(\.partition) == [0, 1])
        #expect(lag.first?.committedOffset == 2)
        #expect(lag.first?.lag == Int64(partition0.count) - 2)
        #expect(lag.last?.committedOffset == nil)
        #expect(lag.last?.lag == Int64(messages.count - partition0.count))
    }

    struct Figures: Equatable {
        var partition: Int32
        var lag: Int64?
        var highWatermark: Int64?
    }
}

/// Collects a consumer's events for inspection.
final class EventCollector: Sendable {
    private let events = Mutex<[KafkaConsumerEvent]>([])

    var handler: @Sendable (KafkaConsumerEvent) -> Void {
        { event in self.events.withLock { $0.append(event) } }
    }

    var all: [KafkaConsumerEvent] { events.withLock { $0 } }

    var assignments: [[KafkaTopicPartition]] {
        all.compactMap { if case .partitionsAssigned(let partitions) = $0 { partitions } else { nil } }
    }

    var revocations: [[KafkaTopicPartition]] {
        all.compactMap { if case .partitionsRevoked(let partitions, _) = $0 { partitions } else { nil } }
    }

    var resets: [KafkaOffsetReset] {
        all.compactMap { if case .offsetReset(let reset) = $0 { reset } else { nil } }
    }

    var statistics: [KafkaConsumerStatistics] {
        all.compactMap { if case .statistics(let statistics) = $0 { statistics } else { nil } }
    }
}

/// Polls in batches (serving rebalances, statistics and logs) until `condition` holds; false if `limit` passed
/// first. The limit only keeps a broken test from hanging.
func pollUntil(
    _ consumer: KafkaConsumer, for limit: Duration = .seconds(60), batch: ([KafkaMessage]) -> Void = { _ in },
    _ condition: () -> Bool
) -> Bool {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if condition() { return true }
        if let messages = try? consumer.poll(maxMessages: 100, timeout: .milliseconds(100)) { batch(messages) }
    }
    return condition()
}

/// A cluster with a one-partition topic of 5 messages whose group (named like the topic) committed offset 100.
private func fiveMessagesAndACommitAtOffset100(_ purpose: String) throws -> (KafkaMockCluster, String) {
    let cluster = try KafkaMockCluster(brokerCount: 1)
    let topic = uniqueTopic(purpose)
    try cluster.createTopic(topic, partitions: 1, replicationFactor: 1)
    _ = try produceNumberedMessages(to: topic, count: 5, bootstrapServers: cluster.bootstrapServers)
    try commitOffsetPastTheEnd(
        100, topic: topic, configuration: sixSecondSessionConfiguration(bootstrapServers: cluster.bootstrapServers, groupId: topic)
    )
    return (cluster, topic)
}

/// Commits `offset` for partition 0 of `topic` in the configuration's group, beyond the log's end.
private func commitOffsetPastTheEnd(_ offset: Int64, topic: String, configuration: KafkaConsumerConfiguration) throws {
    let consumer = try KafkaConsumer(configuration: configuration)
    defer { consumer.close() }
    try consumer.subscribe(topics: [topic])
    try #require(pollUntil(consumer) { !consumer.assignedPartitions.isEmpty })
    try consumer.storeOffset(of: KafkaMessage(topic: topic, partition: 0, offset: offset - 1, key: nil, value: [], headers: []))
    try consumer.commit()
}

/// A short session, so that the mock cluster re-forms a group in about 5 s instead of 44 s.
private func sixSecondSessionConfiguration(bootstrapServers: String, groupId: String) -> KafkaConsumerConfiguration {
    var configuration = KafkaConsumerConfiguration(bootstrapServers: bootstrapServers, groupId: groupId)
    configuration.properties["session.timeout.ms"] = "6000"
    configuration.properties["heartbeat.interval.ms"] = "1000"
    return configuration
}
