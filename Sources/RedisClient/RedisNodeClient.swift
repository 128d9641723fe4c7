import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A client for one Redis server with group commit: a few connections, each owned by its own thread, each
/// sending everything queued since its last round trip as one pipeline.
///
/// When a connection is idle, a submission goes out at once (no batching window, so no added latency); while
/// its pipelines are in flight, submissions arriving meanwhile ride the next one. A request asking for replicas
/// gets one `WAIT` at the end of its pipeline, shared with every other such request in it.
///
/// Conforms to `RedisDeployment` as a single Redis (one primary serving every slot); `RedisCluster` runs one per
/// primary.
public final class RedisNodeClient: RedisDeployment {
    /// How a node client behaves; the defaults suit an HTTP service with a handful of worker threads.
    public struct Options: Sendable, Equatable {
        /// Connections (each with its own thread) to the server.
        public var connections: Int
        /// At most this many commands go into one pipeline; more wait for the next one.
        public var maximumPipelineCommands: Int
        /// The first wait after a failed connect.
        public var minimumReconnectDelay: Duration
        /// The longest wait between connect attempts while the server stays away.
        public var maximumReconnectDelay: Duration

        /// Creates options; the defaults are 2 connections, 1,024 commands per pipeline, a reconnect backoff from
        /// 50 ms doubling to 1 s.
        public init(
            connections: Int = 2, maximumPipelineCommands: Int = 1024,
            minimumReconnectDelay: Duration = .milliseconds(50), maximumReconnectDelay: Duration = .seconds(1)
        ) {
            self.connections = max(1, connections)
            self.maximumPipelineCommands = max(1, maximumPipelineCommands)
            self.minimumReconnectDelay = minimumReconnectDelay
            self.maximumReconnectDelay = max(minimumReconnectDelay, maximumReconnectDelay)
        }
    }

    /// How every connection is made (host, port, credentials, timeouts).
    public let configuration: RedisConfiguration
    /// The behaviour chosen at creation.
    public let options: Options
    /// The server's address.
    public let id: RedisNodeID

    /// What the client sent since it was created.
    public struct Statistics: Sendable, Equatable {
        /// Pipelines written (round trips), including repeats after NOSCRIPT.
        public var pipelines: Int
        /// Commands written in them (not counting SCRIPT LOAD, ASKING and WAIT).
        public var commands: Int
    }

    /// Pipelines and commands sent so far; commands per pipeline shows how much group commit is happening.
    public var statistics: Statistics {
        Statistics(pipelines: shared.pipelinesSent.load(ordering: .relaxed), commands: shared.commandsSent.load(ordering: .relaxed))
    }

    private let shared: NodeShared
    private let threads: Mutex<[pthread_t]>

    /// Starts the connection threads; they connect on first use.
    public init(configuration: RedisConfiguration, options: Options = Options()) {
        _ = sigpipeIsIgnored
        self.configuration = configuration
        self.options = options
        self.id = RedisNodeID(host: configuration.host, port: configuration.port)
        self.shared = NodeShared(configuration: configuration, options: options)
        var started: [pthread_t] = []
        for _ in 0..<options.connections {
            started.append(ConnectionThread.start(ConnectionThread(shared: shared)))
        }
        self.threads = Mutex(started)
    }

    deinit {
        shutdown()
    }

    public func submit(_ request: RedisRequest, completion: @escaping @Sendable (RedisResponse) -> Void) {
        enqueue(NodeSubmission(commands: request.commands, deadline: request.deadline, replicas: request.replicas, completion: completion))
    }

    /// Runs the request here when `node` is this server's address; otherwise fails it with `.clusterDown`.
    public func submit(_ request: RedisRequest, to node: RedisNodeID, completion: @escaping @Sendable (RedisResponse) -> Void) {
        guard node == id else {
            let error = RedisError(kind: .clusterDown, message: "\(node) is not a primary of this deployment (only \(id) is)")
            completion(RedisResponse(failing: request.commands.count, with: error, replicas: request.replicas))
            return
        }
        submit(request, completion: completion)
    }

