import CRdKafka
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A thread-safe producer; delivery reports are drained by one internal poll thread and handed to the handler in
/// batches (so the handler can e.g. batch follow-up work).
public final class KafkaProducer: Sendable {
    private let client: ProducerClient
    private let pollThread: PollThread

    /// Creates the producer and starts its poll thread. The handlers run on that thread, one call at a time;
    /// keep them short (hand work off) because delivery reports wait behind them. An error with `isFatal` means
    /// this producer takes nothing more (e.g. the idempotent producer lost track of its sequence numbers): every
    /// later send throws, undelivered messages get failed reports, and only a new producer can go on.
    public init(
        configuration: KafkaProducerConfiguration,
        onDeliveryReports: @escaping @Sendable ([KafkaDeliveryReport]) -> Void,
        onError: @escaping @Sendable (KafkaError) -> Void = { _ in }
    ) throws(KafkaError) {
        let conf = try makeRdKafkaConf(configuration.librdkafkaProperties)
        // Reports and errors arrive as events on the main queue, drained by one loop instead of per-poll callbacks.
        rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR)
        let handle = try makeRdKafkaHandle(RD_KAFKA_PRODUCER, conf: conf)
        client = ProducerClient(handle: handle, onDeliveryReports: onDeliveryReports, onError: onError)
        pollThread = PollThread(client: client)
    }

    deinit {
        // Nobody can send any more; whatever is not delivered yet gets a failed (purged) report.
        shutdown(timeout: .zero)
    }

    /// Enqueues a message (copied). Throws on a full local queue (after waiting up to 100 ms for room when
    /// `waitForRoom` is true), an unknown topic, etc.
    public func send(
        topic: String, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader] = [], waitForRoom: Bool = true
    ) throws(KafkaError) {
        // The local queue (queue.buffering.max.messages/kbytes) drains as the poll thread serves reports,
        // so a short wait usually makes room; beyond that the caller should back off itself.
        let queueFullRetries = waitForRoom ? 5 : 0
        var attempt = 0
        while true {
            do {
                return try client.produce(topic: topic, key: key, value: value, headers: headers)
            } catch where error.code == RD_KAFKA_RESP_ERR__QUEUE_FULL.rawValue && attempt < queueFullRetries {
                attempt += 1
                usleep(20_000)
            }
        }
    }

    /// Waits until every enqueued message has a delivery report (true) or the timeout passes (false).
    /// "Has a report" means the report handler has returned for it. Returns true at once after shutdown.
    /// Do not call it from the report handler: it would wait for itself until the timeout.
    public func flush(timeout: Duration) -> Bool {
        (try? client.flush(timeout: timeout)) ?? true
    }

    /// The error that made this producer unusable, or nil while it works (see `isFatal`).
    public var fatalError: KafkaError? {
        (try? client.fatalError()) ?? nil
    }

    /// Asks the cluster for its metadata: succeeds when a broker answered within `timeout` (a readiness check).
    public func checkClusterReachable(timeout: Duration) throws(KafkaError) {
        try client.requestMetadata(timeout: timeout)
    }

    /// The number of partitions of `topic`, or nil when the cluster does not have it. Asks for every topic's
    /// metadata, so asking never creates the topic: a request naming a topic creates it on brokers that create
    /// topics on demand, and always on librdkafka's mock cluster (it takes Metadata v2, older than the request
    /// field by which a client declines creation).
    public func partitionCount(of topic: String, timeout: Duration) throws(KafkaError) -> Int? {
        try client.partitionCount(of: topic, timeout: timeout)
    }

    /// Flushes, stops the poll thread and destroys the handle. Idempotent. (deinit also cleans up.)
    /// Messages still undelivered after `timeout` are purged: their failed reports reach the handler first.
    /// Called from a handler (on the poll thread), it cannot wait for reports: it purges at once and the
    /// poll thread destroys the handle when the handler returns.
    public func shutdown(timeout: Duration) {
        guard client.gate.closeAndWaitForCalls() else { return }
        if pollThread.isCurrentThread {
            client.purgeUndelivered()
            pollThread.stopWithoutJoining()
            return
        }
        client.drain(timeout: timeout)
        pollThread.stopAndJoin()
        client.destroy()
    }
}

/// The librdkafka producer handle plus what the poll thread needs; shared by KafkaProducer and its poll thread.
/// Safe to share: librdkafka handles are thread-safe, the handlers are Sendable, the flags are atomic, and
/// the gate keeps `destroy` from running under any call.
final class ProducerClient: @unchecked Sendable {
    private let handle: OpaquePointer
    private let mainQueue: OpaquePointer
    private let onDeliveryReports: @Sendable ([KafkaDeliveryReport]) -> Void
    private let onError: @Sendable (KafkaError) -> Void
    let gate = ClientGate(closedMessage: "producer is shut down")
    let stopRequested = Atomic<Bool>(false)
    /// Set when shutdown ran on the poll thread itself: the loop then destroys the handle as it exits.
    let destroyWhenLoopExits = Atomic<Bool>(false)

