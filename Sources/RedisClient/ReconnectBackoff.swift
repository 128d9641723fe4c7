/// The reconnect backoff: when the next connect may be tried, and what to answer until then.
struct ReconnectBackoff {
    var delay: Duration = .zero
    var notBefore: ContinuousClock.Instant?
    var lastError: RedisError?

    func errorIfWaiting(at now: ContinuousClock.Instant) -> RedisError? {
        guard let notBefore, now < notBefore, let lastError else { return nil }
        return RedisError(kind: lastError.kind, message: "\(lastError.message) (next reconnect attempt in \(notBefore - now))")
    }

    mutating func failed(with error: RedisError, at now: ContinuousClock.Instant, minimumDelay: Duration, maximumDelay: Duration) {
        delay = delay == .zero ? minimumDelay : min(delay * 2, maximumDelay)
        notBefore = now + delay
        lastError = error
    }

    mutating func succeeded() {
        delay = .zero
        notBefore = nil
        lastError = nil
    }
}