    /// This server, serving every slot.
    public func primaries() throws(RedisError) -> [RedisNodeDescription] {
        [RedisNodeDescription(id: id, slots: [RedisSlot.all])]
    }

    public func shutdown() {
        let joining = threads.withLock { threads in
            let joining = threads
            threads.removeAll()
            return joining
        }
        guard !joining.isEmpty else { return }
        shared.isShutDown.store(true, ordering: .sequentiallyConsistent)
        for _ in joining { shared.wakeups.signal() }
        for thread in joining { pthread_join(thread, nil) }
        // Anything pushed after the threads took their last batch.
        shared.failQueuedAfterShutdown()
    }

    /// Queues a submission for the connection threads (the cluster passes its parts here).
    func enqueue(_ submission: NodeSubmission) {
        shared.queue.push(submission)
        // Submitters and shutdown form a Dekker pair: either the threads' final drain sees this push or we see the flag.
        if shared.isShutDown.load(ordering: .sequentiallyConsistent) {
            shared.failQueuedAfterShutdown()
            return
        }
        shared.wakeOneSleeper()
    }
}

/// One request for one node, as queued: a node in the submission stack.
final class NodeSubmission: @unchecked Sendable {
    // @unchecked Sendable is safe: everything is immutable except `next`, which only the pushing thread writes,
    // before the node is published by the releasing compare-exchange.
    let commands: [RedisCommand]
    let deadline: ContinuousClock.Instant
    let replicas: Int
    let completion: @Sendable (RedisResponse) -> Void
    var next: Unmanaged<NodeSubmission>?

    init(commands: [RedisCommand], deadline: ContinuousClock.Instant, replicas: Int, completion: @escaping @Sendable (RedisResponse) -> Void) {
        self.commands = commands
        self.deadline = deadline
        self.replicas = replicas
        self.completion = completion
    }

    func fail(_ error: RedisError) {
        completion(RedisResponse(failing: commands.count, with: error, replicas: replicas))
    }
}

/// The queue in front of a node's connection threads: a lock-free multi-producer stack (Treiber).
///
/// Why a stack: submitters (HTTP worker threads) push with one compare-exchange and never wait for each other or
/// for a connection thread, and a connection thread takes everything at once with one exchange, which is exactly
/// what group commit wants. Taking the whole stack (never popping single nodes) makes it immune to ABA. The
/// thread reverses what it took, so submissions are sent in arrival order.
final class SubmissionStack: Sendable {
    private let head = Atomic<Unmanaged<NodeSubmission>?>(nil)

    func push(_ submission: NodeSubmission) {
        let node = Unmanaged.passRetained(submission)
        var current = head.load(ordering: .relaxed)
        while true {
            submission.next = current
            let (exchanged, original) = head.compareExchange(
                expected: current, desired: node, successOrdering: .sequentiallyConsistent, failureOrdering: .relaxed)
            if exchanged { return }
            current = original
        }
    }

    /// Everything pushed so far, oldest first.
    func takeAll() -> [NodeSubmission] {
        guard var node = head.exchange(nil, ordering: .sequentiallyConsistent) else { return [] }
        var taken: [NodeSubmission] = []
        while true {
            let submission = node.takeRetainedValue()
            taken.append(submission)
            guard let next = submission.next else { break }
            submission.next = nil
            node = next
        }
        taken.reverse()
        return taken
    }

    var isEmpty: Bool {
        head.load(ordering: .sequentiallyConsistent) == nil
    }
}

