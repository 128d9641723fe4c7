import CMicroHTTPD
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The handoff of one request's answer between the responder (any thread, any time) and the MHD worker thread
/// that owns the connection. Lock-free: one atomic state decides who resumes the connection.
///
/// The worker asks the responder, then either finds the answer already there (queued at once, no suspension) or
/// suspends the connection and publishes `suspended`. Whoever comes second resumes: the replying thread when it
/// finds `suspended`, the worker itself when the answer arrived between the responder's return and the suspension.
/// MHD then calls the access handler again and the stored answer is queued. Resuming is only ever done for a
/// connection that is already suspended, as MHD requires (an early resume would cancel the later suspension).
final class PendingReply: @unchecked Sendable {
    /// What the connection gets.
    enum Outcome {
        /// Send this response.
        case response(HTTPResponse)
        /// Close the connection without an answer (the server is stopping and gave up waiting).
        case close
    }

    private enum State: UInt8, AtomicRepresentable {
        /// The worker has not suspended the connection (it may still be in the responder).
        case open
        /// The worker suspended the connection and waits for the answer.
        case suspended
        /// The answer is stored; the worker will find it without being resumed.
        case answered
        /// The answer is stored and the replying thread is resuming the suspended connection.
        case resuming
        /// The answer is stored and the connection was resumed (or is being resumed by the worker itself).
        case resumed
    }

    let connection: OpaquePointer
    private let state = Atomic<State>(.open)
    /// Set by the first `deliver`, so the outcome is written exactly once.
    private let claimed = Atomic<Bool>(false)
    /// Written once by the thread that claimed, before `state` leaves `open`/`suspended` (releasing); read by the
    /// worker only after it saw that state change (acquiring).
    private var outcome: Outcome?

    // Membership in the worker's `SuspendedRequests`, guarded by that shard's lock.
    var registry: SuspendedRequests?
    var previous: PendingReply?
    var next: PendingReply?

    init(connection: OpaquePointer) {
        self.connection = connection
    }

    /// Stores the outcome (the first call wins, later ones return false) and resumes the connection if the worker
    /// already suspended it. Any thread.
    @discardableResult
    func deliver(_ outcome: Outcome) -> Bool {
        guard !claimed.exchange(true, ordering: .acquiringAndReleasing) else { return false }
        self.outcome = outcome
        if state.compareExchange(expected: .open, desired: .answered, ordering: .acquiringAndReleasing).exchanged {
            return true  // the worker has not suspended yet: it finds the answer when the responder returns, or right after suspending
        }
        // Only the worker moves `open` to `suspended`, and only the claimer moves it on: it is `suspended` here.
        state.store(.resuming, ordering: .releasing)
        MHD_resume_connection(connection)
        state.store(.resumed, ordering: .releasing)
        return true
    }

    /// The stored outcome when the answer came before the worker suspended (no suspension needed). Worker thread.
    func takeAnswerWithoutSuspending() -> Outcome? {
        state.load(ordering: .acquiring) == .answered ? takeOutcome() : nil
    }

    /// Called by the worker right after `MHD_suspend_connection`. True when the connection now waits for
    /// `deliver`; false when the answer arrived meanwhile, in which case the worker has resumed the connection
    /// itself and will find the outcome on the next access-handler call.
    func publishSuspension() -> Bool {
        if state.compareExchange(expected: .open, desired: .suspended, ordering: .acquiringAndReleasing).exchanged {
            return true
        }
        state.store(.resumed, ordering: .releasing)
        MHD_resume_connection(connection)
        return false
    }

    /// The outcome, once `deliver` ran (nil before). Worker thread, after resumption.
    func takeOutcome() -> Outcome? {
        switch state.load(ordering: .acquiring) {
        case .open, .suspended: return nil
        case .answered, .resuming, .resumed:
            defer { outcome = nil }
            return outcome
        }
    }

    /// True while a replying thread is between seeing `suspended` and returning from `MHD_resume_connection`;
    /// `stop()` waits for that before stopping the daemon.
    var isBeingResumed: Bool {
        switch state.load(ordering: .acquiring) {
        case .suspended, .resuming: claimed.load(ordering: .acquiring)
        case .open, .answered, .resumed: false
        }
    }
}

/// The suspended requests of one MHD worker thread: registered and removed by that thread only, read by `stop()`
/// when it must resume every suspended connection before stopping the daemon (MHD aborts otherwise). The lock
/// is therefore uncontended except during a forced stop.
final class SuspendedRequests: Sendable {
    private let head = Mutex<PendingReply?>(nil)

    func insert(_ reply: PendingReply) {
        head.withLock { head in
            reply.registry = self
            reply.next = head
            head?.previous = reply
            head = reply
        }
    }

    func remove(_ reply: PendingReply) {
        head.withLock { head in
            guard reply.registry === self else { return }
            if let previous = reply.previous { previous.next = reply.next } else { head = reply.next }
            reply.next?.previous = reply.previous
            reply.previous = nil
            reply.next = nil
            reply.registry = nil
        }
    }

    func all() -> [PendingReply] {
        head.withLock { head in
            var replies: [PendingReply] = []
            var cursor = head
            while let reply = cursor {
                replies.append(reply)
                cursor = reply.next
            }
            return replies
        }
    }
}

/// One `SuspendedRequests` per worker thread, found through a thread-specific key.
final class SuspendedRequestRegistry: @unchecked Sendable {
    private var key = pthread_key_t()
    /// Every shard handed out; keeps them alive (the thread-specific values are unretained) and lets stop() see them.
    private let shards = Mutex<[SuspendedRequests]>([])

    init() {
        let status = pthread_key_create(&key, nil)
        precondition(status == 0, "pthread_key_create failed: \(status)")
    }

    deinit {
        pthread_key_delete(key)
    }

    /// The calling worker thread's shard (made on its first suspension).
    func shardForCurrentThread() -> SuspendedRequests {
        if let existing = pthread_getspecific(key) {
            return Unmanaged<SuspendedRequests>.fromOpaque(existing).takeUnretainedValue()
        }
        let shard = SuspendedRequests()
        shards.withLock { $0.append(shard) }
        pthread_setspecific(key, Unmanaged.passUnretained(shard).toOpaque())
        return shard
    }

    /// Every request suspended right now, on any worker thread.
    func allSuspended() -> [PendingReply] {
        shards.withLock { $0 }.flatMap { $0.all() }
    }
}
