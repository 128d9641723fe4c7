import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Guards a librdkafka handle's lifetime: calls enter the gate while it is open, and closing waits until
/// every call that entered has left, so the handle is never destroyed under a running call.
final class ClientGate: Sendable {
    private struct State {
        var isOpen = true
        var callsInProgress = 0
    }

    private let state = Mutex(State())
    private let closedMessage: String

    /// `closedMessage` is the text of the error thrown by calls after close, e.g. "producer is shut down".
    init(closedMessage: String) {
        self.closedMessage = closedMessage
    }

    /// Runs `body` as a call through the gate; throws a _STATE error once the gate is closed.
    func withCall<Result>(_ body: () throws(KafkaError) -> Result) throws(KafkaError) -> Result {
        let entered = state.withLock { state in
            guard state.isOpen else { return false }
            state.callsInProgress += 1
            return true
        }
        guard entered else { throw KafkaError.clientState(closedMessage) }
        defer { state.withLock { $0.callsInProgress -= 1 } }
        return try body()
    }

    /// Closes the gate and waits for calls in progress to leave. Returns false if it was already closed,
    /// so exactly one caller goes on to tear down.
    func closeAndWaitForCalls() -> Bool {
        let wasOpen = state.withLock { state in
            defer { state.isOpen = false }
            return state.isOpen
        }
        guard wasOpen else { return false }
        // Calls are short or bounded by their own timeout (poll, flush), so a sleep loop is enough here.
        while state.withLock({ $0.callsInProgress }) > 0 { usleep(1_000) }
        return true
    }
}