/// What a node's connection threads share.
final class NodeShared: Sendable {
    let configuration: RedisConfiguration
    let options: RedisNodeClient.Options
    let queue = SubmissionStack()
    let isShutDown = Atomic<Bool>(false)
    /// Threads that announced they are about to sleep and were not yet claimed by a submitter.
    ///
    /// Waking: a submitter pushes, then reads this counter; only when a thread sleeps does it claim one
    /// (decrement) and signal the semaphore (a futex wake). While the threads are busy, which is when load is
    /// high, a submission costs one compare-exchange and one load, no system call.
    let sleepers = Atomic<Int>(0)
    let wakeups = DispatchSemaphore(value: 0)
    /// Reconnect backoff for the whole node: while it runs, submissions fail at once, not sent.
    let backoff = Mutex(ReconnectBackoff())
    let pipelinesSent = Atomic<Int>(0)
    let commandsSent = Atomic<Int>(0)

    init(configuration: RedisConfiguration, options: RedisNodeClient.Options) {
        self.configuration = configuration
        self.options = options
    }

    func wakeOneSleeper() {
        var sleeping = sleepers.load(ordering: .sequentiallyConsistent)
        while sleeping > 0 {
            let (claimed, original) = sleepers.compareExchange(
                expected: sleeping, desired: sleeping - 1, ordering: .sequentiallyConsistent)
            if claimed {
                wakeups.signal()
                return
            }
            sleeping = original
        }
    }

    /// Sleeps until a submitter wakes this thread, unless something was queued meanwhile.
    func sleepUntilWoken() {
        sleepers.add(1, ordering: .sequentiallyConsistent)
        // Anything pushed before the announcement above is seen here; anything after it sees the announcement.
        if !queue.isEmpty {
            var sleeping = sleepers.load(ordering: .sequentiallyConsistent)
            while sleeping > 0 {
                let (withdrawn, original) = sleepers.compareExchange(
                    expected: sleeping, desired: sleeping - 1, ordering: .sequentiallyConsistent)
                if withdrawn { return }
                sleeping = original
            }
            // A submitter claimed the announcement and is about to signal: take that signal.
        }
        wakeups.wait()
    }

    func failQueuedAfterShutdown() {
        let error = RedisError(kind: .connection, message: "the Redis client for \(configuration.host):\(configuration.port) was shut down")
        for submission in queue.takeAll() {
            submission.fail(error)
        }
    }
}

/// One connection and the thread that owns it: takes what is queued, sends it as one pipeline, completes it.
final class ConnectionThread: @unchecked Sendable {
    // @unchecked Sendable is safe: after `start` hands the object to its thread, only that thread touches it.
    private let shared: NodeShared
    private var connection: RedisConnection?
    /// Scripts this connection loaded (or saw run) since it connected; others get `SCRIPT LOAD` in front.
    private var loadedScripts: Set<String> = []
    /// Taken from the queue but beyond the pipeline cap: they go first next time.
    private var carried: [NodeSubmission] = []

    init(shared: NodeShared) {
        self.shared = shared
    }

    /// Starts a thread running `thread.run()`.
    static func start(_ thread: ConnectionThread) -> pthread_t {
        let context = Unmanaged.passRetained(thread).toOpaque()
        var handle = pthread_t()
        let status = pthread_create(&handle, nil, { context in
            let thread = Unmanaged<ConnectionThread>.fromOpaque(context!).takeRetainedValue()
            thread.run()
            return nil
        }, context)
        precondition(status == 0, "cannot start a Redis connection thread: error \(status)")
        return handle
    }

    private func run() {
        while true {
            var batch = carried
            carried = []
            batch += shared.queue.takeAll()
            if batch.isEmpty {
                if shared.isShutDown.load(ordering: .sequentiallyConsistent) { break }
                shared.sleepUntilWoken()
                continue
            }
            if shared.isShutDown.load(ordering: .sequentiallyConsistent) {
                let error = RedisError(kind: .connection, message: "the Redis client for \(endpoint) was shut down")
                for submission in batch { submission.fail(error) }
                continue
            }
            var commandCount = 0
            var cut = batch.count
            for (position, submission) in batch.enumerated() {
                commandCount += submission.commands.count
                if commandCount > shared.options.maximumPipelineCommands, position > 0 {
                    cut = position
                    break
                }
            }
            if cut < batch.count {
                carried = Array(batch[cut...])
                batch.removeSubrange(cut...)
            }
            send(batch)
        }
        connection = nil
    }

