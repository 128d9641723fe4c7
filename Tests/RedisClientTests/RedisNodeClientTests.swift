import Foundation
import RedisClient
import Synchronization
import Testing
import TestSupport

@Suite("RedisNodeClient")
struct RedisNodeClientTests {
    /// A request with little budget left does not wait a whole command timeout for its reply: the socket waits
    /// only as long as the request may (the read-back after a lost reply relies on it to answer within budget).
    @Test func aReplyIsAwaitedNoLongerThanTheRequestsDeadline() throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        let client = RedisNodeClient(configuration: configuration(for: server, commandTimeout: .seconds(30)), options: .init(connections: 1))
        defer { client.shutdown() }
        #expect(try client.execute(RedisRequest([.command(["PING"], key: nil)], timeout: .seconds(10))).replies[0].get() == .status("PONG"))

        server.process.signal(SIGSTOP)
        defer { server.process.signal(SIGCONT) }
        let response = client.execute(RedisRequest([.command(["PING"], key: nil)], timeout: .milliseconds(300)))
        guard case .failure(let error) = response.replies[0] else {
            Issue.record("a frozen Redis answered \(response.replies[0])")
            return
        }
        #expect(error.kind == .timeout)
        // The socket waited what was left of the 300 ms, not the 30 s command timeout.
        #expect(!error.message.contains("30.0 seconds"), "\(error)")
        #expect(error.message.contains("no reply within 0."), "\(error)")
    }

    @Test func repliesComeBackInTheRequestsOrder() throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        let client = RedisNodeClient(configuration: configuration(for: server))
        defer { client.shutdown() }
        let key = uniqueKey()

        let response = client.execute(RedisRequest([
            .command(["SET", key, "1"], key: key),
            .command(["INCRBY", key, "41"], key: key),
            .command(["GET", key], key: key),
            .command(["HGET", key, "field"], key: key),
            .command(["PING"], key: nil),
        ], timeout: .seconds(10)))

        #expect(try response.replies.map { try $0.get() } == [
            .status("OK"), .integer(42), .string(Array("42".utf8)),
            .error("WRONGTYPE Operation against a key holding the wrong kind of value"), .status("PONG"),
        ])
        #expect(response.acknowledgedReplicas == nil)
    }

    @Test func concurrentSubmittersEachGetTheirOwnReplies() throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        let client = RedisNodeClient(configuration: configuration(for: server))
        defer { client.shutdown() }
        let counter = uniqueKey()
        let mismatches = Mutex<[String]>([])
        let threads = 8
        let requestsPerThread = 500

        onThreads(threads) { thread in
            for request in 0..<requestsPerThread {
                let key = "\(counter):\(thread):\(request)"
                let value = "value-\(thread)-\(request)"
                let response = client.execute(RedisRequest([
                    .command(["SET", key, value], key: key),
                    .command(["INCR", counter], key: counter),
                    .command(["GET", key], key: key),
                    .command(["ECHO", value], key: nil),
                ], timeout: .seconds(30)))
                let replies = response.replies.map { try? $0.get() }
                let counted = replies[1]?.integer ?? 0
                if replies[0] != .status("OK") || counted < 1 || replies[2]?.string != value || replies[3]?.string != value {
                    mismatches.withLock { $0.append("\(key): \(replies)") }
                }
            }
        }

        #expect(mismatches.withLock { $0 } == [])
        let total = client.execute(RedisRequest([.command(["GET", counter], key: counter)], timeout: .seconds(10)))
        #expect(try total.replies[0].get().string == String(threads * requestsPerThread))
        let statistics = client.statistics
        #expect(statistics.commands == threads * requestsPerThread * 4 + 1)
        #expect(statistics.pipelines <= threads * requestsPerThread + 1)
        print("group commit: \(statistics.commands) commands in \(statistics.pipelines) pipelines")
    }

    @Test func submissionsArrivingDuringARoundTripRideTheNextPipeline() throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        let client = RedisNodeClient(configuration: configuration(for: server), options: .init(connections: 1))
        defer { client.shutdown() }
        let connection = try BlockedConnection(client, admin: RedisConnection(configuration: configuration(for: server)))
        let before = client.statistics

        let queued = Submissions(count: 50)
        for index in 0..<50 {
            client.submit(RedisRequest([.command(["ECHO", String(index)], key: nil)], timeout: .seconds(60)), completion: queued.record(index))
        }
        try connection.open()

        #expect(connection.blocked.wait()[0].replies[0].isSuccess)
        let responses = queued.wait()
        for (index, response) in responses.enumerated() {
            #expect(try response.replies[0].get().string == String(index))
        }
        // All fifty were queued behind BLPOP, so they went out together.
        #expect(client.statistics.pipelines == before.pipelines + 1)
        #expect(client.statistics.commands == before.commands + 50)
    }

    @Test func aLongRequestIsSplitNeverAndOthersWaitForTheNextPipeline() throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        let client = RedisNodeClient(
            configuration: configuration(for: server), options: .init(connections: 1, maximumPipelineCommands: 4))
        defer { client.shutdown() }
        let key = uniqueKey()
        let commands = (0..<10).map { RedisCommand.command(["RPUSH", key, String($0)], key: key) }
        let response = client.execute(RedisRequest(commands, timeout: .seconds(10)))
        #expect(try response.replies.map { try $0.get() } == (1...10).map { .integer(Int64($0)) })
    }

    @Test func waitReportsTheReplicasThatConfirmed() throws {
        let primary = try RedisServer.start()
        defer { primary.stop() }
        let client = RedisNodeClient(configuration: configuration(for: primary))
        defer { client.shutdown() }
        let key = uniqueKey()

        let alone = client.execute(RedisRequest([.command(["SET", key, "1"], key: key)], timeout: .milliseconds(300), replicas: 1))
        #expect(try alone.replies[0].get() == .status("OK"))
        #expect(alone.acknowledgedReplicas == 0)

        let replica = try RedisServer.start(extraArguments: ["--replicaof", primary.host, String(primary.port)])
        defer { replica.stop() }
        let admin = try RedisConnection(configuration: configuration(for: primary))
        try waitFor("the replica to be in sync") {
            try admin.command(["INFO", "replication"]).string?.contains("state=online") == true
        }
        let confirmed = client.execute(RedisRequest([.command(["SET", key, "2"], key: key)], timeout: .seconds(10), replicas: 1))
        #expect(try confirmed.replies[0].get() == .status("OK"))
        #expect(confirmed.acknowledgedReplicas == 1)
        let replicaConnection = try RedisConnection(configuration: configuration(for: replica))
        #expect(try replicaConnection.command(["GET", key]).string == "2")
    }

    @Test func scriptsAreLoadedOnFirstUseAndAgainAfterSCRIPTFLUSH() throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        let client = RedisNodeClient(configuration: configuration(for: server))
        defer { client.shutdown() }
        let admin = try RedisConnection(configuration: configuration(for: server))
        let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        let key = uniqueKey()

        let first = client.execute(RedisRequest([.script(script, keys: [key], arguments: ["5"])], timeout: .seconds(10)))
        #expect(try first.replies[0].get() == .integer(5))
        _ = try admin.command(["SCRIPT", "FLUSH"])
        #expect(try admin.command(["SCRIPT", "EXISTS", script.sha1]) == .array([.integer(0)]))

        // Both connections lost the script; every request still runs it exactly once.
        let responses = Mutex<[RedisResponse]>([])
        onThreads(4) { _ in
            let response = client.execute(RedisRequest([
                .command(["GET", key], key: key), .script(script, keys: [key], arguments: ["1"]),
            ], timeout: .seconds(10)))
            responses.withLock { $0.append(response) }
        }
        for response in responses.withLock({ $0 }) {
            #expect(response.replies[0].isSuccess)
            #expect(try response.replies[1].get().integer != nil)
        }
        #expect(try admin.command(["GET", key]).string == "9")
        #expect(try admin.command(["SCRIPT", "EXISTS", script.sha1]) == .array([.integer(1)]))
    }

    @Test func aScriptErrorIsAReplyAndLeavesTheConnectionUsable() throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        let client = RedisNodeClient(configuration: configuration(for: server), options: .init(connections: 1))
        defer { client.shutdown() }
        let failing = RedisScript("return redis.error_reply('CUSTOM something went wrong')")
        let response = client.execute(RedisRequest([.script(failing, keys: [], arguments: []), .command(["PING"], key: nil)], timeout: .seconds(10)))
        #expect(try response.replies[0].get() == .error("CUSTOM something went wrong"))
        #expect(try response.replies[1].get() == .status("PONG"))
    }

    @Test func aPassedDeadlineFailsTheRequestUnsent() throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        let client = RedisNodeClient(configuration: configuration(for: server))
        defer { client.shutdown() }
        let key = uniqueKey()
        let response = client.execute(RedisRequest([.command(["SET", key, "x"], key: key)], deadline: .now - .seconds(1)))
        let error = response.replies[0].failure
        #expect(error?.kind == .deadlineExceeded)
        #expect(error?.mayHaveExecuted == false)
        let admin = try RedisConnection(configuration: configuration(for: server))
        #expect(try admin.command(["EXISTS", key]) == .integer(0))
    }

    @Test func aDeadlinePassingWhileQueuedFailsTheRequestUnsent() throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        let client = RedisNodeClient(configuration: configuration(for: server), options: .init(connections: 1))
        defer { client.shutdown() }
        let admin = try RedisConnection(configuration: configuration(for: server))
        let connection = try BlockedConnection(client, admin: admin)
        let key = uniqueKey()
        let queued = Submissions(count: 1)
        let deadline = ContinuousClock.now + .milliseconds(50)
        client.submit(RedisRequest([.command(["SET", key, "x"], key: key)], deadline: deadline), completion: queued.record(0))
        // Open the gate only after the queued request's deadline has passed.
        try waitFor("the deadline to pass") { ContinuousClock.now > deadline }
        try connection.open()

        let error = queued.wait()[0].replies[0].failure
        #expect(error?.kind == .deadlineExceeded)
        #expect(error?.mayHaveExecuted == false)
        #expect(connection.blocked.wait()[0].replies[0].isSuccess)
        #expect(try admin.command(["EXISTS", key]) == .integer(0))
    }

    @Test func aKilledServerFailsInFlightCommandsAsMaybeExecutedAndQueuedOnesAsUnsent() throws {
        // With a password, reconnecting takes a round trip (AUTH), so a connection the dying server's kernel
        // still accepts fails during the connect instead of taking the queued command with it.
        let server = try RedisServer.start(extraArguments: ["--requirepass", "pw"])
        let client = RedisNodeClient(configuration: configuration(for: server, password: "pw"), options: .init(connections: 1))
        defer { client.shutdown() }
        let inFlight = try BlockedConnection(client, admin: RedisConnection(configuration: configuration(for: server, password: "pw")))
        let queued = Submissions(count: 1)
        client.submit(RedisRequest([.command(["PING"], key: nil)], timeout: .seconds(60)), completion: queued.record(0))
        server.kill()

        let inFlightError = inFlight.blocked.wait()[0].replies[0].failure
        #expect(inFlightError?.kind == .io)
        #expect(inFlightError?.mayHaveExecuted == true)
        // The queued PING was retried on a new connection, which could not be made.
        let queuedError = queued.wait()[0].replies[0].failure
        #expect(queuedError?.kind == .connection, "\(String(describing: queuedError))")
        #expect(queuedError?.mayHaveExecuted == false)

        // While the server is down (backoff), requests fail at once without being sent.
        let down = client.execute(RedisRequest([.command(["PING"], key: nil)], timeout: .seconds(60)))
        #expect(down.replies[0].failure?.kind == .connection)
        #expect(down.replies[0].failure?.mayHaveExecuted == false)
    }

    @Test func recoversWhenTheServerComesBackOnTheSamePort() throws {
        let server = try RedisServer.start(appendOnly: true)
        let client = RedisNodeClient(configuration: configuration(for: server))
        defer { client.shutdown() }
        let key = uniqueKey()
        #expect(try client.execute(RedisRequest([.command(["SET", key, "before"], key: key)], timeout: .seconds(10))).replies[0].get() == .status("OK"))
        server.stop()
        let down = client.execute(RedisRequest([.command(["GET", key], key: key)], timeout: .seconds(10)))
        #expect(down.replies[0].failure?.mayHaveExecuted == false)

        let restarted = try RedisServer.start(appendOnly: true, port: server.port, directory: server.directory)
        defer { restarted.stop() }
        try waitFor("the client to reconnect") {
            let response = client.execute(RedisRequest([.command(["GET", key], key: key)], timeout: .seconds(10)))
            return (try? response.replies[0].get().string) == "before"
        }
    }

    @Test func anIdleConnectionClosedByTheServerIsReplacedBeforeWriting() throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        let client = RedisNodeClient(configuration: configuration(for: server), options: .init(connections: 1))
        defer { client.shutdown() }
        let admin = try RedisConnection(configuration: configuration(for: server))
        #expect(client.execute(RedisRequest([.command(["PING"], key: nil)], timeout: .seconds(10))).replies[0].isSuccess)
        _ = try admin.command(["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"])
        try waitFor("the kill to take effect") { try admin.command(["CLIENT", "LIST"]).string?.split(separator: "\n").count == 1 }

        let key = uniqueKey()
        let response = client.execute(RedisRequest([.command(["SET", key, "x"], key: key)], timeout: .seconds(10)))
        #expect(try response.replies[0].get() == .status("OK"))
    }

    @Test func authenticationFailuresHaveTheirOwnKind() throws {
        let server = try RedisServer.start(extraArguments: ["--requirepass", "s3cret"])
        defer { server.stop() }

        let wrong = RedisNodeClient(configuration: configuration(for: server, password: "wrong"))
        defer { wrong.shutdown() }
        let refused = wrong.execute(RedisRequest([.command(["PING"], key: nil)], timeout: .seconds(10))).replies[0].failure
        #expect(refused?.kind == .authentication)
        #expect(refused?.mayHaveExecuted == false)

        let anonymous = RedisNodeClient(configuration: configuration(for: server))
        defer { anonymous.shutdown() }
        let noAuth = anonymous.execute(RedisRequest([.command(["PING"], key: nil)], timeout: .seconds(10))).replies[0].failure
        #expect(noAuth?.kind == .authentication)
        #expect(noAuth?.mayHaveExecuted == false)
        #expect(noAuth?.message.hasPrefix("NOAUTH") == true)

        let right = RedisNodeClient(configuration: configuration(for: server, password: "s3cret"))
        defer { right.shutdown() }
        #expect(try right.execute(RedisRequest([.command(["PING"], key: nil)], timeout: .seconds(10))).replies[0].get() == .status("PONG"))
    }

    @Test func asASingleNodeDeploymentItServesEverySlot() throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        let deployment: any RedisDeployment = RedisNodeClient(configuration: configuration(for: server))
        defer { deployment.shutdown() }
        let primaries = try deployment.primaries()
        #expect(primaries == [RedisNodeDescription(id: RedisNodeID(host: server.host, port: server.port), slots: [0...16383])])
        let onNode = deployment.execute(RedisRequest([.command(["PING"], key: nil)], timeout: .seconds(10)), on: primaries[0].id)
        #expect(try onNode.replies[0].get() == .status("PONG"))
        let elsewhere = deployment.execute(
            RedisRequest([.command(["PING"], key: nil)], timeout: .seconds(10)), on: RedisNodeID(host: "127.0.0.1", port: 1))
        #expect(elsewhere.replies[0].failure?.mayHaveExecuted == false)
    }

    @Test func afterShutdownSubmissionsFailAtOnce() throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        let client = RedisNodeClient(configuration: configuration(for: server))
        #expect(client.execute(RedisRequest([.command(["PING"], key: nil)], timeout: .seconds(10))).replies[0].isSuccess)
        client.shutdown()
        let after = client.execute(RedisRequest([.command(["PING"], key: nil)], timeout: .seconds(10)))
        #expect(after.replies[0].failure?.kind == .connection)
        #expect(after.replies[0].failure?.mayHaveExecuted == false)
    }

    @Test func anEmptyCommandFailsWithoutDisturbingTheOthers() throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        let client = RedisNodeClient(configuration: configuration(for: server))
        defer { client.shutdown() }
        let response = client.execute(RedisRequest([.command([], key: nil), .command(["PING"], key: nil)], timeout: .seconds(10)))
        #expect(response.replies[0].failure?.kind == .protocol)
        #expect(try response.replies[1].get() == .status("PONG"))
    }
}
