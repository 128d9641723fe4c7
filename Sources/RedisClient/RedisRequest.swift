/// A command for a Redis deployment: plain arguments, or a script run by EVALSHA (loaded on NOSCRIPT, per node).
///
/// The command is encoded in the Redis protocol when it is made, on the submitting thread, so the connection
/// thread that sends it only copies bytes.
public struct RedisCommand: Sendable {
    /// The command in the Redis protocol (RESP), ready for the socket; empty for a command without arguments.
    let encoded: [UInt8]
    /// The key that picks the cluster node (its slot); nil: any node.
    let key: String?
    /// The script an EVALSHA runs, so a node that answers NOSCRIPT can be given it.
    let script: RedisScript?
    /// Sent right after `ASKING` (a cluster redirection during a slot migration).
    var isAsking = false

    private init(encoded: [UInt8], key: String?, script: RedisScript?) {
        self.encoded = encoded
        self.key = key
        self.script = script
    }

    /// A command from its arguments (`["SET", "k", "v"]`); `key` picks the cluster node (its slot), nil: keyless
    /// (any node). In a cluster, every key the command touches must hash to the slot of `key`.
    public static func command(_ arguments: [String], key: String?) -> RedisCommand {
        RedisCommand(encoded: RESPEncoder.encode(arguments), key: key, script: nil)
    }

    /// `EVALSHA` of `script` with `keys` and `arguments`, routed by `keys[0]` (keyless when `keys` is empty).
    /// Each connection sends `SCRIPT LOAD` ahead of a script's first use in its pipeline; when a server still
    /// answers NOSCRIPT (after `SCRIPT FLUSH`), the script is loaded and the command sent again.
    public static func script(_ script: RedisScript, keys: [String], arguments: [String]) -> RedisCommand {
        RedisCommand(
            encoded: RESPEncoder.encode(script.evalSHAArguments(keys: keys, arguments: arguments)),
            key: keys.first, script: script)
    }
}

/// Commands submitted together, with the request's budget and durability demand.
///
/// The commands of one request that go to one node are written back to back in one pipeline, in order. In a
/// cluster, commands for different nodes run independently of each other. A command sent again (after `MOVED`,
/// `ASK`, `TRYAGAIN`, `CLUSTERDOWN` or `NOSCRIPT`, none of which ran it) runs after the request's other commands on
/// that node: commands that depend on each other's effects belong in one script.
public struct RedisRequest: Sendable {
    /// The commands, run in this order on each node.
    public var commands: [RedisCommand]
    /// Anything still queued (not yet written to a socket) after this instant fails with `.deadlineExceeded`.
    public var deadline: ContinuousClock.Instant
    /// 0: no durability demand; n: after the writes, `WAIT n` on each node written to, bounded by the deadline.
    public var replicas: Int

    /// A request that must be done by `deadline`.
    public init(_ commands: [RedisCommand], deadline: ContinuousClock.Instant, replicas: Int = 0) {
        self.commands = commands
        self.deadline = deadline
        self.replicas = max(0, replicas)
    }

    /// A request that must be done within `timeout` from now.
    public init(_ commands: [RedisCommand], timeout: Duration, replicas: Int = 0) {
        self.init(commands, deadline: .now + timeout, replicas: replicas)
    }
}

/// The outcome of a request, one result per command in order.
public struct RedisResponse: Sendable {
    /// One result per command, in the request's order. A server error reply is `.success(.error(...))`; a
    /// transport failure, an expired deadline or a refused authentication is `.failure` (see
    /// `RedisError.mayHaveExecuted`).
    public var replies: [Result<RedisReply, RedisError>]
    /// The fewest replicas that confirmed the writes (`WAIT`), over the nodes written to; 0 when a `WAIT` got no
    /// answer; nil when the request asked for none.
    public var acknowledgedReplicas: Int?
    /// Per command, the replicas that confirmed the writes of the node it ran on (a cluster request spans nodes,
    /// each with its own `WAIT`); nil when the request asked for none.
    public var acknowledgedReplicasByCommand: [Int]?

    /// A response of one node: every command has the same acknowledgement.
    public init(replies: [Result<RedisReply, RedisError>], acknowledgedReplicas: Int?) {
        self.replies = replies
        self.acknowledgedReplicas = acknowledgedReplicas
        acknowledgedReplicasByCommand = acknowledgedReplicas.map { Array(repeating: $0, count: replies.count) }
    }

    /// A response whose commands ran on several nodes, each with its own acknowledgement.
    public init(replies: [Result<RedisReply, RedisError>], acknowledgedReplicas: Int?, acknowledgedReplicasByCommand: [Int]?) {
        self.replies = replies
        self.acknowledgedReplicas = acknowledgedReplicas
        self.acknowledgedReplicasByCommand = acknowledgedReplicasByCommand
    }

    /// The replicas that confirmed the write of the command at `index` (the `WAIT` of the node it ran on); 0 when
    /// that `WAIT` got no answer; nil when the request asked for none.
    public func acknowledgedReplicas(forCommandAt index: Int) -> Int? {
        acknowledgedReplicasByCommand.map { $0[index] }
    }

    /// A response in which every command failed with `error`.
    init(failing count: Int, with error: RedisError, replicas: Int) {
        self.init(replies: Array(repeating: .failure(error), count: count), acknowledgedReplicas: replicas > 0 ? 0 : nil)
    }
}

/// Writes commands in the Redis serialization protocol: `*<count>\r\n` then `$<length>\r\n<bytes>\r\n` per argument.
enum RESPEncoder {
    static func encode(_ arguments: [String]) -> [UInt8] {
        guard !arguments.isEmpty else { return [] }
        var size = 16
        for argument in arguments { size += argument.utf8.count + 16 }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(size)
        appendHeader(UInt8(ascii: "*"), arguments.count, to: &bytes)
        for argument in arguments {
            appendHeader(UInt8(ascii: "$"), argument.utf8.count, to: &bytes)
            bytes.append(contentsOf: argument.utf8)
            bytes.append(13)
            bytes.append(10)
        }
        return bytes
    }

    private static func appendHeader(_ marker: UInt8, _ value: Int, to bytes: inout [UInt8]) {
        bytes.append(marker)
        appendDecimal(value, to: &bytes)
        bytes.append(13)
        bytes.append(10)
    }

    private static func appendDecimal(_ value: Int, to bytes: inout [UInt8]) {
        if value < 10 {
            bytes.append(UInt8(ascii: "0") + UInt8(value))
        } else {
            // Lengths fit a small (inline) string, so this does not allocate.
            bytes.append(contentsOf: String(value).utf8)
        }
    }
}
