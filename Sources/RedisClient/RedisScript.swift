import Crypto

/// A Lua script run by EVALSHA, loaded again (SCRIPT LOAD) when the server answers NOSCRIPT (e.g. after a restart or SCRIPT FLUSH).
public struct RedisScript: Sendable {
    /// The Lua source.
    public let source: String
    /// Lowercase hex SHA-1 of `source`, the name Redis gives the script.
    public let sha1: String

    /// Creates a script and computes its SHA-1 once.
    public init(_ source: String) {
        self.source = source
        // SHA-1 only names the script, as Redis does; it protects nothing.
        self.sha1 = Insecure.SHA1.hash(data: Array(source.utf8)).map { byte in
            let digits = String(byte, radix: 16)
            return byte < 16 ? "0" + digits : digits
        }.joined()
    }

    /// Runs the script; error replies other than NOSCRIPT are thrown as .server.
    public func run(on connection: RedisConnection, keys: [String], arguments: [String]) throws(RedisError) -> RedisReply {
        let evalSHA = evalSHAArguments(keys: keys, arguments: arguments)
        do {
            return try connection.command(evalSHA)
        } catch where error.serverErrorCode == "NOSCRIPT" {
            try load(on: connection)
            return try connection.command(evalSHA)
        }
    }

    /// Runs the script once per call in a single round trip (a pipeline). Replies come back in order; error replies
    /// stay in the list as `.error`, except NOSCRIPT: then the script is loaded and just those calls run again.
    public func runPipelined(
        on connection: RedisConnection, calls: [(keys: [String], arguments: [String])]
    ) throws(RedisError) -> [RedisReply] {
        var replies = try connection.pipeline(calls.map { evalSHAArguments(keys: $0.keys, arguments: $0.arguments) })
        let missing = replies.indices.filter { replies[$0].errorMessage?.hasPrefix("NOSCRIPT") == true }
        guard !missing.isEmpty else { return replies }
        try load(on: connection)
        let retried = try connection.pipeline(missing.map { evalSHAArguments(keys: calls[$0].keys, arguments: calls[$0].arguments) })
        for (index, reply) in zip(missing, retried) {
            replies[index] = reply
        }
        return replies
    }

    /// The EVALSHA argument list, for use inside a pipeline (caller handles NOSCRIPT by loading and retrying).
    public func evalSHAArguments(keys: [String], arguments: [String]) -> [String] {
        var command: [String] = []
        command.reserveCapacity(3 + keys.count + arguments.count)
        command.append("EVALSHA")
        command.append(sha1)
        command.append(String(keys.count))
        command.append(contentsOf: keys)
        command.append(contentsOf: arguments)
        return command
    }

    /// Loads the script into the server's script cache.
    public func load(on connection: RedisConnection) throws(RedisError) {
        let reply = try connection.command(["SCRIPT", "LOAD", source])
        // Redis names the script by its own SHA-1; a mismatch would make every EVALSHA miss.
        guard reply.string == sha1 else {
            throw RedisError(
                kind: .protocol,
                message: "SCRIPT LOAD answered \(reply), expected the SHA-1 \(sha1)",
                isConnectionBroken: false)
        }
    }
}
