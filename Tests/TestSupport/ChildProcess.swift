import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a child process helper gave up.
public struct ChildProcessError: Error, CustomStringConvertible {
    /// What went wrong, with the child's recent output when it helps.
    public let description: String

    /// Creates an error with the given explanation.
    public init(_ description: String) {
        self.description = description
    }
}

/// A child process for tests: stdout and stderr go to files (never a pipe that could fill up and block the child), and it is killed when the test process exits (register an atexit hook that SIGKILLs every live child).
///
/// Spawned with posix_spawn rather than Foundation.Process so the child starts with an empty signal mask and
/// default signal handlers: test-runner threads block SIGTERM, and a child inheriting that would ignore `stop()`.
// @unchecked Sendable is safe: stored properties are immutable except the exit status and the stdin socket, which
// are behind Mutexes.
public final class ChildProcess: @unchecked Sendable {
    /// The child's process id.
    public let pid: Int32
    /// File receiving the child's stdout.
    public let stdoutPath: String
    /// File receiving the child's stderr.
    public let stderrPath: String
    /// The name given at start, used in file names and messages.
    public let name: String
    /// Exit status once reaped (exit code, or 128+signal); reaping happens under this lock so it happens once.
    private let exitStatus = Mutex<Int32?>(nil)
    /// Our end of the child's stdin (a socket, so writes never raise SIGPIPE), or -1 when stdin is /dev/null or closed.
    /// The lock also keeps one `sendLine` exchange from interleaving with another.
    private let stdinSocket: Mutex<Int32>