    init(
        handle: OpaquePointer,
        onDeliveryReports: @escaping @Sendable ([KafkaDeliveryReport]) -> Void,
        onError: @escaping @Sendable (KafkaError) -> Void
    ) {
        self.handle = handle
        self.mainQueue = rd_kafka_queue_get_main(handle)
        self.onDeliveryReports = onDeliveryReports
        self.onError = onError
    }

    /// Enqueues one message (non-blocking).
    func produce(topic: String, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader]) throws(KafkaError) {
        try gate.withCall { () throws(KafkaError) in
            if let failure = enqueue(topic: topic, key: key, value: value, headers: headers) { throw failure }
        }
    }

    /// A metadata request for the brokers only (no topics); throws when no broker answers in time.
    func requestMetadata(timeout: Duration) throws(KafkaError) {
        try gate.withCall { () throws(KafkaError) in
            var metadata: UnsafePointer<rd_kafka_metadata>?
            let err = rd_kafka_metadata(handle, 0, nil, &metadata, timeout.wholeMilliseconds)
            if let metadata { rd_kafka_metadata_destroy(metadata) }
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(err) }
        }
    }

    /// The partition count of `topic` from a metadata request for all topics, nil when it is not among them.
    func partitionCount(of topic: String, timeout: Duration) throws(KafkaError) -> Int? {
        try gate.withCall { () throws(KafkaError) -> Int? in
            var metadata: UnsafePointer<rd_kafka_metadata>?
            let err = rd_kafka_metadata(handle, 1, nil, &metadata, timeout.wholeMilliseconds)
            defer { if let metadata { rd_kafka_metadata_destroy(metadata) } }
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
                throw KafkaError(err, message: "metadata of all topics: \(String(cString: rd_kafka_err2str(err)))")
            }
            for index in 0..<Int(metadata.pointee.topic_cnt) {
                let answer = metadata.pointee.topics[index]
                guard String(cString: answer.topic) == topic else { continue }
                switch answer.err {
                case RD_KAFKA_RESP_ERR_NO_ERROR: return Int(answer.partition_cnt)
                case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART: return nil
                default: throw KafkaError(answer.err, message: "metadata of \(topic): \(String(cString: rd_kafka_err2str(answer.err)))")
                }
            }
            return nil
        }
    }

    /// The fatal error raised on the handle, if any.
    func fatalError() throws(KafkaError) -> KafkaError? {
        try gate.withCall { () -> KafkaError? in
            var text = [CChar](repeating: 0, count: 512)
            let code = rd_kafka_fatal_error(handle, &text, text.count)
            guard code != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
            return KafkaError(code, message: string(fromErrorBuffer: text), isFatal: true)
        }
    }

    /// rd_kafka_flush through the gate: true when everything has been reported.
    func flush(timeout: Duration) throws(KafkaError) -> Bool {
        try gate.withCall { rd_kafka_flush(handle, timeout.wholeMilliseconds) == RD_KAFKA_RESP_ERR_NO_ERROR }
    }

    private func enqueue(topic: String, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader]) -> KafkaError? {
        // Ownership of the header list passes to the message only when produceva succeeds.
        let headerList = headers.isEmpty ? nil : KafkaHeader.makeCHeaders(headers)
        let error: OpaquePointer? = topic.withCString { topicName in
            withOptionalBytes(key) { keyBytes in
                value.withUnsafeBytes { valueBytes in
                    var fields: [rd_kafka_vu_t] = []
                    fields.append(.field(RD_KAFKA_VTYPE_TOPIC) { $0.cstr = topicName })
                    fields.append(.field(RD_KAFKA_VTYPE_VALUE) { $0.mem = .init(ptr: UnsafeMutableRawPointer(mutating: valueBytes.baseAddress), size: valueBytes.count) })
                    if let keyBytes {
                        fields.append(.field(RD_KAFKA_VTYPE_KEY) { $0.mem = .init(ptr: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress), size: keyBytes.count) })
                    }
                    if let headerList {
                        fields.append(.field(RD_KAFKA_VTYPE_HEADERS) { $0.headers = headerList })
                    }
                    // Copy key and value: the Swift buffers are only valid during this call.
                    fields.append(.field(RD_KAFKA_VTYPE_MSGFLAGS) { $0.i = RD_KAFKA_MSG_F_COPY })
                    return rd_kafka_produceva(handle, fields, fields.count)
                }
            }
        }
        guard let error else { return nil }
        if let headerList { rd_kafka_headers_destroy(headerList) }
        return KafkaError(consuming: error)
    }

    /// After the gate closed: waits up to `timeout` for outstanding reports, then purges the rest so that their
    /// failed reports still reach the handler (served by the still-running poll thread).
    func drain(timeout: Duration) {
        if rd_kafka_flush(handle, timeout.wholeMilliseconds) == RD_KAFKA_RESP_ERR_NO_ERROR { return }
        purgeUndelivered()
        // Purged messages get their reports promptly; this bound only guards against a stuck handler.
        _ = rd_kafka_flush(handle, 5_000)
    }

    /// Fails every message not yet delivered; their reports (_PURGE_QUEUE/_PURGE_INFLIGHT) follow on the queue.
    func purgeUndelivered() {
        _ = rd_kafka_purge(handle, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT)
    }

    /// Frees the handle. Only after the gate closed and the poll loop has stopped.
    func destroy() {
        rd_kafka_queue_destroy(mainQueue)
        rd_kafka_destroy(handle)
    }

    /// Wakes the poll loop so it notices `stopRequested` without waiting for its poll timeout.
    func wakePollLoop() {
        rd_kafka_queue_yield(mainQueue)
    }

    /// The poll thread's body: drains events until stop is requested.
    func runPollLoop() {
        while !stopRequested.load(ordering: .acquiring) {
            guard let first = rd_kafka_queue_poll(mainQueue, 100) else { continue }
            // Take whatever else is already queued so the handler gets one larger batch.
            var events = [first]
            while events.count < 64, let next = rd_kafka_queue_poll(mainQueue, 0) { events.append(next) }
            var reports: [KafkaDeliveryReport] = []
            for event in events {
                switch rd_kafka_event_type(event) {
                case RD_KAFKA_EVENT_DR:
                    while let message = rd_kafka_event_message_next(event) { reports.append(.init(copying: message)) }
                case RD_KAFKA_EVENT_ERROR:
                    onError(errorFromEvent(event))
                default:
                    break
                }
            }
            if !reports.isEmpty { onDeliveryReports(reports) }
            // Destroying the events releases their messages; only then does flush() count them as done.
            for event in events { rd_kafka_event_destroy(event) }
        }
        if destroyWhenLoopExits.load(ordering: .acquiring) { destroy() }
    }

    private func errorFromEvent(_ event: OpaquePointer) -> KafkaError {
        let code = rd_kafka_event_error(event)
        if code == RD_KAFKA_RESP_ERR__FATAL {
            // The event only says "fatal"; the underlying cause is kept on the handle.
            var text = [CChar](repeating: 0, count: 512)
            let cause = rd_kafka_fatal_error(handle, &text, text.count)
            return KafkaError(cause, message: string(fromErrorBuffer: text), isFatal: true)
        }
        let message = rd_kafka_event_error_string(event).map { String(cString: $0) }
        return KafkaError(code, message: message, isFatal: rd_kafka_event_error_is_fatal(event) != 0)
    }
}

