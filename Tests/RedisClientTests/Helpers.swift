import Foundation
import Synchronization
import Testing
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

/// Collects the responses of submissions made with `record(index)` and waits for all of them.
final class Submissions: Sendable {
    private let responses: Mutex<[RedisResponse?]>
    private let done = DispatchSemaphore(value: 0)
    private let count: Int

    init(count: Int) {
        self.count = count
        responses = Mutex(Array(repeating: nil, count: count))
    }

    /// A completion storing its response at `index`; a second call for one index is recorded as a test failure.
    func record(_ index: Int) -> @Sendable (RedisResponse) -> Void {
        { response in
            let isFirst = self.responses.withLock { responses in
                defer { responses[index] = response }
                return responses[index] == nil
            }
            #expect(isFirst, "completion ran twice for submission \(index)")
            self.done.signal()
        }
    }

    /// Waits for every completion (at most two minutes, so a lost completion fails the test instead of hanging it).
    func wait() -> [RedisResponse] {
        for _ in 0..<count {
            if done.wait(timeout: .now() + 120) == .timedOut {
                Issue.record("a completion did not run within two minutes")
                break
            }
        }
        return responses.withLock { $0.map { $0 ?? RedisResponse(replies: [], acknowledgedReplicas: nil) } }
    }
}

/// Polls `condition` every 20 ms until it holds; throws after `limit` (a safety net, not a timing assertion).
func waitFor(_ what: String, limit: Duration = .seconds(60), _ condition: () throws -> Bool) throws {
    let deadline = ContinuousClock.now + limit
    while true {
        if (try? condition()) == true { return }
        if ContinuousClock.now > deadline { throw ChildProcessError("gave up waiting for \(what) after \(limit)") }
        Thread.sleep(forTimeInterval: 0.02)
    }
}

/// Waits until `clients` connections of the server are blocked (BLPOP and friends).
func waitUntilBlocked(_ admin: RedisConnection, clients: Int) throws {
    try waitFor("\(clients) blocked client(s)") {
        let info = try admin.command(["INFO", "clients"]).string ?? ""
        return info.contains("blocked_clients:\(clients)\r")
    }
}

extension Result {
    /// The error of a failure; nil for a success.
    var failure: Failure? {
        if case .failure(let error) = self { error } else { nil }
    }

    /// True for a success.
    var isSuccess: Bool {
        if case .success = self { true } else { false }
    }
}

/// A client's only connection, held by `BLPOP` on a fresh key until `open()`: what is submitted meanwhile queues.
struct BlockedConnection {
    let admin: RedisConnection
    let gate = uniqueKey("gate")
    let blocked = Submissions(count: 1)

    /// Submits the BLPOP and waits until the server has it blocked.
    init(_ client: RedisNodeClient, admin: RedisConnection) throws {
        self.admin = admin
        client.submit(RedisRequest([.command(["BLPOP", gate, "0"], key: gate)], timeout: .seconds(60)), completion: blocked.record(0))
        try waitUntilBlocked(admin, clients: 1)
    }

    /// Lets the BLPOP return.
    func open() throws {
        _ = try admin.command(["LPUSH", gate, "open"])
    }
}
