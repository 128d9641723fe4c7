import Foundation
import Synchronization
import TestSupport
import Transfers

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One transfer-service instance on a fixed HTTP port, which tests can stop, kill and start again; every run's
/// output is kept, so log lines of runs that were killed still count.
public final class ServiceInstance: Sendable {
    /// Used in process names and printed figures.
    public let name: String
    /// The HTTP port every run of this instance listens on.
    public let httpPort: Int
    /// A client for this instance's port.
    public let http: HTTPTestClient
    /// The environment each run gets (merged over the test process's own).
    public let environment: [String: String]
    /// Every run so far, the current (or last) one last.
    private let runs = Mutex<[ChildProcess]>([])

    /// An instance that is not running yet; `start()` runs it. `environment` should hold everything but the HTTP
    /// settings, which are added here.
    public init(name: String, environment: [String: String], httpPort: Int = FreePort.find(), clientTimeout: Duration = .seconds(10)) {
        self.name = name
        self.httpPort = httpPort
        http = HTTPTestClient(port: httpPort, timeout: clientTimeout)
        var environment = environment
        environment["HTTP_HOST"] = "127.0.0.1"
        environment["HTTP_PORT"] = String(httpPort)
        self.environment = environment
    }

    /// The current (or last) run.
    public var process: ChildProcess? {
        runs.withLock { $0.last }
    }

    /// True while the current run is alive.
    public var isRunning: Bool {
        process?.isRunning ?? false
    }

    /// Starts a new run and waits until it is ready: `/readyz` answers 200 (Redis and a Kafka broker answer). The
    /// readiness endpoint needs no token, so this works with `API_TOKENS` set too.
    public func start(timeout: Duration = .seconds(60)) throws {
        let run = runs.withLock { $0.count }
        let process = try ChildProcess(
            executable: Products.path("transfer-service"), environment: environment, name: "\(name)-run\(run + 1)"
        )
        runs.withLock { $0.append(process) }
        let deadline = ContinuousClock.now + timeout
        let probe = HTTPTestClient(port: httpPort, timeout: .seconds(2))
        while ContinuousClock.now < deadline {
            if let response = try? probe.get("/readyz"), response.status == 200 {
                return
            }
            guard process.isRunning else { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw HarnessError("\(name) did not start serving:\n\(process.recentOutput())")
    }

    /// SIGKILL (a crash at an arbitrary moment), and waits until the process is gone.
    public func kill() {
        guard let process else { return }
        process.signal(SIGKILL)
        _ = process.waitForExit(timeout: .seconds(30))
    }

    /// SIGTERM, then waits up to `timeout` for a graceful exit. Returns the exit status, or nil when the process
    /// was still running after `timeout` (it is then SIGKILLed, so the instance is down either way).
    @discardableResult
    public func terminate(timeout: Duration = .seconds(10)) -> Int32? {
        guard let process else { return nil }
        process.signal(SIGTERM)
        let status = process.waitForExit(timeout: timeout)
        if status == nil {
            process.signal(SIGKILL)
            _ = process.waitForExit(timeout: .seconds(30))
        }
        return status
    }

    /// Stdout lines (the service's log) of every run, in order.
    public func logLines() -> [String] {
        runs.withLock { $0 }.flatMap { $0.stdoutLines() }
    }

    /// The tail of the current run's output, for failure messages.
    public func recentOutput() -> String {
        process?.recentOutput() ?? "\(name) never ran"
    }
}
