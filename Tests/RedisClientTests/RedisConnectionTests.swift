import RedisClient
import Testing
import TestSupport

@Suite("RedisConnection against a real redis-server")
struct RedisConnectionTests {
    @Test func everyReplyTypeRoundTrips() throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        let connection = try RedisConnection(configuration: configuration(for: server))
        let key = uniqueKey()

        #expect(try connection.command(["SET", key, "hello"]) == .status("OK"))
        #expect(try connection.command(["GET", key]) == .string(Array("hello".utf8)))
        #expect(try connection.command(["GET", key]).string == "hello")
        #expect(try connection.command(["GET", key + ":missing"]) == .null)
        #expect(try connection.command(["INCRBY", key + ":n", "-42"]) == .integer(-42))
        #expect(try connection.command(["RPUSH", key + ":l", "a", "b"]).integer == 2)
        #expect(try connection.command(["LRANGE", key + ":l", "0", "-1"]) == .array([.string([97]), .string([98])]))
        // Nested arrays and mixed element types, built by Lua.
        let nested = try connection.command(["EVAL", "return {1, 'x', {2, false}}", "0"])
        #expect(nested == .array([.integer(1), .string([120]), .array([.integer(2), .null])]))

        let error = #expect(throws: RedisError.self) { try connection.command(["INCR", key]) }
        #expect(error?.kind == .server)
        #expect(error?.serverErrorCode == "ERR")
        #expect(error?.isConnectionBroken == false)
        #expect(!connection.isBroken)
        #expect(try connection.command(["PING"]) == .status("PONG"))
    }

    @Test func valuesAreBinarySafe() throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        let connection = try RedisConnection(configuration: configuration(for: server))
        let key = uniqueKey() + "\0\r\n key with NUL"
        let values = ["", "a\0b\r\n$3\r\n*1\r\n", "żółć € 😀", String(repeating: "x\u{0}", count: 600_000)]
        for value in values {
            #expect(try connection.command(["SET", key, value]) == .status("OK"))
            let reply = try connection.command(["GET", key])
            #expect(reply.bytes == Array(value.utf8))
            #expect(reply.string == value)
            #expect(try connection.command(["STRLEN", key]).integer == Int64(value.utf8.count))
        }
    }

    @Test func pipelineKeepsOrderAndReturnsErrorRepliesInline() throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        let connection = try RedisConnection(configuration: configuration(for: server))
        let key = uniqueKey()
        let replies = try connection.pipeline([
            ["SET", key, "text"],
            ["INCR", key],
            ["GET", key],
            ["INCR", key + ":counter"],
            ["INCR", key + ":counter"],
            ["NOSUCHCOMMAND"],
            ["GET", key + ":missing"],
        ])
        try #require(replies.count == 7)
        #expect(replies[0] == .status("OK"))
        #expect(replies[1].errorMessage?.hasPrefix("ERR") == true)
        #expect(replies[2].string == "text")
        #expect(replies[3] == .integer(1))
        #expect(replies[4] == .integer(2))
        #expect(replies[5].errorMessage?.contains("unknown command") == true)
        #expect(replies[6] == .null)
        #expect(try connection.pipeline([]) == [])
        #expect(!connection.isBroken)
    }

    @Test func longPipelineReturnsEveryReply() throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        let connection = try RedisConnection(configuration: configuration(for: server))
        let key = uniqueKey()
        let replies = try connection.pipeline(Array(repeating: ["INCR", key], count: 5_000))
        #expect(replies == (1...5_000).map { RedisReply.integer(Int64($0)) })
    }

    @Test func emptyCommandIsRejectedWithoutBreakingTheConnection() throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        let connection = try RedisConnection(configuration: configuration(for: server))
        let error = #expect(throws: RedisError.self) { try connection.command([]) }
        #expect(error?.isConnectionBroken == false)
        #expect(throws: RedisError.self) { try connection.pipeline([["PING"], []]) }
        #expect(try connection.command(["PING"]) == .status("PONG"))
    }

    @Test func passwordIsSentWithAUTH() throws {
        let server = try RedisServer.start(extraArguments: ["--requirepass", "s3cret pass"])
        defer { server.stop() }

        let authenticated = try RedisConnection(configuration: configuration(for: server, password: "s3cret pass"))
        #expect(try authenticated.command(["PING"]) == .status("PONG"))

        let anonymous = try RedisConnection(configuration: configuration(for: server))
        let noAuth = #expect(throws: RedisError.self) { try anonymous.command(["PING"]) }
        #expect(noAuth?.kind == .authentication)
        #expect(noAuth?.message.hasPrefix("NOAUTH") == true)
        #expect(noAuth?.mayHaveExecuted == false)

        let wrong = #expect(throws: RedisError.self) {
            try RedisConnection(configuration: configuration(for: server, password: "wrong"))
        }
        #expect(wrong?.kind == .authentication)
        #expect(wrong?.message.contains("AUTH failed") == true)
        #expect(wrong?.mayHaveExecuted == false)
    }

    @Test func databasesAreIsolatedBySELECT() throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        let key = uniqueKey()
        let database0 = try RedisConnection(configuration: configuration(for: server))
        let database3 = try RedisConnection(configuration: configuration(for: server, database: 3))
        _ = try database0.command(["SET", key, "zero"])
        _ = try database3.command(["SET", key, "three"])
        #expect(try database0.command(["GET", key]).string == "zero")
        #expect(try database3.command(["GET", key]).string == "three")

        let outOfRange = #expect(throws: RedisError.self) {
            try RedisConnection(configuration: configuration(for: server, database: 999))
        }
        #expect(outOfRange?.kind == .connection)
    }

    @Test func connectingToAClosedPortFailsWithConnectionKind() throws {
        let closedPort = FreePort.find()
        let error = #expect(throws: RedisError.self) {
            try RedisConnection(configuration: RedisConfiguration(host: "127.0.0.1", port: closedPort))
        }
        #expect(error?.kind == .connection)
        #expect(error?.isConnectionBroken == true)
        #expect(error?.message.contains("\(closedPort)") == true)
    }

    @Test func commandTimeoutThrowsAndBreaksTheConnection() throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        let connection = try RedisConnection(
            configuration: configuration(for: server, commandTimeout: .milliseconds(200)))
        // BLPOP with timeout 0 on an empty list blocks forever on the server side.
        let timeout = #expect(throws: RedisError.self) { try connection.command(["BLPOP", uniqueKey(), "0"]) }
        #expect(timeout?.kind == .timeout)
        #expect(timeout?.isConnectionBroken == true)
        #expect(connection.isBroken)

        // A late reply could now arrive for the wrong command, so the connection refuses further use.
        let afterwards = #expect(throws: RedisError.self) { try connection.command(["PING"]) }
        #expect(afterwards?.kind == .connection)
        #expect(throws: RedisError.self) { try connection.pipeline([["PING"]]) }
    }

    @Test func serverCrashBreaksTheConnectionWithIOError() throws {
        let server = try RedisServer.start()
        let connection = try RedisConnection(configuration: configuration(for: server))
        #expect(try connection.command(["PING"]) == .status("PONG"))
        server.kill()
        // Also proves a write to the dead socket does not kill the test process with SIGPIPE.
        for _ in 0..<3 {
            let error = #expect(throws: RedisError.self) { try connection.command(["PING"]) }
            #expect(error?.isConnectionBroken == true)
        }
        #expect(connection.isBroken)
        #expect(connection.breakingError?.kind == .io)
    }
}
