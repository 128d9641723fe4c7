import Foundation
import RedisClient
import Synchronization
import Testing
import TestSupport

@Suite("RedisConnectionPool")
struct RedisConnectionPoolTests {
    @Test func concurrentIncrementsAreAllCounted() throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        let pool = RedisConnectionPool(configuration: configuration(for: server), maxIdleConnections: 8)
        let key = uniqueKey()
        let failures = Mutex<[String]>([])

        onThreads(32) { _ in
            for _ in 0..<200 {
                do {
                    _ = try pool.withConnection { try $0.command(["INCR", key]) }
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
        }

        #expect(failures.withLock { $0 } == [])
        #expect(try pool.withConnection { try $0.command(["GET", key]) }.string == "6400")
        #expect(pool.idleConnectionCount <= 8)
        #expect(pool.idleConnectionCount >= 1)
    }

    @Test func connectionsAreReusedAndServerErrorsKeepThemPooled() throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        let pool = RedisConnectionPool(configuration: configuration(for: server))
        let first = try pool.withConnection { try $0.command(["CLIENT", "ID"]).integer }
        #expect(throws: RedisError.self) {
            try pool.withConnection { try $0.command(["NOSUCHCOMMAND"]) }
        }
        let second = try pool.withConnection { try $0.command(["CLIENT", "ID"]).integer }
        #expect(first != nil)
        #expect(first == second)
    }

    @Test func brokenConnectionIsDropped() throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        let pool = RedisConnectionPool(
            configuration: configuration(for: server, commandTimeout: .milliseconds(200)))
        let first = try pool.withConnection { try $0.command(["CLIENT", "ID"]).integer }
        let timeout = #expect(throws: RedisError.self) {
            try pool.withConnection { try $0.command(["BLPOP", uniqueKey(), "0"]) }
        }
        #expect(timeout?.kind == .timeout)
        #expect(pool.idleConnectionCount == 0)
        let next = try pool.withConnection { try $0.command(["CLIENT", "ID"]).integer }
        #expect(next != first)
    }

    @Test func recoversAfterTheServerIsKilledAndRestartedOnTheSamePort() throws {
        let server = try RedisServer.start(appendOnly: true)
        let pool = RedisConnectionPool(configuration: configuration(for: server))
        let key = uniqueKey()
        // Nest to put three connections in the pool, all of which go stale when the server dies.
        try pool.withConnection { a in
            try pool.withConnection { b in
                try pool.withConnection { c in
                    for connection in [a, b, c] { _ = try connection.command(["INCR", key]) }
                }
            }
        }
        #expect(pool.idleConnectionCount == 3)

        server.kill()
        let whileDown = #expect(throws: RedisError.self) { try pool.withConnection { try $0.command(["PING"]) } }
        #expect(whileDown?.isConnectionBroken == true)
        // The first I/O failure discarded the other stale connections too.
        #expect(pool.idleConnectionCount == 0)
        let refused = #expect(throws: RedisError.self) { try pool.withConnection { try $0.command(["PING"]) } }
        #expect(refused?.kind == .connection)

        let restarted = try RedisServer.start(appendOnly: true, port: server.port, directory: server.directory)
        defer { restarted.stop() }
        // The pool reconnects once its backoff (at most maximumReconnectDelay) has passed.
        let deadline = ContinuousClock.now + .seconds(10)
        var reply: RedisReply?
        while reply == nil, ContinuousClock.now < deadline {
            reply = try? pool.withConnection { try $0.command(["PING"]) }
            if reply == nil { Thread.sleep(forTimeInterval: 0.05) }
        }
        #expect(reply == .status("PONG"))
        #expect(try pool.withConnection { try $0.command(["INCR", key + ":after"]) } == .integer(1))
    }

    @Test func connectsAreNotRetriedDuringTheBackoff() throws {
        let port = FreePort.find()
        let pool = RedisConnectionPool(
            configuration: RedisConfiguration(host: "127.0.0.1", port: port),
            minimumReconnectDelay: .seconds(30), maximumReconnectDelay: .seconds(30)
        )
        #expect(throws: RedisError.self) { try pool.withConnection { try $0.command(["PING"]) } }
        // The server comes up, but within the backoff the pool answers with the last error without connecting.
        let server = try RedisServer.start(port: port)
        defer { server.stop() }
        let waiting = #expect(throws: RedisError.self) { try pool.withConnection { try $0.command(["PING"]) } }
        #expect(waiting?.kind == .connection)
        #expect(waiting?.message.contains("next reconnect attempt") == true)
    }

    @Test func unreachableServerFailsWithConnectionKind() throws {
        let pool = RedisConnectionPool(configuration: RedisConfiguration(host: "127.0.0.1", port: FreePort.find()))
        let error = #expect(throws: RedisError.self) { try pool.withConnection { try $0.command(["PING"]) } }
        #expect(error?.kind == .connection)
    }
}
