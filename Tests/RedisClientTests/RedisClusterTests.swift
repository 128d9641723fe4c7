import Foundation
@testable import RedisClient
import Synchronization
import Testing
import TestSupport

/// Each test forms its own 3 + 3 node cluster; they run one at a time to spare the shared machine.
@Suite("RedisCluster", .serialized)
struct RedisClusterTests {
    @Test func routesEachKeyToThePrimaryServingItsSlot() throws {
        let (servers, cluster) = try startCluster()
        defer { stop(servers, cluster) }
        let keys = (0..<300).map { "routed:\($0)" }

        let writes = cluster.execute(RedisRequest(keys.map { .command(["SET", $0, "v-\($0)"], key: $0) }, timeout: .seconds(30)))
        #expect(try writes.replies.map { try $0.get() } == Array(repeating: .status("OK"), count: keys.count))

        // Every primary holds exactly the keys of its slots: it answers them without a redirection (a plain
        // connection would get MOVED), and the counts add up.
        var total = 0
        let primaries = try cluster.primaries()
        #expect(Set(primaries.map(\.id.port)) == Set(try servers.primaryPorts()))
        for primary in primaries {
            let direct = try RedisConnection(configuration: RedisConfiguration(host: servers.host, port: primary.id.port))
            let count = Int(try direct.command(["DBSIZE"]).integer ?? -1)
            #expect(count > 0)
            total += count
            for key in keys where primary.slots.contains(where: { $0.contains(RedisSlot.of(key: key)) }) {
                #expect(try direct.command(["GET", key]).string == "v-\(key)")
            }
        }
        #expect(total == keys.count)
    }

    @Test func aRequestOverSeveralNodesIsReassembledInOrder() throws {
        let (servers, cluster) = try startCluster()
        defer { stop(servers, cluster) }
        let primaries = try cluster.primaries()
        #expect(primaries.count == 3)
        // One key on each primary, interleaved with keyless commands.
        let keys = primaries.map { "ordered:{\(RedisSlot.hashTag(of: $0.slots[0].lowerBound))}" }
        var commands: [RedisCommand] = []
        var expected: [RedisReply] = []
        for round in 0..<3 {
            for key in keys {
                commands.append(.command(["RPUSH", key, "\(round)"], key: key))
                expected.append(.integer(Int64(round + 1)))
            }
            commands.append(.command(["ECHO", "round \(round)"], key: nil))
            expected.append(.string(Array("round \(round)".utf8)))
        }
        let response = cluster.execute(RedisRequest(commands, timeout: .seconds(30)))
        #expect(try response.replies.map { try $0.get() } == expected)
    }

    @Test func primariesListEveryPrimaryWithItsSlotsAndReplica() throws {
        let (servers, cluster) = try startCluster()
        defer { stop(servers, cluster) }
        let primaries = try cluster.primaries()

        #expect(Set(primaries.map(\.id.port)) == Set(try servers.primaryPorts()))
        var covered: [Int] = []
        for primary in primaries {
            for range in primary.slots {
                covered.append(contentsOf: range)
                #expect(try servers.primaryPort(servingSlot: range.lowerBound) == primary.id.port)
                #expect(try servers.primaryPort(servingSlot: range.upperBound) == primary.id.port)
            }
            #expect(primary.replicas.map(\.port) == [try servers.replicaPort(of: primary.id.port)])
        }
        #expect(covered.sorted() == Array(RedisSlot.all))

        // Keyless commands on a chosen primary.
        for primary in primaries {
            let response = cluster.execute(RedisRequest([.command(["CLUSTER", "MYID"], key: nil)], timeout: .seconds(10)), on: primary.id)
            #expect(try response.replies[0].get().string == (try servers.node(primary.id.port).id))
        }
        // CLUSTER SLOTS (what servers before Redis 7 offer) describes the same primaries.
        let direct = try RedisConnection(configuration: RedisConfiguration(host: servers.host, port: servers.ports[1]))
        let describe = { (shards: [ClusterShard]) in
            shards.filter { !$0.slots.isEmpty }.map { "\($0.primary!) \($0.slots) \($0.replicas)" }.sorted()
        }
        // CLUSTER SLOTS leaves out replicas still loading their first sync, so wait until it has them all.
        try waitFor("CLUSTER SLOTS to agree with CLUSTER SHARDS") {
            let fromShards = try ClusterShard.parse(shards: direct.command(["CLUSTER", "SHARDS"]), askedHost: servers.host)
            let fromSlots = try ClusterShard.parse(slots: direct.command(["CLUSTER", "SLOTS"]), askedHost: servers.host)
            return describe(fromShards) == describe(fromSlots) && fromSlots.allSatisfy { $0.replicas.count == 1 }
        }

        let replica = primaries[0].replicas[0]
        let notPrimary = cluster.execute(RedisRequest([.command(["PING"], key: nil)], timeout: .seconds(10)), on: replica)
        #expect(notPrimary.replies[0].failure?.kind == .clusterDown)
    }

