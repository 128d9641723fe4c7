import Foundation
import RedisClient
import Transfers

/// The service's Lua scripts, read from the Swift source that defines them (transfer-bench does not link the
/// service, and `TransferScripts` is internal to it), so the ceilings always measure the scripts as they are.
enum ServiceScripts {
    /// The source of `static let <name> = RedisScript("""...""")` in `file`, with the literal's indentation removed.
    static func extract(_ name: String, from file: String) throws -> String {
        let lines = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        guard let start = lines.firstIndex(where: { $0.contains("static let \(name) = RedisScript(\"\"\"") }) else {
            throw BenchError("no script named \(name) in \(file)")
        }
        guard let end = lines[(start + 1)...].firstIndex(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix("\"\"\")") }) else {
            throw BenchError("the script \(name) in \(file) has no closing delimiter")
        }
        // Swift strips the closing delimiter's indentation from every line of a multi-line literal.
        let indentation = lines[end].prefix { $0 == " " }.count
        let body = lines[(start + 1)..<end].map { $0.count >= indentation ? String($0.dropFirst(indentation)) : "" }
        let source = body.joined(separator: "\n")
        // Escapes or interpolation would need Swift's rules; the scripts use neither, and this keeps it that way.
        guard !source.contains("\\") else { throw BenchError("the script \(name) contains a backslash; extend the parser") }
        return source
    }
}

/// `prepare-ceilings`: loads the service's create and compare-and-set scripts into a Redis, fills the records the
/// compare-and-set benchmark works on, and prints shell assignments for redis-benchmark's arguments: the port, the
/// SHA-1s, every key and the records (`__rand_int__` stands where redis-benchmark puts a random 12-digit number).
///
/// On a Redis Cluster it prepares the first primary, and every key carries a hash tag of one of that primary's
/// slots: a script may only touch keys of one slot, and redis-benchmark sends each command to the node it is
/// connected to. The scripts do the same work either way (they see only their keys).
enum CeilingPreparation {
    /// Ids of the compare-and-set records and of created transfers: these prefixes plus the 12-digit number.
    static let completeIDPrefix = "00000000-0000-4000-9000-"
    static let createIDPrefix = "00000000-0000-4000-8000-"

    static func run(_ options: PrepareCeilingsCommand) throws {
        let sourceFile = options.scriptsSource
        let records = options.records
        var port: Int
        // Keys as the service names them (single Redis), or all under one tag of the prepared primary (cluster).
        var name: (_ key: String) -> String = { $0 }
        var transferTag: (_ id: String) -> String = { "{transfer:\($0)}" }
        if let nodes = options.redisClusterNodes {
            let redis = try RedisTargetOptions.parse(["--redis-cluster-nodes", nodes]).deployment()
            defer { redis.shutdown() }
            guard let primary = try redis.primaries().sorted(by: { $0.id.port < $1.id.port }).first, let slot = primary.slots.first else {
                throw BenchError("the cluster has no primary with slots")
            }
            port = primary.id.port
            let tag = "{\(RedisSlot.hashTag(of: slot.lowerBound))}"
            name = { tag + $0 }
            transferTag = { _ in tag }
        } else {
            guard let redisPort = options.redisPort else { throw BenchError("give --redis-port or --redis-cluster-nodes", isUsage: true) }
            port = redisPort
        }
        let connection = try RedisConnection(configuration: RedisConfiguration(host: "127.0.0.1", port: port))
        let create = RedisScript(try ServiceScripts.extract("create", from: sourceFile))
        let complete = RedisScript(try ServiceScripts.extract("compareAndSet", from: sourceFile))
        try create.load(on: connection)
        try complete.load(on: connection)

        // A typical record; the compare-and-set writes it back as completed but keeps version 1, so every call
        // takes the full path (GET, decode, compare, SET), like a first delivery in the service.
        let sample = Transfer(
            id: TransferID(completeIDPrefix + "000000000000")!, senderID: "account-00017",
            receiverID: "account-00342", amount: Amount(minorUnits: 1_234_56), status: .initiated, version: 1,
            createdAt: benchTimestamp, updatedAt: benchTimestamp
        )
        let stored = sample.json
        var completedKeepingVersion = sample.completed(at: benchTimestamp)
        completedKeepingVersion.version = 1
        var batch: [[String]] = []
        for index in 0..<records {
            let suffix = String(format: "%012d", index)
            batch.append(["SET", name("transfer:" + completeIDPrefix + suffix), stored.replacingOccurrences(of: "000000000000\"", with: suffix + "\"")])
            if batch.count == 1_000 || index == records - 1 {
                for reply in try connection.pipeline(batch) where reply.errorMessage != nil { throw BenchError("SET: \(reply)") }
                batch.removeAll(keepingCapacity: true)
            }
        }
        let createID = createIDPrefix + "__rand_int__"
        let completeID = completeIDPrefix + "__rand_int__"
        let createRecord = stored.replacingOccurrences(of: completeIDPrefix + "000000000000", with: createID)
        let completeRecord = completedKeepingVersion.json.replacingOccurrences(of: "000000000000\"", with: "__rand_int__\"")
        let assignments = [
            ("CEILING_PORT", String(port)),
            ("CREATE_SHA", create.sha1), ("COMPLETE_SHA", complete.sha1),
            ("CREATE_KEY", name("transfer:" + createID)), ("CREATE_HISTORY", transferTag(createID) + ":history"),
            ("CREATE_IDEMPOTENCY", transferTag(createID) + ":idempotency"),
            ("OUTBOX_KEY", name("bench:outbox")), ("PENDING_KEY", name("bench:pending")),
            ("COMPLETE_KEY", name("transfer:" + completeID)), ("COMPLETE_HISTORY", transferTag(completeID) + ":history"),
            ("COMPLETE_IDEMPOTENCY", transferTag(completeID) + ":idempotency"),
            ("CREATE_RECORD", createRecord), ("CREATE_ID", createID), ("COMPLETE_ID", completeID), ("COMPLETE_RECORD", completeRecord),
        ]
        for (variable, value) in assignments {
            print("\(variable)='\(value)'")
        }
    }
}

/// `print-scripts`: the service's scripts as extracted, for inspection.
enum PrintScripts {
    static func run(_ options: PrintScriptsCommand) throws {
        let sourceFile = options.scriptsSource
        for name in ["create", "compareAndSet"] {
            let script = RedisScript(try ServiceScripts.extract(name, from: sourceFile))
            print("-- \(name) (sha1 \(script.sha1))\n\(script.source)\n")
        }
    }
}

/// A fixed RFC 3339 time for the records transfer-bench writes (the same length as the service's own).
let benchTimestamp = "2026-01-01T00:00:00.000Z"