    private var endpoint: String { "\(shared.configuration.host):\(shared.configuration.port)" }

    /// Sends the batch and completes every submission in it.
    private func send(_ batch: [NodeSubmission]) {
        let now = ContinuousClock.now
        var live: [NodeSubmission] = []
        live.reserveCapacity(batch.count)
        for submission in batch {
            if submission.deadline <= now {
                submission.fail(RedisError(
                    kind: .deadlineExceeded, message: "the deadline passed before the command was sent to \(endpoint)"))
            } else {
                live.append(submission)
            }
        }
        guard !live.isEmpty else { return }

        var exchange = PipelineExchange(submissions: live)
        // A connection found dead before anything was written is replaced once, within the deadlines.
        var attempts = 0
        while true {
            let connection: RedisConnection
            switch usableConnection(for: live) {
            case .success(let usable): connection = usable
            case .failure(let error):
                exchange.failUnsent(with: error)
                exchange.complete()
                return
            }
            // Connecting takes time: what expired meanwhile is failed, still unsent.
            exchange.failExpired(at: .now, endpoint: endpoint)
            let written = exchange.run(on: connection, loadedScripts: &loadedScripts, shared: shared)
            if connection.isBroken { noteBroken(connection) }
            if written { break }
            attempts += 1
            if attempts == 2 {
                exchange.failUnsent(with: connection.breakingError ?? RedisError(kind: .io, message: "connection to \(endpoint) lost"))
                break
            }
        }
        exchange.complete()
    }

    private func noteBroken(_ broken: RedisConnection) {
        if broken === connection { connection = nil }
    }

    /// The open connection, or a new one unless the node is in backoff.
    private func usableConnection(for batch: [NodeSubmission]) -> Result<RedisConnection, RedisError> {
        if let connection {
            // A server that closed the connection (restart, CLIENT KILL, idle timeout) would swallow the batch and
            // leave every command in doubt; one non-blocking peek (a system call next to a round trip) tells, so the
            // batch goes to a fresh connection instead, still certainly unsent.
            if !connection.peerHasClosed() {
                return .success(connection)
            }
            self.connection = nil
        }
        let now = ContinuousClock.now
        if let waiting = shared.backoff.withLock({ $0.errorIfWaiting(at: now) }) {
            return .failure(waiting)
        }
        var configuration = shared.configuration
        // Connecting past every deadline in the batch would be pointless.
        let budget = (batch.map(\.deadline).max() ?? now) - now
        guard budget > .zero else {
            return .failure(RedisError(kind: .deadlineExceeded, message: "the deadline passed before a connection to \(endpoint) was made"))
        }
        let isShortened = configuration.connectTimeout == .zero || configuration.connectTimeout > budget
        if isShortened { configuration.connectTimeout = budget }
        let started = ContinuousClock.now
        do {
            let opened = try RedisConnection(configuration: configuration)
            shared.backoff.withLock { $0.succeeded() }
            connection = opened
            loadedScripts = []
            return .success(opened)
        } catch {
            // A failed AUTH or SELECT round trip is still a failed connect: nothing of the batch was sent.
            var unsent = error
            if unsent.kind != .authentication { unsent.kind = .connection }
            unsent.mayHaveExecuted = false
            // A connect cut short by the batch's deadline proves nothing about the node: no backoff for that.
            if !isShortened || ContinuousClock.now - started < budget {
                let options = shared.options
                shared.backoff.withLock { [unsent] in
                    $0.failed(with: unsent, at: .now, minimumDelay: options.minimumReconnectDelay, maximumDelay: options.maximumReconnectDelay)
                }
            }
            return .failure(unsent)
        }
    }
}

