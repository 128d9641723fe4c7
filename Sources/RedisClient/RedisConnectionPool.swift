import Synchronization

/// A thread-safe pool: connections are made on demand, reused, and a broken one is dropped (so reconnecting after Redis returns is automatic).
///
/// After a failed connect, further connects wait out a backoff that doubles up to `maximumReconnectDelay`; meanwhile
/// callers fail at once with the last connect error, so an outage costs callers nothing but a quick error and
/// the server is not hammered with connection attempts.
public final class RedisConnectionPool: Sendable {
    /// How every pooled connection is made.
    public let configuration: RedisConfiguration
    /// At most this many unused connections are kept; extra ones are closed when returned.
    public let maxIdleConnections: Int
    /// The first wait after a failed connect.
    public let minimumReconnectDelay: Duration
    /// The longest wait between connect attempts while the server stays away.
    public let maximumReconnectDelay: Duration
    private let idle: Mutex<[IdleConnection]>
    private let reconnect = Mutex(ReconnectBackoff())

    /// Creates an empty pool; nothing connects until the first `withConnection`.
    public init(
        configuration: RedisConfiguration, maxIdleConnections: Int = 32,
        minimumReconnectDelay: Duration = .milliseconds(50), maximumReconnectDelay: Duration = .seconds(1)
    ) {
        self.configuration = configuration
        self.maxIdleConnections = max(0, maxIdleConnections)
        self.minimumReconnectDelay = minimumReconnectDelay
        self.maximumReconnectDelay = max(minimumReconnectDelay, maximumReconnectDelay)
        self.idle = Mutex([])
    }

    /// Runs `body` with an exclusive connection. The lock is held only to pop/push an idle connection, never during I/O.
    ///
    /// Throws RedisError when no connection can be made, and whatever `body` throws. The connection goes back to the
    /// pool unless it broke; when it broke on I/O (typically Redis went away), the other idle connections are
    /// dropped too, because they almost certainly point at the same dead server.
    public func withConnection<T>(_ body: (RedisConnection) throws -> T) throws -> T {
        let connection = try checkOut()
        defer { checkIn(connection) }
        return try body(connection)
    }

    /// How many unused connections the pool holds right now.
    public var idleConnectionCount: Int {
        idle.withLock { $0.count }
    }

    private func checkOut() throws(RedisError) -> RedisConnection {
        if let reused = idle.withLock({ $0.popLast() }) {
            return reused.connection
        }
        let now = ContinuousClock.now
        if let waiting = reconnect.withLock({ $0.errorIfWaiting(at: now) }) {
            throw waiting
        }
        // Connect outside the lock so one slow connect does not stall other threads.
        do {
            let connection = try RedisConnection(configuration: configuration)
            reconnect.withLock { $0.succeeded() }
            return connection
        } catch {
            reconnect.withLock {
                $0.failed(with: error, at: .now, minimumDelay: minimumReconnectDelay, maximumDelay: maximumReconnectDelay)
            }
            throw error
        }
    }

    private func checkIn(_ connection: RedisConnection) {
        if connection.isBroken {
            guard connection.breakingError?.kind == .io else { return }
            let stale = idle.withLock { idle in
                let stale = idle
                idle.removeAll()
                return stale
            }
            // Closing sockets happens here, after the lock is released.
            _ = stale
            return
        }
        let wrapped = IdleConnection(connection: connection)
        idle.withLock { idle in
            if idle.count < maxIdleConnections {
                idle.append(wrapped)
            }
        }
    }
}

/// A connection parked in the pool.
// @unchecked Sendable is safe: a connection is either in the idle list or owned by exactly one withConnection call, never both.
private struct IdleConnection: @unchecked Sendable {
    let connection: RedisConnection
}
