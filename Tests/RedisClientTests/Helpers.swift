import Foundation
import RedisClient
import TestSupport

/// A connection configuration pointing at a test server.
func configuration(for server: RedisServer, password: String? = nil, database: Int = 0,
                   commandTimeout: Duration = .seconds(10)) -> RedisConfiguration {
    RedisConfiguration(
        host: server.host, port: server.port, password: password, database: database,
        connectTimeout: .seconds(10), commandTimeout: commandTimeout)
}

/// A key no other test uses.
func uniqueKey(_ label: String = #function) -> String {
    "test:\(label):\(UUID().uuidString)"
}

/// Runs `body` on `count` real threads at once and waits for all of them.
func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    for index in 0..<count {
        group.enter()
        Thread {
            body(index)
            group.leave()
        }.start()
    }
    group.wait()
}
