import CMicroHTTPD
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An HTTP/1.1 server on libmicrohttpd.
public final class HTTPServer: Sendable {
    private let configuration: HTTPServerConfiguration
    private let dispatcher: RequestDispatcher
    private let state = Mutex<State>(.idle)

    private enum State {
        case idle
        case running(RunningDaemon)
        case stopped(port: Int)
    }

    /// Creates a server; nothing is bound until `start()`.
    public convenience init(configuration: HTTPServerConfiguration, responder: any HTTPResponder) {
        self.init(configuration: configuration, responder: responder, afterSuspending: nil)
    }

    /// `afterSuspending` is for tests: it runs on the worker right after a connection was suspended, before the
    /// suspension is published to the reply's sender.
    init(configuration: HTTPServerConfiguration, responder: any HTTPResponder, afterSuspending: (@Sendable () -> Void)?) {
        self.configuration = configuration
        self.dispatcher = RequestDispatcher(
            responder: responder,
            maxBodySize: max(configuration.maxBodySize, 0),
            oversizedBodyDrainLimit: max(configuration.oversizedBodyDrainLimit, 0),
            requiresContentLength: configuration.requiresContentLength,
            afterSuspending: afterSuspending)
    }

    deinit {
        stop()
    }

    /// The bound port once started (the configured port before that).
    public var port: Int {
        state.withLock { state in
            switch state {
            case .idle: configuration.port
            case .running(let daemon): daemon.port
            case .stopped(let port): port
            }
        }
    }

    /// Binds the listen socket and starts the worker threads.
    public func start() throws(HTTPServerError) {
        try state.withLock { (state: inout State) throws(HTTPServerError) in
            guard case .idle = state else {
                throw HTTPServerError(message: "the server was already started; create a new one to start again")
            }
            let listenSocket = try ListenSocket.open(
                host: configuration.host, port: configuration.port, backlog: configuration.listenBacklog)
            state = .running(try startDaemon(on: listenSocket))
        }
    }

    /// Stops accepting new connections, lets in-flight requests finish (up to `drainTimeout`; a request waiting
    /// for its `HTTPReply` is in flight until its reply was sent), then stops the daemon, closing every connection.
    /// Idempotent; returns at once if another call is already stopping.
    public func stop() {
        let running: RunningDaemon? = state.withLock { state in
            switch state {
            case .idle:
                state = .stopped(port: configuration.port)
                return nil
            case .running(let daemon):
                state = .stopped(port: daemon.port)
                return daemon
            case .stopped:
                return nil
            }
        }
        guard let running else { return }
        dispatcher.isDraining.store(true, ordering: .relaxed)

        // With MHD_USE_ITC, quiesce takes the listen socket out of every worker's epoll set and hands it
        // back to us. MHD says not to close it before MHD_stop_daemon, but shutting it down is enough to
        // make the kernel refuse new connections (ECONNREFUSED) instead of queueing them in the backlog.
        let quiescedSocket = MHD_quiesce_daemon(running.daemon)
        if quiescedSocket >= 0 {
            _ = shutdown(quiescedSocket, Int32(SHUT_RDWR))
        }
        waitForInFlightRequests()
        closeRequestsStillWaitingForTheirReply()
        MHD_stop_daemon(running.daemon)
        if quiescedSocket >= 0 {
            close(quiescedSocket)
        }
    }

    /// Polls the in-flight count: stop() is rare and short, a condition variable would cost every request.
    private func waitForInFlightRequests() {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: configuration.drainTimeout)
        while dispatcher.activeRequests.load(ordering: .relaxed) > 0 && clock.now < deadline {
            usleep(2_000)
        }
    }

    /// After the drain timeout: MHD must not be stopped while connections are suspended, so every request still
    /// waiting for its reply is resumed and closed unanswered (as a request still running was closed before).
    /// A reply thread that is itself resuming one is waited for, so no resume touches a freed connection.
    private func closeRequestsStillWaitingForTheirReply() {
        dispatcher.isAbandoningSuspended.store(true, ordering: .sequentiallyConsistent)
        for pending in dispatcher.suspendedRequests.allSuspended() where !pending.deliver(.close) {
            while pending.isBeingResumed {
                usleep(100)
            }
        }
    }

    private func startDaemon(on listenSocket: ListenSocket) throws(HTTPServerError) -> RunningDaemon {
        // Suspend/resume lets a request wait for its reply without holding a worker thread; it includes MHD_USE_ITC.
        var flags = MHD_USE_INTERNAL_POLLING_THREAD.rawValue | MHD_ALLOW_SUSPEND_RESUME.rawValue
        // epoll where available (Linux); poll elsewhere. Error logging stays off: MHD would print to stderr.
        if MHD_is_feature_supported(.FEATURE_EPOLL) == .YES {
            flags |= MHD_USE_EPOLL.rawValue
        } else {
            flags |= MHD_USE_POLL.rawValue
        }
        let timeout = configuration.connectionTimeout.components
        let timeoutSeconds = timeout.seconds + (timeout.attoseconds > 0 ? 1 : 0)
        let dispatcherPointer = Unmanaged.passUnretained(dispatcher).toOpaque()
        let daemon: OpaquePointer? = cmhd_start_daemon(
            flags,
            listenSocket.descriptor,
            UInt32(clamping: configuration.threadCount > 1 ? configuration.threadCount : 0),
            UInt32(clamping: max(timeoutSeconds, 0)),
            UInt32(clamping: max(configuration.connectionLimit, 1)),
            accessHandlerCallback, dispatcherPointer,
            requestCompletedCallback, dispatcherPointer,
            uriLogCallback, dispatcherPointer
        )
        guard let daemon else {
            // MHD may or may not have closed the socket on failure; close it only if it is still ours.
            if ListenSocket.localPort(of: listenSocket.descriptor) == listenSocket.port {
                close(listenSocket.descriptor)
            }
            throw HTTPServerError(
                message: "libmicrohttpd could not start on \(configuration.host):\(listenSocket.port)"
                    + " (threads: \(configuration.threadCount), connection limit: \(configuration.connectionLimit))")
        }
        return RunningDaemon(daemon: daemon, port: listenSocket.port)
    }
}

/// A started MHD daemon. MHD's daemon handle may be used from any thread; the server hands it to exactly
/// one stop() call, so sharing the pointer is safe.
private struct RunningDaemon: @unchecked Sendable {
    let daemon: OpaquePointer
    let port: Int
}

extension HTTPServer {
    /// Requests MHD has started and not yet reported complete; zero when idle (used by tests and stop()).
    var inFlightRequestCount: Int {
        dispatcher.activeRequests.load(ordering: .relaxed)
    }
}
