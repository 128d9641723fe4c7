import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A real redis-server on a free loopback port, with its data in a fresh temp directory.
// @unchecked Sendable is safe: all stored properties are immutable and ChildProcess is Sendable.
public final class RedisServer: @unchecked Sendable {
    /// Always "127.0.0.1".
    public let host = "127.0.0.1"
    /// The port the server listens on.
    public let port: Int
    /// The server's working directory (RDB/AOF files live here).
    public let directory: String
    /// The running redis-server process.
    public let process: ChildProcess

    private init(port: Int, directory: String, process: ChildProcess) {
        self.port = port
        self.directory = directory
        self.process = process
    }

    deinit {
        if process.isRunning { process.signal(SIGKILL) }
    }

    /// Starts redis-server and waits until it answers PING (over a raw socket, so this has no RedisClient dependency).
    ///
    /// Pass `port` and `directory` of a stopped server to restart it with its data; `extraArguments` are appended
    /// to the command line (e.g. `["--requirepass", "secret"]`).
    public static func start(
        appendOnly: Bool = false, port: Int? = nil, directory: String? = nil, extraArguments: [String] = []
    ) throws -> RedisServer {
        let executable = try findExecutable()
        let directory = try directory ?? ChildProcessRegistry.makeDirectory(for: "redis-data")
        // A port picked for us can be grabbed by someone else before redis binds it, so try a few.
        let attempts = port == nil ? 3 : 1
        var lastError: Error?
        for _ in 0..<attempts {
            let chosenPort = port ?? FreePort.find()
            var arguments = [
                "--port", String(chosenPort), "--bind", "127.0.0.1", "--dir", directory, "--save", "",
                "--appendonly", appendOnly ? "yes" : "no", "--daemonize", "no",
            ]
            if appendOnly { arguments += ["--appendfsync", "everysec"] }
            arguments += extraArguments
            let process = try ChildProcess(executable: executable, arguments: arguments, name: "redis-\(chosenPort)")
            do {
                try waitUntilReady(process: process, port: chosenPort, timeout: .seconds(20))
                return RedisServer(port: chosenPort, directory: directory, process: process)
            } catch {
                process.stop(timeout: .seconds(2))
                lastError = error
            }
        }
        throw lastError ?? ChildProcessError("redis-server did not start")
    }

    /// SIGTERM and wait (so the AOF is flushed and the port released).
    public func stop() {
        process.stop()
    }

    /// SIGKILL and wait until the process is gone, simulating a crash.
    public func kill() {
        process.signal(SIGKILL)
        _ = process.waitForExit(timeout: .seconds(30))
    }

    private static func findExecutable() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let candidates = path.split(separator: ":").map { "\($0)/redis-server" } + ["/usr/bin/redis-server"]
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw ChildProcessError("redis-server not found on PATH or at /usr/bin/redis-server")
        }
        return found
    }

    /// Polls with PING until the server answers PONG (or NOAUTH, which also means it is serving).
    private static func waitUntilReady(process: ChildProcess, port: Int, timeout: Duration) throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let answer = ping(port: port), answer.hasPrefix("+PONG") || answer.hasPrefix("-NOAUTH") {
                return
            }
            if !process.isRunning {
                throw ChildProcessError("redis-server exited during startup\n\(process.recentOutput())")
            }
            if ContinuousClock.now >= deadline {
                throw ChildProcessError("redis-server did not answer PING within \(timeout)\n\(process.recentOutput())")
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    /// Sends PING on a fresh socket and returns the first reply line, or nil if that failed.
    private static func ping(port: Int) -> String? {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var readTimeout = timeval(tv_sec: 1, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &readTimeout, socklen_t(MemoryLayout<timeval>.size))
        var address = FreePort.loopbackAddress(port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return nil }
        let request = Array("PING\r\n".utf8)
        guard send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else { return nil }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 256)
        while !received.contains(UInt8(ascii: "\n")) {
            let count = recv(fd, &chunk, chunk.count, 0)
            guard count > 0 else { return nil }
            received += chunk[..<count]
        }
        return String(decoding: received, as: UTF8.self)
    }
}