    @Test func concurrentSubmittersOnEveryNodeGetTheirOwnReplies() throws {
        let (servers, cluster) = try startCluster()
        defer { stop(servers, cluster) }
        let mismatches = Mutex<[String]>([])
        let counters = (0..<6).map { "counter:{\(RedisSlot.hashTag(of: $0 * 2731))}" }

        onThreads(8) { thread in
            for request in 0..<250 {
                let counter = counters[(thread + request) % counters.count]
                let key = "item:\(thread):\(request)"
                let response = cluster.execute(RedisRequest([
                    .command(["SET", key, key], key: key),
                    .command(["INCR", counter], key: counter),
                    .command(["GET", key], key: key),
                ], timeout: .seconds(30)))
                let replies = response.replies.map { try? $0.get() }
                if replies[0] != .status("OK") || replies[1]?.integer == nil || replies[2]?.string != key {
                    mismatches.withLock { $0.append("\(key): \(replies)") }
                }
            }
        }
        #expect(mismatches.withLock { $0 } == [])
        let totals = cluster.execute(RedisRequest(counters.map { .command(["GET", $0], key: $0) }, timeout: .seconds(10)))
        let sum = totals.replies.compactMap { try? $0.get().string }.compactMap { Int($0) }.reduce(0, +)
        #expect(sum == 8 * 250)
    }

    @Test func waitCountsTheReplicasOfEveryNodeWrittenTo() throws {
        let (servers, cluster) = try startCluster()
        defer { stop(servers, cluster) }
        let primaries = try cluster.primaries()
        let keys = primaries.map { "durable:{\(RedisSlot.hashTag(of: $0.slots[0].lowerBound))}" }

        let everywhere = cluster.execute(RedisRequest(keys.map { .command(["SET", $0, "1"], key: $0) }, timeout: .seconds(30), replicas: 1))
        #expect(everywhere.replies.allSatisfy { $0.isSuccess })
        #expect(everywhere.acknowledgedReplicas == 1)

        // Without its replica, the first primary confirms nothing; the others still do.
        try servers.stopNode(primaries[0].replicas[0].port)
        let first = cluster.execute(RedisRequest([.command(["SET", keys[0], "2"], key: keys[0])], timeout: .milliseconds(500), replicas: 1))
        #expect(try first.replies[0].get() == .status("OK"))
        #expect(first.acknowledgedReplicas == 0)
        let second = cluster.execute(RedisRequest([.command(["SET", keys[1], "2"], key: keys[1])], timeout: .seconds(30), replicas: 1))
        #expect(second.acknowledgedReplicas == 1)
        let both = cluster.execute(RedisRequest(
            [.command(["SET", keys[1], "3"], key: keys[1]), .command(["SET", keys[0], "3"], key: keys[0])],
            timeout: .milliseconds(500), replicas: 1))
        #expect(both.replies.allSatisfy { $0.isSuccess })
        #expect(both.acknowledgedReplicas == 0)
        // Per command, the replicas of the node it ran on: a caller can judge each write by its own node.
        #expect(both.acknowledgedReplicasByCommand == [1, 0])
        #expect(both.acknowledgedReplicas(forCommandAt: 0) == 1)
        #expect(both.acknowledgedReplicas(forCommandAt: 1) == 0)
        let none = cluster.execute(RedisRequest([.command(["SET", keys[0], "4"], key: keys[0])], timeout: .seconds(10)))
        #expect(none.acknowledgedReplicas == nil)
        #expect(none.acknowledgedReplicasByCommand == nil)
    }