/// The replies of one batch as they come in: what was written, in which order, and what each submission gets.
struct PipelineExchange {
    private let submissions: [NodeSubmission]
    /// Per submission, per command: nil until answered.
    private var results: [[Result<RedisReply, RedisError>?]]
    private var acknowledged: [Int?]
    /// Commands that still need a (first or repeated) send: (submission, command).
    private var pending: [(Int, Int)]
    private var noScriptRetried = false

    private static let asking = RESPEncoder.encode(["ASKING"])

    /// What each reply in a written pipeline belongs to.
    private enum Slot {
        case scriptLoad(RedisScript)
        case asking
        case command(Int, Int)
        case wait
    }

    init(submissions: [NodeSubmission]) {
        self.submissions = submissions
        results = submissions.map { Array(repeating: nil, count: $0.commands.count) }
        acknowledged = Array(repeating: nil, count: submissions.count)
        pending = []
        for (index, submission) in submissions.enumerated() {
            for (position, command) in submission.commands.enumerated() {
                if command.encoded.isEmpty {
                    results[index][position] = .failure(RedisError(
                        kind: .protocol, message: "a command needs at least one argument", isConnectionBroken: false,
                        mayHaveExecuted: false))
                } else {
                    pending.append((index, position))
                }
            }
        }
    }

    /// Writes the pending commands and reads their replies; repeats once for commands answered NOSCRIPT.
    /// Returns false when the connection was dead before anything was written (the batch may go to a new one).
    mutating func run(on connection: RedisConnection, loadedScripts: inout Set<String>, shared: NodeShared) -> Bool {
        // Nothing here waits past the latest deadline of the batch for a write or a reply.
        if let latest = submissions.lazy.map(\.deadline).max() {
            connection.limitTimeout(to: ContinuousClock.now.duration(to: latest))
        }
        while !pending.isEmpty {
            let sending = pending
            pending = []
            guard roundTrip(sending, on: connection, loadedScripts: &loadedScripts, shared: shared) else {
                pending = sending
                return false
            }
            if connection.isBroken { return true }
            let missingScript = sending.filter { index, position in
                submissions[index].commands[position].script != nil
                    && results[index][position].flatMap { try? $0.get() }?.errorMessage?.hasPrefix("NOSCRIPT") == true
            }
            guard !missingScript.isEmpty, !noScriptRetried else { return true }
            // The server lost its scripts (SCRIPT FLUSH, or a restart this connection did not notice): load them
            // and send just those commands again.
            noScriptRetried = true
            for (index, position) in missingScript {
                if let script = submissions[index].commands[position].script { loadedScripts.remove(script.sha1) }
                results[index][position] = nil
            }
            pending = missingScript
        }
        return true
    }

