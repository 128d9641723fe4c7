/// Server settings.
public struct HTTPServerConfiguration: Sendable {
    /// The address to listen on (numeric or a name to resolve); "0.0.0.0" for every IPv4 interface.
    public var host: String
    /// The TCP port; 0 picks any free port (read it back from `HTTPServer.port`).
    public var port: Int
    /// Worker threads in libmicrohttpd's internal pool, each with its own epoll set.
    public var threadCount: Int = 8
    /// Larger bodies are rejected with `.bodyTooLarge` without reading them all.
    public var maxBodySize: Int = 1 << 20
    /// Rejects a body sent without Content-Length (chunked) with `.lengthRequired`, before reading any of it.
    /// libmicrohttpd 0.9.75 cannot answer in the middle of an upload, so this is the only way for every
    /// oversized body to get its rejection response instead of a closed connection.
    public var requiresContentLength = false
    /// A body of unknown length (chunked) that passes `maxBodySize` cannot be answered mid-upload with
    /// libmicrohttpd 0.9.75; up to this many further bytes are read and dropped so that a body ending soon
    /// still gets the rejection response. Past it the connection is closed without a response.
    public var oversizedBodyDrainLimit: Int = 64 * 1024
    /// Idle connections are closed after this (rounded up to whole seconds).
    public var connectionTimeout: Duration = .seconds(30)
    /// The most connections served at once; further connections are closed on accept.
    public var connectionLimit: Int = 1024
    /// The listen(2) backlog.
    public var listenBacklog: Int = 1024
    /// How long `stop()` waits for in-flight requests, including those waiting for their reply, before closing
    /// their connections anyway (a reply sent after that is ignored).
    public var drainTimeout: Duration = .seconds(10)

    /// Creates a configuration with defaults for everything but the address.
    public init(host: String = "0.0.0.0", port: Int = 8080) {
        self.host = host
        self.port = port
    }
}

/// Why the server could not start.
public struct HTTPServerError: Error, Sendable, CustomStringConvertible {
    /// What failed, including the address and the system error where there is one.
    public var message: String

    /// Creates an error with a readable message.
    public init(message: String) {
        self.message = message
    }

    /// The message.
    public var description: String { message }
}