    @Test func scriptsAreLoadedOnEachNodeAndAgainAfterSCRIPTFLUSH() throws {
        let (servers, cluster) = try startCluster()
        defer { stop(servers, cluster) }
        let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        let keys = try cluster.primaries().map { "scripted:{\(RedisSlot.hashTag(of: $0.slots[0].upperBound))}" }
        let run = { (amount: Int) in
            cluster.execute(RedisRequest(keys.map { .script(script, keys: [$0], arguments: [String(amount)]) }, timeout: .seconds(30)))
        }

        #expect(try run(5).replies.map { try $0.get() } == [.integer(5), .integer(5), .integer(5)])
        for port in try servers.primaryPorts() {
            #expect(try servers.command(port, ["SCRIPT", "EXISTS", script.sha1]) == "1")
            try servers.command(port, ["SCRIPT", "FLUSH"])
        }
        #expect(try run(2).replies.map { try $0.get() } == [.integer(7), .integer(7), .integer(7)])
        for port in try servers.primaryPorts() {
            #expect(try servers.command(port, ["SCRIPT", "EXISTS", script.sha1]) == "1")
        }
    }

    @Test func followsMOVEDAfterASlotMigration() throws {
        let (servers, cluster) = try startCluster()
        defer { stop(servers, cluster) }
        let key = "migrating:{moved}"
        let slot = RedisSlot.of(key: key)
        #expect(try cluster.execute(RedisRequest([.command(["SET", key, "kept"], key: key)], timeout: .seconds(10))).replies[0].get() == .status("OK"))
        let source = try servers.primaryPort(servingSlot: slot)
        let target = try #require(try servers.primaryPorts().first { $0 != source })
        try servers.moveSlot(slot, to: target)

        // The client still routes the slot to the source, which answers MOVED; the command follows it.
        let read = cluster.execute(RedisRequest([.command(["GET", key], key: key), .command(["APPEND", key, "!"], key: key)], timeout: .seconds(10)))
        #expect(try read.replies.map { try $0.get() } == [.string(Array("kept".utf8)), .integer(5)])
        // The MOVED also refreshed the map, and the replaced map was freed.
        try waitFor("the slot map to show the move") {
            try cluster.primaries().first { $0.slots.contains { $0.contains(slot) } }?.id.port == target
        }
        #expect(cluster.replacedSlotMapCount == 0, "a replaced slot map must be freed once no request routes with it")
    }

    @Test func followsASKDuringASlotMigration() throws {
        let (servers, cluster) = try startCluster()
        defer { stop(servers, cluster) }
        let staying = "asked:{ask}:old"
        let arriving = "asked:{ask}:new"
        let slot = RedisSlot.of(key: staying)
        #expect(try cluster.execute(RedisRequest([.command(["SET", staying, "old"], key: staying)], timeout: .seconds(10))).replies[0].get() == .status("OK"))
        let source = try servers.primaryPort(servingSlot: slot)
        let target = try #require(try servers.primaryPorts().first { $0 != source })

        try servers.beginMigration(slot: slot, to: target)
        // The source still has `staying` and answers it; it has no `arriving`, so it answers ASK and the client
        // writes it on the target after ASKING.
        let during = cluster.execute(RedisRequest([
            .command(["GET", staying], key: staying), .command(["SET", arriving, "new"], key: arriving),
            .command(["GET", arriving], key: arriving),
        ], timeout: .seconds(10)))
        #expect(try during.replies.map { try $0.get() } == [.string(Array("old".utf8)), .status("OK"), .string(Array("new".utf8))])
        #expect(try servers.command(target, ["CLUSTER", "COUNTKEYSINSLOT", String(slot)]) == "1")
        #expect(try servers.command(source, ["CLUSTER", "COUNTKEYSINSLOT", String(slot)]) == "1")
        // A command over both keys finds them split between the nodes: TRYAGAIN until the deadline.
        let split = cluster.execute(RedisRequest([.command(["MGET", staying, arriving], key: staying)], timeout: .milliseconds(300)))
        #expect(split.replies[0].failure?.kind == .clusterDown)
        #expect(split.replies[0].failure?.message.contains("TRYAGAIN") == true)
        #expect(split.replies[0].failure?.mayHaveExecuted == false)
        // ASK changes no routing: the slot still belongs to the source.
        #expect(try cluster.primaries().first { $0.slots.contains { $0.contains(slot) } }?.id.port == source)

        try servers.migrateKeys(slot: slot, from: source, to: target)
        try servers.finishMigration(slot: slot, from: source, to: target)
        let after = cluster.execute(RedisRequest([.command(["MGET", staying, arriving], key: staying)], timeout: .seconds(10)))
        #expect(try after.replies[0].get() == .array([.string(Array("old".utf8)), .string(Array("new".utf8))]))
    }

