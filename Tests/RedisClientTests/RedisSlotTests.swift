import RedisClient
import Testing
import TestSupport

@Suite("RedisSlot")
struct RedisSlotTests {
    @Test func slotOfKnownKeys() {
        // CRC16/XMODEM's check value: "123456789" -> 0x31C3.
        #expect(RedisSlot.of(key: "123456789") == 0x31C3)
        #expect(RedisSlot.of(key: "foo") == 12182)
        #expect(RedisSlot.of(key: "bar") == 5061)
        #expect(RedisSlot.of(key: "somekey") == 11058)
        #expect(RedisSlot.of(key: "") == 0)
    }

    @Test func hashTagsFollowRedisRules() {
        // The text between the first "{" and the first "}" after it is hashed, when it is not empty.
        #expect(RedisSlot.of(key: "{user1000}.following") == RedisSlot.of(key: "user1000"))
        #expect(RedisSlot.of(key: "{user1000}.followers") == RedisSlot.of(key: "user1000"))
        #expect(RedisSlot.of(key: "foo{bar}{zap}") == RedisSlot.of(key: "bar"))
        #expect(RedisSlot.of(key: "foo{{bar}}zap") == RedisSlot.of(key: "{bar"))
        #expect(RedisSlot.of(key: "a}b{c}") == RedisSlot.of(key: "c"))
        // An empty tag, or no "}" after the first "{": the whole key is hashed.
        #expect(RedisSlot.of(key: "foo{}{bar}") != RedisSlot.of(key: "bar"))
        #expect(RedisSlot.of(key: "foo{}{bar}") == Int(crc16XMODEM(Array("foo{}{bar}".utf8)) % 16384))
        #expect(RedisSlot.of(key: "foo{bar") == Int(crc16XMODEM(Array("foo{bar".utf8)) % 16384))
    }

    /// A bitwise CRC16/XMODEM, independent of the table-driven one under test.
    private func crc16XMODEM(_ bytes: [UInt8]) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc ^= UInt16(byte) << 8
            for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        }
        return crc
    }

    @Test func everySlotHasAHashTagThatLandsInIt() {
        for slot in RedisSlot.all {
            let tag = RedisSlot.hashTag(of: slot)
            #expect(!tag.isEmpty && tag.count <= 6)
            #expect(RedisSlot.of(key: "{\(tag)}") == slot)
            #expect(RedisSlot.of(key: "outbox:{\(tag)}") == slot)
            #expect(RedisSlot.of(key: "{\(tag)}:anything{else}") == slot)
        }
        #expect(Set(RedisSlot.all.map(RedisSlot.hashTag(of:))).count == RedisSlot.count)
    }

    @Test func slotsMatchTheServersCLUSTERKEYSLOT() throws {
        let server = try RedisServer.start(extraArguments: [
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes-\(FreePort.find()).conf",
        ])
        defer { server.stop() }
        let connection = try RedisConnection(configuration: configuration(for: server))
        var keys = ["", "a", "{", "}", "{}", "{}a", "a{}", "{a}", "a{b}c{d}", "{{a}}", "x{}{y}", "żółć", "{żółć}:1", "transfer:{42}"]
        for index in 0..<300 { keys.append("key:\(index * 7919)") }
        for index in 0..<50 { keys.append("pre{\(index)}post{\(index + 1)}") }
        for key in keys {
            let serverSlot = try connection.command(["CLUSTER", "KEYSLOT", key]).integer
            #expect(serverSlot.map(Int.init) == RedisSlot.of(key: key), "key \(key)")
        }
    }
}