    /// One pipeline: missing scripts, the commands (each after ASKING when redirected so), then WAIT if asked.
    private mutating func roundTrip(
        _ sending: [(Int, Int)], on connection: RedisConnection, loadedScripts: inout Set<String>, shared: NodeShared
    ) -> Bool {
        var slots: [Slot] = []
        slots.reserveCapacity(sending.count + 2)
        var loading: Set<String> = []
        var replicas = 0
        var waitBudget: Duration?
        do throws(RedisError) {
            for (index, position) in sending {
                if let script = submissions[index].commands[position].script, !loadedScripts.contains(script.sha1),
                    loading.insert(script.sha1).inserted
                {
                    try connection.append(encoded: RESPEncoder.encode(["SCRIPT", "LOAD", script.source]))
                    slots.append(.scriptLoad(script))
                }
            }
            let now = ContinuousClock.now
            for (index, position) in sending {
                let command = submissions[index].commands[position]
                if command.isAsking {
                    try connection.append(encoded: Self.asking)
                    slots.append(.asking)
                }
                try connection.append(encoded: command.encoded)
                slots.append(.command(index, position))
                let submission = submissions[index]
                if submission.replicas > 0 {
                    replicas = max(replicas, submission.replicas)
                    let remaining = submission.deadline - now
                    waitBudget = min(waitBudget ?? remaining, remaining)
                }
            }
            if let waitBudget {
                try connection.append(encoded: RESPEncoder.encode(["WAIT", String(replicas), String(Self.waitMilliseconds(waitBudget, commandTimeout: shared.configuration.commandTimeout))]))
                slots.append(.wait)
            }
            try connection.flush()
            shared.pipelinesSent.add(1, ordering: .relaxed)
            shared.commandsSent.add(sending.count, ordering: .relaxed)
        } catch {
            if !error.mayHaveExecuted { return false }
            fail(sending, with: error)
            return true
        }

        var waitReply: Int?
        for (slotIndex, slot) in slots.enumerated() {
            let reply: RedisReply
            do {
                reply = try connection.readReply()
            } catch {
                for unanswered in slots[slotIndex...] {
                    if case .command(let index, let position) = unanswered { results[index][position] = .failure(error) }
                }
                break
            }
            switch slot {
            case .scriptLoad(let script):
                if reply.string == script.sha1 { loadedScripts.insert(script.sha1) }
            case .asking:
                break
            case .command(let index, let position):
                results[index][position] = Self.result(of: reply)
            case .wait:
                waitReply = reply.integer.map { Int($0) }
            }
        }
        if waitBudget != nil {
            // WAIT covers every write made before it on this connection, so it stands for each submission in it.
            let sentSubmissions = Set(sending.map(\.0))
            for index in sentSubmissions where submissions[index].replicas > 0 {
                acknowledged[index] = waitReply ?? 0
            }
        }
        return true
    }

    /// WAIT's timeout in milliseconds: the smallest remaining budget, at least 1 (0 would wait forever), and well
    /// inside the socket timeout, so a slow replica never breaks the connection.
    private static func waitMilliseconds(_ budget: Duration, commandTimeout: Duration) -> Int64 {
        var limit = budget
        if commandTimeout > .zero { limit = min(limit, commandTimeout / 2) }
        let (seconds, attoseconds) = limit.components
        return max(1, seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }

    /// A reply as the caller sees it: server errors stay replies, except an authentication refusal.
    private static func result(of reply: RedisReply) -> Result<RedisReply, RedisError> {
        if case .error(let message) = reply, RedisError.isAuthenticationFailure(message) {
            return .failure(RedisError(kind: .authentication, message: message, isConnectionBroken: false))
        }
        return .success(reply)
    }

    private mutating func fail(_ commands: [(Int, Int)], with error: RedisError) {
        for (index, position) in commands { results[index][position] = .failure(error) }
    }

    /// Fails the pending commands of submissions whose deadline has passed, before they are written.
    mutating func failExpired(at now: ContinuousClock.Instant, endpoint: String) {
        pending.removeAll { index, position in
            guard submissions[index].deadline <= now else { return false }
            results[index][position] = .failure(RedisError(
                kind: .deadlineExceeded, message: "the deadline passed before the command was sent to \(endpoint)"))
            return true
        }
    }

    /// Fails whatever is unanswered as never sent (connect failed, node in backoff).
    mutating func failUnsent(with error: RedisError) {
        var unsent = error
        unsent.mayHaveExecuted = false
        for index in results.indices {
            for position in results[index].indices where results[index][position] == nil {
                results[index][position] = .failure(unsent)
            }
        }
    }

    /// Runs every submission's completion.
    func complete() {
        for (index, submission) in submissions.enumerated() {
            let replies = results[index].map { $0 ?? .failure(RedisError(kind: .io, message: "no reply was read")) }
            let acknowledged = submission.replicas > 0 ? (acknowledged[index] ?? 0) : nil
            submission.completion(RedisResponse(replies: replies, acknowledgedReplicas: acknowledged))
        }
    }
}