extension KafkaDeliveryReport {
    /// Copies a report's fields out of a delivered (or failed) message.
    init(copying message: UnsafePointer<rd_kafka_message_t>) {
        self.init(
            topic: message.topicName,
            partition: message.pointee.partition,
            offset: message.pointee.offset,
            key: message.keyBytes,
            value: message.valueBytes,
            // Not rd_kafka_message_errstr: in a delivery report the payload is the message itself, not error text.
            error: message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(message.pointee.err)
        )
    }
}

extension rd_kafka_vu_t {
    /// One rd_kafka_produceva argument of the given type, with its union member set by `setValue`.
    static func field(_ type: rd_kafka_vtype_t, _ setValue: (inout Self.__Unnamed_union_u) -> Void) -> Self {
        var field = rd_kafka_vu_t()
        field.vtype = type
        setValue(&field.u)
        return field
    }
}

/// Like withUnsafeBytes, passing nil through for a nil array.
private func withOptionalBytes<Result>(_ bytes: [UInt8]?, _ body: (UnsafeRawBufferPointer?) -> Result) -> Result {
    guard let bytes else { return body(nil) }
    return bytes.withUnsafeBytes { body($0) }
}

/// The producer's one poll thread (a plain pthread so shutdown can join it).
final class PollThread: Sendable {
    private let client: ProducerClient
    private let thread: Mutex<pthread_t?>

    /// Starts the thread; it keeps `client` alive until it exits.
    init(client: ProducerClient) {
        self.client = client
        var thread = pthread_t()
        let context = Unmanaged.passRetained(client).toOpaque()
        let result = pthread_create(&thread, nil, { context in
            let client = Unmanaged<ProducerClient>.fromOpaque(context!).takeRetainedValue()
            client.runPollLoop()
            return nil
        }, context)
        precondition(result == 0, "pthread_create failed: \(result)")
        self.thread = Mutex(thread)
    }

    /// True when called on the poll thread, i.e. from inside a handler.
    var isCurrentThread: Bool {
        thread.withLock { thread in thread.map { pthread_equal($0, pthread_self()) != 0 } ?? false }
    }

    /// From the poll thread itself: lets the loop end after the current handler and destroy the handle.
    func stopWithoutJoining() {
        guard let thread = self.thread.withLock({ thread in defer { thread = nil }; return thread }) else { return }
        client.destroyWhenLoopExits.store(true, ordering: .releasing)
        client.stopRequested.store(true, ordering: .releasing)
        pthread_detach(thread)
    }

    /// Asks the loop to stop, wakes it and waits for it to exit. Idempotent.
    func stopAndJoin() {
        guard let thread = self.thread.withLock({ thread in defer { thread = nil }; return thread }) else { return }
        client.stopRequested.store(true, ordering: .releasing)
        client.wakePollLoop()
        pthread_join(thread, nil)
    }
}