    /// Starts `executable` (a path, or a name looked up on PATH); a nil `environment` inherits ours, a non-nil one is merged over ours.
    /// With `stdinPipe` the child's stdin is connected to us (`writeToStdin`, `sendLine`), otherwise it is /dev/null.
    public init(
        executable: String, arguments: [String] = [], environment: [String: String]? = nil, name: String,
        stdinPipe: Bool = false
    ) throws {
        let directory = try ChildProcessRegistry.makeDirectory(for: name)
        self.name = name
        stdoutPath = directory + "/stdout.log"
        stderrPath = directory + "/stderr.log"

        var mergedEnvironment = ProcessInfo.processInfo.environment
        if let environment {
            mergedEnvironment.merge(environment) { _, override in override }
        }
        var sockets: [Int32] = [-1, -1]
        if stdinPipe {
            // CLOEXEC so children spawned meanwhile by other threads do not inherit either end.
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &sockets) == 0 else {
                throw ChildProcessError("socketpair for \(name)'s stdin: \(String(cString: strerror(errno)))")
            }
            // The child only reads; shutting down our read side makes a stray write from it fail instead of pile up.
            shutdown(sockets[1], Int32(SHUT_RD))
        }
        do {
            pid = try Self.spawn(
                executable: executable,
                arguments: [executable] + arguments,
                environment: mergedEnvironment.map { "\($0.key)=\($0.value)" },
                stdinDescriptor: stdinPipe ? sockets[0] : nil,
                stdoutPath: stdoutPath,
                stderrPath: stderrPath)
        } catch {
            if stdinPipe { close(sockets[0]); close(sockets[1]) }
            throw error
        }
        if stdinPipe { close(sockets[0]) }
        stdinSocket = Mutex(sockets[1])
        ChildProcessRegistry.remember(pid)
    }

    deinit {
        // Reap a child that already exited so it does not linger as a zombie; a live one is left to stop()/atexit.
        _ = poll()
        closeStdin()
    }

    // MARK: stdin and stdout lines

    /// Writes `text` to the child's stdin; throws if the child was started without `stdinPipe`, or stdin is closed.
    public func writeToStdin(_ text: String) throws {
        try stdinSocket.withLock { socket in try Self.write(text, to: socket, name: name) }
    }

    /// Closes the child's stdin (it reads EOF). Safe to call more than once.
    public func closeStdin() {
        stdinSocket.withLock { socket in
            if socket >= 0 { close(socket) }
            socket = -1
        }
    }

    /// The complete lines the child has written to stdout so far.
    public func stdoutLines() -> [String] {
        let output = (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? ""
        return output.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    /// Sends one command line on stdin and returns the next line the child writes to stdout, for children that
    /// answer each stdin line with one stdout line. Exchanges from several threads are serialized.
    public func sendLine(_ line: String, replyTimeout: Duration = .seconds(10)) throws -> String {
        try stdinSocket.withLock { socket in
            let linesBefore = stdoutLines().count
            do {
                try Self.write(line + "\n", to: socket, name: name)
            } catch where !isRunning {
                // A child that died (librdkafka's mock cluster can abort on an internal assertion) says so, with
                // the lines that say why, rather than as a broken pipe.
                throw ChildProcessError("\(name) is no longer running, so it cannot take \"\(line)\" (\(error))\n\(causeOfExit())")
            }
            let deadline = ContinuousClock.now + replyTimeout
            while true {
                let lines = stdoutLines()
                if lines.count > linesBefore { return lines[linesBefore] }
                if !isRunning {
                    throw ChildProcessError("\(name) exited before answering \"\(line)\"\n\(recentOutput())")
                }
                if ContinuousClock.now >= deadline {
                    throw ChildProcessError("\(name) did not answer \"\(line)\" within \(replyTimeout)\n\(recentOutput())")
                }
                Thread.sleep(forTimeInterval: 0.005)
            }
        }
    }

    private static func write(_ text: String, to socket: Int32, name: String) throws {
        guard socket >= 0 else { throw ChildProcessError("\(name) has no open stdin pipe") }
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { send(socket, $0.baseAddress! + written, $0.count - written, Int32(MSG_NOSIGNAL)) }
            if count < 0 {
                if errno == EINTR { continue }
                throw ChildProcessError("writing to \(name)'s stdin: \(String(cString: strerror(errno)))")
            }
            written += count
        }
    }

    // MARK: lifetime

    /// Waits for the first complete line the child writes to stdout.
    public func firstStdoutLine(timeout: Duration) throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            let output = (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? ""
            if let newline = output.firstIndex(of: "\n") {
                return String(output[..<newline])
            }
            if !isRunning {
                throw ChildProcessError("\(name) exited before writing a line to stdout\n\(recentOutput())")
            }
            if ContinuousClock.now >= deadline {
                throw ChildProcessError("\(name) wrote no stdout line within \(timeout)\n\(recentOutput())")
            }
            Thread.sleep(forTimeInterval: 0.01)
        }
    }

    /// Sends `signal` to the child, unless it has already been reaped (its pid could belong to someone else by then).
    public func signal(_ signal: Int32) {
        exitStatus.withLock { status in
            if status == nil { _ = kill(pid, signal) }
        }
    }

    /// Waits for exit; returns the exit status (or 128+signal), nil on timeout.
    public func waitForExit(timeout: Duration) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let status = poll() { return status }
            if ContinuousClock.now >= deadline { return nil }
            Thread.sleep(forTimeInterval: 0.005)
        }
    }

    /// True until the child has exited.
    public var isRunning: Bool {
        poll() == nil
    }

    /// SIGTERM, then SIGKILL after timeout; returns once the child is gone.
    public func stop(timeout: Duration = .seconds(10)) {
        guard isRunning else { return }
        signal(SIGTERM)
        if waitForExit(timeout: timeout) == nil {
            signal(SIGKILL)
            _ = waitForExit(timeout: .seconds(30))
        }
    }

    /// Tail of stdout+stderr, for failure messages.
    public func recentOutput(lines: Int = 50) -> String {
        func tail(_ path: String) -> String {
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? "<unreadable>"
            return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
        }
        return "--- \(name) stdout (\(stdoutPath)) ---\n\(tail(stdoutPath))\n--- \(name) stderr (\(stderrPath)) ---\n\(tail(stderrPath))"
    }

    /// The stderr lines that name an assertion, abort or crash, or the last lines of output when there are none.
    private func causeOfExit() -> String {
        let errors = ((try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "").split(separator: "\n")
        let telling = errors.filter { $0.contains("Assertion") || $0.contains("crashed") || $0.contains("abort") }
        guard !telling.isEmpty else { return recentOutput(lines: 20) }
        return "--- \(name) stderr (\(stderrPath)) ---\n" + telling.prefix(10).joined(separator: "\n")
    }

    /// Reaps the child without blocking; returns its exit status once it has exited.
    private func poll() -> Int32? {
        exitStatus.withLock { status in
            if let status { return status }
            var raw: Int32 = 0
            guard waitpid(pid, &raw, WNOHANG) == pid else { return nil }
            ChildProcessRegistry.forget(pid)
            // WIFSIGNALED / WTERMSIG / WEXITSTATUS are macros Swift cannot import.
            let signal = raw & 0x7F
            let reaped = signal == 0 ? (raw >> 8) & 0xFF : 128 + signal
            status = reaped
            return reaped
        }
    }

    /// posix_spawn with stdin from `stdinDescriptor` (or /dev/null), stdout/stderr to files, a clean signal state
    /// and no inherited fds.
    private static func spawn(
        executable: String, arguments: [String], environment: [String], stdinDescriptor: Int32?, stdoutPath: String,
        stderrPath: String
    ) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let stdinDescriptor {
            // dup2 clears CLOEXEC on the copy, so only descriptor 0 survives into the child.
            posix_spawn_file_actions_adddup2(&actions, stdinDescriptor, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        // Sockets the test process holds (hiredis does not set CLOEXEC) must not stay open in the child.
        closeInheritedDescriptors(&actions)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result =
            executable.contains("/")
            ? posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
            : posix_spawnp(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw ChildProcessError("cannot start \(executable): \(String(cString: strerror(result)))")
        }
        return pid
    }

    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    /// glibc 2.34+ has posix_spawn_file_actions_addclosefrom_np, but Swift's Glibc module does not import it.
    private static let addCloseFrom: AddCloseFrom? = {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: AddCloseFrom.self)
    }()

    /// Makes the child close every descriptor above stderr.
    private static func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
        if let addCloseFrom {
            _ = addCloseFrom(&actions, 3)
            return
        }
        // Older glibc: close what is open right now (glibc ignores EBADF for descriptors closed meanwhile).
        let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        for fd in open.compactMap({ Int32($0) }) where fd > 2 {
            posix_spawn_file_actions_addclose(&actions, fd)
        }
    }
}

/// Process-wide bookkeeping: live children to kill at exit, and a temp directory per test process.
enum ChildProcessRegistry {
    private static let livePIDs = Mutex<Set<Int32>>([])
    private static let nextIndex = Atomic<Int>(0)

    /// Created on first use; also installs the atexit hook exactly once.
    static let rootDirectory: String = {
        atexit {
            ChildProcessRegistry.killAll()
        }
        let path = NSTemporaryDirectory() + "test-children-\(getpid())"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()

    /// A fresh, uniquely named directory under the per-process temp directory.
    static func makeDirectory(for name: String) throws -> String {
        let index = nextIndex.add(1, ordering: .relaxed).newValue
        let safeName = String(name.map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "_" })
        let path = "\(rootDirectory)/\(index)-\(safeName)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func remember(_ pid: Int32) {
        livePIDs.withLock { _ = $0.insert(pid) }
    }

    static func forget(_ pid: Int32) {
        livePIDs.withLock { _ = $0.remove(pid) }
    }

    /// SIGKILLs every child still alive; skips rather than deadlocks if another thread holds the lock at exit.
    static func killAll() {
        _ = livePIDs.withLockIfAvailable { pids in
            for pid in pids { kill(pid, SIGKILL) }
        }
    }
}
