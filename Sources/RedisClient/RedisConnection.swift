import CHiredis

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One connection; not thread-safe: use it from one thread at a time (the pool guarantees that).
public final class RedisConnection {
    private let context: UnsafeMutablePointer<redisContext>
    private var arguments = ArgumentBuffer()
    private let configuration: RedisConfiguration

    /// Set after an io/timeout/protocol failure; hiredis cannot recover such a context, so every later command fails fast.
    public private(set) var isBroken = false
    /// The socket timeout in force for writes and reads: `commandTimeout`, unless `limitTimeout(to:)` lowered it.
    private var socketTimeout: Duration
    /// Why the connection broke, if it did.
    public private(set) var breakingError: RedisError?

    /// Connects with the connect timeout, sets the command timeout, then sends AUTH and SELECT when configured.
    public init(configuration: RedisConfiguration) throws(RedisError) {
        _ = sigpipeIsIgnored
        self.configuration = configuration
        socketTimeout = configuration.commandTimeout
        self.context = try Self.connect(configuration)
        // From here on deinit frees the context if a setup command throws.
        if let password = configuration.password {
            try setUp(["AUTH"] + (configuration.username.map { [$0] } ?? []) + [password], what: "AUTH")
        }
        if configuration.database != 0 {
            try setUp(["SELECT", String(configuration.database)], what: "SELECT \(configuration.database)")
        }
    }

    deinit {
        redisFree(context)
    }

    /// Sends one command; an error reply is thrown as RedisError(kind: .server), or `.authentication` for `NOAUTH`.
    public func command(_ arguments: [String]) throws(RedisError) -> RedisReply {
        let reply = try send(arguments)
        if case .error(let message) = reply {
            if RedisError.isAuthenticationFailure(message) {
                throw RedisError(kind: .authentication, message: message, isConnectionBroken: false)
            }
            throw RedisError(kind: .server, message: message)
        }
        return reply
    }