    @Test func clusterDownIsRetriedWithinTheDeadline() throws {
        let (servers, cluster) = try startCluster()
        defer { stop(servers, cluster) }
        let key = "down:{slot}"
        let slot = RedisSlot.of(key: key)
        let owner = try servers.primaryPort(servingSlot: slot)
        // The owner forgets the slot: it answers CLUSTERDOWN for it until the slot is added back.
        try servers.command(owner, ["CLUSTER", "DELSLOTS", String(slot)])

        let expired = cluster.execute(RedisRequest([.command(["SET", key, "x"], key: key)], timeout: .milliseconds(300)))
        #expect(expired.replies[0].failure?.kind == .clusterDown)
        #expect(expired.replies[0].failure?.mayHaveExecuted == false)

        let waiting = Submissions(count: 1)
        cluster.submit(RedisRequest([.command(["SET", key, "y"], key: key)], timeout: .seconds(60)), completion: waiting.record(0))
        let refusalsBefore = try clusterDownCount(servers, owner)
        try waitFor("the request to be refused at least once more") { try clusterDownCount(servers, owner) > refusalsBefore }
        try servers.command(owner, ["CLUSTER", "ADDSLOTS", String(slot)])
        #expect(try waiting.wait()[0].replies[0].get() == .status("OK"))
        #expect(try servers.command(owner, ["GET", key]) == "y")
    }

    @Test func aKilledPrimaryFailsFastUnsentAndItsPromotedReplicaIsFollowed() throws {
        let (servers, cluster) = try startCluster()
        defer { stop(servers, cluster) }
        let key = "failover:{victim}"
        let victim = try servers.primaryPort(servingSlot: RedisSlot.of(key: key))
        #expect(cluster.execute(RedisRequest([.command(["SET", key, "1"], key: key)], timeout: .seconds(10), replicas: 1)).acknowledgedReplicas == 1)

        let replica = try servers.killPrimary(victim)
        // Not sent: the node is unreachable, which the client learns at once (no waiting out the deadline).
        let down = cluster.execute(RedisRequest([.command(["INCR", key], key: key)], timeout: .seconds(60)))
        let failure = down.replies[0].failure
        #expect(failure?.kind == .connection || failure?.kind == .clusterDown)
        #expect(failure?.mayHaveExecuted == false)

        try servers.waitForPromotion(of: replica)
        try waitFor("the client to follow the promotion") {
            let response = cluster.execute(RedisRequest([.command(["GET", key], key: key)], timeout: .seconds(10)))
            return (try? response.replies[0].get().string) == "1"
        }
        #expect(try cluster.primaries().contains { $0.id.port == replica })
    }

    @Test func aPrimaryKilledUnderLoadLosesNoAcknowledgedWriteAndReportsDoubtCorrectly() throws {
        let (servers, cluster) = try startCluster()
        defer { stop(servers, cluster) }
        let counters = (0..<12).map { "load:{\(RedisSlot.hashTag(of: $0 * 1365 + 7))}" }
        let victim = try servers.primaryPort(servingSlot: RedisSlot.of(key: counters[0]))
        let stop = Atomic<Bool>(false)
        let tally = Mutex(Array(repeating: Tally(), count: counters.count))
        let wrongClassification = Mutex<[String]>([])

        let finished = DispatchSemaphore(value: 0)
        Thread {
            onThreads(6) { thread in
                var request = 0
                while !stop.load(ordering: .relaxed) {
                    let index = (thread * 7 + request) % counters.count
                    request += 1
                    // A short deadline: WAIT on the promoted primary, which has no replica left, waits it out.
                    let response = cluster.execute(RedisRequest(
                        [.command(["INCR", counters[index]], key: counters[index])], timeout: .seconds(1), replicas: 1))
                    tally.withLock { tally in
                        switch response.replies[0] {
                        case .success(.integer):
                            if response.acknowledgedReplicas == 1 { tally[index].acknowledged += 1 } else { tally[index].unacknowledged += 1 }
                        case .success(let other):
                            wrongClassification.withLock { $0.append("unexpected reply \(other)") }
                        case .failure(let error):
                            switch error.kind {
                            case .io, .timeout, .protocol:
                                if !error.mayHaveExecuted { wrongClassification.withLock { $0.append("\(error) not in doubt") } }
                                tally[index].inDoubt += 1
                            case .connection, .deadlineExceeded, .clusterDown:
                                if error.mayHaveExecuted { wrongClassification.withLock { $0.append("\(error) in doubt") } }
                                tally[index].unsent += 1
                            default:
                                wrongClassification.withLock { $0.append("unexpected \(error)") }
                            }
                        }
                    }
                }
            }
            finished.signal()
        }.start()
        try waitFor("some load") { tally.withLock { $0.reduce(0) { $0 + $1.acknowledged } } > 200 }

        let promoted = try servers.killPrimaryAndWaitForFailover(victim)
        let written = { tally.withLock { $0[0].acknowledged + $0[0].unacknowledged } }
        let afterPromotion = written()
        try waitFor("writes to the promoted primary") { written() > afterPromotion + 5 }
        stop.store(true, ordering: .relaxed)
        finished.wait()

        #expect(wrongClassification.withLock { $0 } == [])
        let finals = cluster.execute(RedisRequest(counters.map { .command(["GET", $0], key: $0) }, timeout: .seconds(10)))
        let counts = tally.withLock { $0 }
        for (index, reply) in finals.replies.enumerated() {
            let value = Int((try? reply.get().string).flatMap { $0 } ?? "0") ?? -1
            let tally = counts[index]
            // Every acknowledged increment survived the failover; nothing unsent was executed.
            #expect(value >= tally.acknowledged, "\(counters[index]): \(value) < \(tally)")
            #expect(value <= tally.acknowledged + tally.unacknowledged + tally.inDoubt, "\(counters[index]): \(value) > \(tally)")
        }
        #expect(try cluster.primaries().contains { $0.id.port == promoted })
        print("failover under load: \(counts.reduce(Tally()) { $0 + $1 })")
    }

