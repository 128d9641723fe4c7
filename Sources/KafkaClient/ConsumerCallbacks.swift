import CRdKafka
import Synchronization

/// What the consumer's C callbacks (rebalance, statistics, log) work on; passed to them as librdkafka's opaque.
/// librdkafka calls them from inside `rd_kafka_consumer_poll` (and `rd_kafka_consumer_close`), on the caller's
/// thread: rebalances and statistics arrive on the consumer queue, logs too (`log.queue`, forwarded there).
final class ConsumerContext: Sendable {
    private let onEvent: (@Sendable (KafkaConsumerEvent) -> Void)?
    private let state = Mutex(AssignmentState())

    private struct AssignmentState {
        var assigned: Set<KafkaTopicPartition> = []
        /// Counts revocations; a polled message remembers the count it saw.
        var revocations: UInt64 = 0
        /// The count right after each partition's last revocation.
        var lastRevocation: [KafkaTopicPartition: UInt64] = [:]
    }

    init(onEvent: (@Sendable (KafkaConsumerEvent) -> Void)?) {
        self.onEvent = onEvent
    }

    /// Whether log lines are wanted as events (otherwise librdkafka prints them to stderr itself).
    var forwardsLogs: Bool { onEvent != nil }

    var assignedPartitions: Set<KafkaTopicPartition> {
        state.withLock { $0.assigned }
    }

    /// The revocation count now, to stamp on a message being polled.
    var revocationCount: UInt64 {
        state.withLock { $0.revocations }
    }

    /// True when `partition` was revoked after a message stamped with `revocationCount` was polled.
    func wasRevoked(_ partition: KafkaTopicPartition, after revocationCount: UInt64) -> Bool {
        state.withLock { ($0.lastRevocation[partition] ?? 0) > revocationCount }
    }

    func report(_ event: KafkaConsumerEvent) {
        onEvent?(event)
    }

    /// Applies a rebalance the way the group protocol in use requires, then reports it.
    func rebalance(handle: OpaquePointer, err: rd_kafka_resp_err_t, list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) {
        let partitions = list.map(Self.partitions(of:)) ?? []
        let cooperative = String(cString: rd_kafka_rebalance_protocol(handle)) == "COOPERATIVE"
        switch err {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            let failure = cooperative
                ? rd_kafka_incremental_assign(handle, list).map { KafkaError(consuming: $0) }
                : KafkaError(orNil: rd_kafka_assign(handle, list))
            if let failure {
                report(.error(failure.adding(context: "applying the assignment of \(partitions)")))
                return
            }
            state.withLock { $0.assigned.formUnion(partitions) }
            report(.partitionsAssigned(partitions))
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            let lost = rd_kafka_assignment_lost(handle) != 0
            // Before librdkafka forgets them: from now on no message polled earlier may store an offset there.
            state.withLock { state in
                state.revocations += 1
                for partition in partitions {
                    state.assigned.remove(partition)
                    state.lastRevocation[partition] = state.revocations
                }
            }
            // Unassigning commits the stored offsets of these partitions (enable.auto.commit), then stops them.
            let failure = cooperative
                ? rd_kafka_incremental_unassign(handle, list).map { KafkaError(consuming: $0) }
                : KafkaError(orNil: rd_kafka_assign(handle, nil))
            report(.partitionsRevoked(partitions, lost: lost))
            if let failure { report(.error(failure.adding(context: "revoking \(partitions)"))) }
        default:
            // librdkafka's contract: on any other rebalance error, drop the assignment and let it rejoin.
            state.withLock { state in
                state.revocations += 1
                for partition in state.assigned { state.lastRevocation[partition] = state.revocations }
                state.assigned = []
            }
            _ = rd_kafka_assign(handle, nil)
            report(.error(KafkaError(err, message: "rebalance failed: \(String(cString: rd_kafka_err2str(err)))")))
        }
    }

    /// Reduces a statistics JSON to the assigned partitions and reports it.
    func statistics(_ json: UnsafeRawBufferPointer) {
        do {
            report(.statistics(try KafkaConsumerStatistics(json: json, only: assignedPartitions)))
        } catch {
            report(.error(KafkaError(RD_KAFKA_RESP_ERR__BAD_MSG, message: "unreadable statistics JSON: \(error)")))
        }
    }

    /// Reports a log line: an offset reset as its own event, everything else as a log record.
    func log(level: Int32, facility: String, message: String) {
        if facility == "OFFSET", level <= 4, let reset = KafkaOffsetReset(logMessage: message) {
            report(.offsetReset(reset))
        } else {
            report(.log(KafkaLogRecord(level: level, facility: facility, message: message)))
        }
    }

    static func partitions(of list: UnsafePointer<rd_kafka_topic_partition_list_t>) -> [KafkaTopicPartition] {
        (0..<Int(list.pointee.cnt)).map { index in
            let entry = list.pointee.elems[index]
            return KafkaTopicPartition(topic: String(cString: entry.topic), partition: entry.partition)
        }
    }

    static func partitions(of list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> [KafkaTopicPartition] {
        partitions(of: UnsafePointer(list))
    }

    /// Installs the callbacks on `conf` with this context as their opaque (retained until `release`).
    func install(on conf: OpaquePointer) -> UnsafeMutableRawPointer {
        let opaque = Unmanaged.passRetained(self).toOpaque()
        rd_kafka_conf_set_opaque(conf, opaque)
        // Non-capturing closures only (C function pointers); the context comes back through the opaque.
        rd_kafka_conf_set_rebalance_cb(conf) { handle, err, list, opaque in
            guard let handle, let opaque else { return }
            Unmanaged<ConsumerContext>.fromOpaque(opaque).takeUnretainedValue().rebalance(handle: handle, err: err, list: list)
        }
        rd_kafka_conf_set_stats_cb(conf) { _, json, length, opaque in
            guard let json, let opaque else { return 0 }
            Unmanaged<ConsumerContext>.fromOpaque(opaque).takeUnretainedValue()
                .statistics(UnsafeRawBufferPointer(start: json, count: length))
            return 0  // librdkafka frees the JSON
        }
        if forwardsLogs {
            rd_kafka_conf_set_log_cb(conf) { handle, level, facility, message in
                guard let handle, let opaque = rd_kafka_opaque(handle) else { return }
                Unmanaged<ConsumerContext>.fromOpaque(opaque).takeUnretainedValue().log(
                    level: level, facility: facility.map { String(cString: $0) } ?? "",
                    message: message.map { String(cString: $0) } ?? ""
                )
            }
        }
        return opaque
    }

    /// Balances `install` once the handle that used the callbacks is destroyed.
    static func release(_ opaque: UnsafeMutableRawPointer) {
        Unmanaged<ConsumerContext>.fromOpaque(opaque).release()
    }
}

extension KafkaError {
    /// The error for a response code, or nil for NO_ERROR.
    init?(orNil err: rd_kafka_resp_err_t) {
        guard err != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        self.init(err)
    }

    /// The same error with what was being done put in front of its message.
    func adding(context: String) -> KafkaError {
        var copy = self
        copy.message = "\(context): \(message)"
        return copy
    }
}