    /// Sends many commands in one round trip (redisAppendCommandArgv + redisGetReply); error replies come back as .error, not thrown.
    public func pipeline(_ commands: [[String]]) throws(RedisError) -> [RedisReply] {
        try checkUsable()
        for command in commands where command.isEmpty {
            throw Self.emptyCommandError
        }
        for command in commands {
            let status = arguments.withArgv(command) { argc, argv, argvlen in
                redisAppendCommandArgv(context, argc, argv, argvlen)
            }
            if status != REDIS_OK {
                // Only fails when out of memory; the output buffer is then in an unknown state.
                throw markBroken()
            }
        }
        var replies: [RedisReply] = []
        replies.reserveCapacity(commands.count)
        for _ in commands {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
                throw markBroken()
            }
            defer { freeReplyObject(raw) }
            replies.append(try convertOrBreak(raw))
        }
        return replies
    }

    // MARK: Pipelining primitives for RedisNodeClient, which owns one connection per thread.

    /// Adds an already encoded command (RESP) to the output buffer; nothing is written yet.
    func append(encoded command: [UInt8]) throws(RedisError) {
        try checkUsable()
        let status = command.withUnsafeBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { redisAppendFormattedCommand(context, $0.baseAddress, $0.count) }
        }
        if status != REDIS_OK {
            // Only fails when out of memory; the output buffer is then in an unknown state.
            throw markBroken()
        }
    }

    /// Writes the output buffer to the socket. When the very first write fails nothing reached the server, and
    /// the error says so (`mayHaveExecuted` false).
    func flush() throws(RedisError) {
        try checkUsable()
        var done: Int32 = 0
        var isFirstWrite = true
        while done == 0 {
            if redisBufferWrite(context, &done) != REDIS_OK {
                var error = markBroken()
                error.mayHaveExecuted = !isFirstWrite
                throw error
            }
            isFirstWrite = false
        }
    }

    /// Makes the next writes and reads wait at most `limit`, and never longer than `commandTimeout`: a request
    /// whose budget is nearly spent (a read-back after a lost reply) does not wait a whole command timeout more.
    /// A system call only when the timeout changes; without a command timeout, nothing changes.
    func limitTimeout(to limit: Duration) {
        let configured = configuration.commandTimeout
        guard configured > .zero else { return }
        // Zero would turn the timeout off; a spent budget still gets a token wait.
        let wanted = max(min(limit, configured), .milliseconds(1))
        guard wanted != socketTimeout, !isBroken else { return }
        if redisSetTimeout(context, timeval(wanted)) == REDIS_OK { socketTimeout = wanted }
    }

    /// Reads the next reply of what was flushed, error replies included.
    func readReply() throws(RedisError) -> RedisReply {
        try checkUsable()
        var raw: UnsafeMutableRawPointer?
        guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
            throw markBroken()
        }
        defer { freeReplyObject(raw) }
        return try convertOrBreak(raw)
    }

    /// True when the server has closed the connection (or sent something unasked), so a command written now
    /// would be lost: a non-blocking peek, one system call, for a connection that sat idle.
    func peerHasClosed() -> Bool {
        guard !isBroken else { return true }
        var byte: UInt8 = 0
        let count = recv(context.pointee.fd, &byte, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT))
        if count < 0, errno == EAGAIN || errno == EWOULDBLOCK { return false }
        // 0: orderly close; > 0: bytes nobody asked for, so the reply stream is out of step; < 0: reset.
        isBroken = true
        breakingError = RedisError(kind: .io, message: count == 0 ? "server closed the connection" : "connection out of step or reset")
        return true
    }

    /// Sends one command and returns whatever the server answered, error replies included.
    private func send(_ command: [String]) throws(RedisError) -> RedisReply {
        try checkUsable()
        guard !command.isEmpty else { throw Self.emptyCommandError }
        let raw = arguments.withArgv(command) { argc, argv, argvlen in
            redisCommandArgv(context, argc, argv, argvlen)
        }
        guard let raw else { throw markBroken() }
        defer { freeReplyObject(raw) }
        return try convertOrBreak(raw)
    }

    /// Converts a reply; a reply we cannot represent leaves the stream in doubt, so it breaks the connection.
    private func convertOrBreak(_ raw: UnsafeMutableRawPointer) throws(RedisError) -> RedisReply {
        do {
            return try Self.convert(raw.assumingMemoryBound(to: redisReply.self))
        } catch {
            isBroken = true
            breakingError = error
            throw error
        }
    }

    /// Runs a command during setup; any failure, including an error reply, means the connection is unusable.
    private func setUp(_ command: [String], what: String) throws(RedisError) {
        let reply: RedisReply
        do {
            reply = try send(command)
        } catch {
            throw RedisError(kind: error.kind, message: "\(what) failed: \(error.message)")
        }
        if case .error(let message) = reply {
            isBroken = true
            let kind: RedisError.Kind = RedisError.isAuthenticationFailure(message) ? .authentication : .connection
            let error = RedisError(kind: kind, message: "\(what) failed: \(message)")
            breakingError = error
            throw error
        }
    }

    private func checkUsable() throws(RedisError) {
        if isBroken {
            throw RedisError(
                kind: .connection,
                message: "connection is broken (\(breakingError?.message ?? "unknown cause")); open a new one")
        }
    }

    private static let emptyCommandError = RedisError(
        kind: .protocol, message: "a command needs at least one argument", isConnectionBroken: false)

    /// Turns the context's error into a RedisError and marks the connection unusable, as hiredis requires.
    private func markBroken() -> RedisError {
        // Read errno first: anything else we call could overwrite it.
        let lastErrno = errno
        let code = context.pointee.err
        let text = Self.errorString(of: context)
        let error: RedisError
        switch code {
        case REDIS_ERR_IO where lastErrno == EAGAIN || lastErrno == EWOULDBLOCK:
            // hiredis reports an expired SO_RCVTIMEO/SO_SNDTIMEO as a plain I/O error with EAGAIN.
            error = RedisError(kind: .timeout, message: "no reply within \(socketTimeout) (\(text))")
        case REDIS_ERR_IO, REDIS_ERR_EOF:
            error = RedisError(kind: .io, message: text)
        case REDIS_ERR_PROTOCOL:
            error = RedisError(kind: .protocol, message: text)
        default:
            error = RedisError(kind: .io, message: text.isEmpty ? "hiredis error \(code)" : text)
        }
        isBroken = true
        breakingError = error
        return error
    }

    private static func errorString(of context: UnsafePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { buffer in
            let text = buffer.prefix { $0 != 0 }
            return String(decoding: text, as: UTF8.self)
        }
    }

    /// Opens the hiredis context and applies the command timeout; frees it again on failure.
    private static func connect(_ configuration: RedisConfiguration) throws(RedisError) -> UnsafeMutablePointer<redisContext> {
        let endpoint = "\(configuration.host):\(configuration.port)"
        guard let port = Int32(exactly: configuration.port) else {
            throw RedisError(kind: .connection, message: "invalid port \(configuration.port)")
        }
        let maybeContext = configuration.host.withCString { host in
            if configuration.connectTimeout > .zero {
                redisConnectWithTimeout(host, port, timeval(configuration.connectTimeout))
            } else {
                redisConnect(host, port)
            }
        }
        guard let context = maybeContext else {
            throw RedisError(kind: .connection, message: "cannot connect to \(endpoint): out of memory")
        }
        if context.pointee.err != 0 {
            let text = errorString(of: context)
            redisFree(context)
            throw RedisError(kind: .connection, message: "cannot connect to \(endpoint): \(text)")
        }
        // A zero timeval turns the socket timeouts off, which is what `.zero` means here.
        if redisSetTimeout(context, timeval(configuration.commandTimeout)) != REDIS_OK {
            let text = errorString(of: context)
            redisFree(context)
            throw RedisError(kind: .connection, message: "cannot set the command timeout on \(endpoint): \(text)")
        }
        return context
    }

    /// Copies a hiredis reply tree into Swift values.
    private static func convert(_ reply: UnsafePointer<redisReply>) throws(RedisError) -> RedisReply {
        let node = reply.pointee
        switch node.type {
        case REDIS_REPLY_STRING:
            return .string(Array(UnsafeRawBufferPointer(start: node.str, count: node.len)))
        case REDIS_REPLY_STATUS:
            return .status(String(decoding: UnsafeRawBufferPointer(start: node.str, count: node.len), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(String(decoding: UnsafeRawBufferPointer(start: node.str, count: node.len), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            return .integer(Int64(node.integer))
        case REDIS_REPLY_NIL:
            return .null
        case REDIS_REPLY_ARRAY:
            var elements: [RedisReply] = []
            elements.reserveCapacity(node.elements)
            for index in 0..<node.elements {
                guard let element = node.element[index] else {
                    throw RedisError(kind: .protocol, message: "array reply has a missing element")
                }
                elements.append(try convert(element))
            }
            return .array(elements)
        default:
            throw RedisError(kind: .protocol, message: "unknown reply type \(node.type)")
        }
    }
}

extension timeval {
    /// Converts a duration to a timeval, truncating to microseconds.
    fileprivate init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self.init(tv_sec: .init(seconds), tv_usec: .init(attoseconds / 1_000_000_000_000))
    }
}