    @Test func authenticationFailuresHaveTheirOwnKind() throws {
        let servers = try RedisTestCluster.start(extraArguments: ["--requirepass", "pw", "--masterauth", "pw"], password: "pw")
        defer { servers.stop() }

        let wrong = client(for: servers, password: "wrong")
        defer { wrong.shutdown() }
        let refused = wrong.execute(RedisRequest([.command(["SET", "k", "v"], key: "k")], timeout: .seconds(10))).replies[0].failure
        #expect(refused?.kind == .authentication)
        #expect(refused?.mayHaveExecuted == false)
        #expect(throws: RedisError.self) { try wrong.primaries() }

        let right = client(for: servers, password: "pw")
        defer { right.shutdown() }
        let keys = (0..<30).map { "secret:\($0)" }
        let response = right.execute(RedisRequest(keys.map { .command(["SET", $0, "v"], key: $0) }, timeout: .seconds(10)))
        #expect(response.replies.allSatisfy { $0.isSuccess })
    }

    // MARK: helpers

    /// A fresh cluster and a client for it.
    private func startCluster() throws -> (RedisTestCluster, RedisCluster) {
        let servers = try RedisTestCluster.start()
        return (servers, client(for: servers))
    }

    private func stop(_ servers: RedisTestCluster, _ cluster: RedisCluster) {
        cluster.shutdown()
        servers.stop()
    }

    private func client(for servers: RedisTestCluster, password: String? = nil) -> RedisCluster {
        // Only one seed: the client must learn the other nodes from it.
        RedisCluster(
            seeds: [RedisNodeID(host: servers.host, port: servers.ports[0])],
            configuration: RedisConfiguration(password: password, connectTimeout: .seconds(5), commandTimeout: .seconds(10)))
    }

    private func clusterDownCount(_ servers: RedisTestCluster, _ port: Int) throws -> Int {
        let stats = try servers.command(port, ["INFO", "errorstats"])
        guard let line = stats.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("errorstat_CLUSTERDOWN:") }) else { return 0 }
        return Int(line.split(separator: "=").last.map(String.init) ?? "0") ?? 0
    }
}

/// What the load generator saw for one counter.
private struct Tally: Sendable, CustomStringConvertible {
    var acknowledged = 0
    var unacknowledged = 0
    var inDoubt = 0
    var unsent = 0

    static func + (left: Tally, right: Tally) -> Tally {
        Tally(
            acknowledged: left.acknowledged + right.acknowledged, unacknowledged: left.unacknowledged + right.unacknowledged,
            inDoubt: left.inDoubt + right.inDoubt, unsent: left.unsent + right.unsent)
    }

    var description: String {
        "acknowledged \(acknowledged), unacknowledged \(unacknowledged), in doubt \(inDoubt), unsent \(unsent)"
    }
}
