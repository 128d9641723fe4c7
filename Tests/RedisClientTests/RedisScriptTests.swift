import RedisClient
import Testing
import TestSupport

@Suite("RedisScript")
struct RedisScriptTests {
    @Test(arguments: [
        ("", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
        ("abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "84983e441c3bd26ebaae4aa1f95129e5e54670f1"),
        ("The quick brown fox jumps over the lazy dog", "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"),
        // 55 and 56 bytes straddle the point where padding needs a second block.
        (String(repeating: "a", count: 55), "c1c8bbdc22796e28c0e15163d20899b65621d65a"),
        (String(repeating: "a", count: 56), "c2db330f6083854c99d4b5bfb6e8f29f201be699"),
        (String(repeating: "a", count: 64), "0098ba824b5c16427bd7a1122a5a442a25ec644d"),
        ("return 'żółć'", "272b59a62a9eef6e133217071935e3f747330e1e"),
    ])
    func sha1MatchesKnownVectors(source: String, expected: String) {
        #expect(RedisScript(source).sha1 == expected)
    }

    @Test func sha1OfAMillionBytesMatchesTheKnownVector() {
        #expect(RedisScript(String(repeating: "a", count: 1_000_000)).sha1 == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
    }

    @Test func sha1EqualsTheServersSCRIPTLOADAnswer() throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        let connection = try RedisConnection(configuration: configuration(for: server))
        for source in ["return 1", "return redis.call('GET', KEYS[1]) -- żółć", "local total = 0\n" + String(repeating: "total = total + 1\n", count: 100) + "return total"] {
            let answer = try connection.command(["SCRIPT", "LOAD", source])
            #expect(answer.string == RedisScript(source).sha1)
        }
    }

    @Test func runLoadsTheScriptAgainAfterSCRIPTFLUSH() throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        let connection = try RedisConnection(configuration: configuration(for: server))
        let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        let key = uniqueKey()

        // Never loaded: the first run hits NOSCRIPT and recovers.
        #expect(try script.run(on: connection, keys: [key], arguments: ["5"]) == .integer(5))
        #expect(try script.run(on: connection, keys: [key], arguments: ["2"]) == .integer(7))
        _ = try connection.command(["SCRIPT", "FLUSH"])
        #expect(try connection.command(["SCRIPT", "EXISTS", script.sha1]) == .array([.integer(0)]))
        #expect(try script.run(on: connection, keys: [key], arguments: ["3"]) == .integer(10))
        #expect(try connection.command(["SCRIPT", "EXISTS", script.sha1]) == .array([.integer(1)]))
    }

    @Test func scriptErrorsAreThrownAsServerErrors() throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        let connection = try RedisConnection(configuration: configuration(for: server))
        let failing = RedisScript("return redis.error_reply('CUSTOM something went wrong')")
        let error = #expect(throws: RedisError.self) { try failing.run(on: connection, keys: [], arguments: []) }
        #expect(error?.kind == .server)
        #expect(error?.serverErrorCode == "CUSTOM")
        #expect(!connection.isBroken)
    }

    @Test func evalSHAArgumentsWorkInAPipeline() throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        let connection = try RedisConnection(configuration: configuration(for: server))
        let script = RedisScript("return {KEYS[1], ARGV[1], ARGV[2]}")
        let arguments = script.evalSHAArguments(keys: ["k"], arguments: ["a", "b"])
        #expect(arguments == ["EVALSHA", script.sha1, "1", "k", "a", "b"])

        let beforeLoad = try connection.pipeline([arguments])
        #expect(beforeLoad.first?.errorMessage?.hasPrefix("NOSCRIPT") == true)
        try script.load(on: connection)
        let afterLoad = try connection.pipeline([arguments, arguments])
        let expected = RedisReply.array([.string([107]), .string([97]), .string([98])])
        #expect(afterLoad == [expected, expected])
    }
}
