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
/// compare-and-set benchmark works on, and prints shell assignments for redis-benchmark's arguments.
enum CeilingPreparation {
    /// Keys of the compare-and-set records: this prefix plus redis-benchmark's 12-digit `__rand_int__`.
    static let completeKeyPrefix = "transfer:00000000-0000-4000-9000-"
    static let createKeyPrefix = "transfer:00000000-0000-4000-8000-"

    static func run(_ options: PrepareCeilingsCommand) throws {
        let sourceFile = options.scriptsSource
        let records = options.records
        let connection = try RedisConnection(configuration: RedisConfiguration(host: "127.0.0.1", port: options.redisPort))
        let create = RedisScript(try ServiceScripts.extract("create", from: sourceFile))
        let complete = RedisScript(try ServiceScripts.extract("compareAndSet", from: sourceFile))
        try create.load(on: connection)
        try complete.load(on: connection)

        // A typical record; the compare-and-set writes it back as completed but keeps version 1, so every call
        // takes the full path (GET, decode, compare, SET), like a first delivery in the service.
        let sample = Transfer(
            id: TransferID(completeKeyPrefix.dropFirst("transfer:".count) + "000000000000")!, senderID: "account-00017",
            receiverID: "account-00342", amount: Amount(minorUnits: 1_234_56), status: .initiated, version: 1,
            createdAt: benchTimestamp, updatedAt: benchTimestamp
        )
        let stored = sample.json
        var completedKeepingVersion = sample.completed(at: benchTimestamp)
        completedKeepingVersion.version = 1
        var batch: [[String]] = []
        for index in 0..<records {
            let suffix = String(format: "%012d", index)
            batch.append(["SET", completeKeyPrefix + suffix, stored.replacingOccurrences(of: "000000000000\"", with: suffix + "\"")])
            if batch.count == 1_000 || index == records - 1 {
                for reply in try connection.pipeline(batch) where reply.errorMessage != nil { throw BenchError("SET: \(reply)") }
                batch.removeAll(keepingCapacity: true)
            }
        }
        // The create script's record: redis-benchmark puts a random 12-digit number where __rand_int__ stands.
        let createRecord = stored.replacingOccurrences(
            of: completeKeyPrefix.dropFirst("transfer:".count) + "000000000000", with: createKeyPrefix.dropFirst("transfer:".count) + "__rand_int__"
        )
        let completeRecord = completedKeepingVersion.json.replacingOccurrences(of: "000000000000\"", with: "__rand_int__\"")
        print("CREATE_SHA=\(create.sha1)")
        print("COMPLETE_SHA=\(complete.sha1)")
        print("CREATE_KEY='\(createKeyPrefix)__rand_int__'")
        print("COMPLETE_KEY='\(completeKeyPrefix)__rand_int__'")
        print("CREATE_RECORD='\(createRecord)'")
        print("CREATE_ID='\(createKeyPrefix.dropFirst("transfer:".count))__rand_int__'")
        print("COMPLETE_ID='\(completeKeyPrefix.dropFirst("transfer:".count))__rand_int__'")
        print("COMPLETE_RECORD='\(completeRecord)'")
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
