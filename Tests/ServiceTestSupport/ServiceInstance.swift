import Foundation
import KafkaClient
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
    /// Whether `start` makes sure the dead-letter topic exists first (the service never creates it).
    private let createsDeadLetterTopic: Bool

    /// An instance that is not running yet; `start()` runs it. `environment` should hold everything but the HTTP
    /// settings, which are added here. With `createsDeadLetterTopic`, `start` first creates the dead-letter topic of
    /// KAFKA_TOPIC_TRANSFERS on KAFKA_BOOTSTRAP_SERVERS if it is missing, as a deployment provisions its topics.
    public init(
        name: String, environment: [String: String], httpPort: Int = FreePort.find(), clientTimeout: Duration = .seconds(10),
        createsDeadLetterTopic: Bool = true
    ) {
        self.name = name
        self.createsDeadLetterTopic = createsDeadLetterTopic
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
        try launch()
        try waitUntilServing(path: "/readyz", timeout: timeout)
    }

    /// Starts a new run and waits only until `/healthz` answers 200 (the process serves HTTP), for runs that are
    /// expected not to be ready.
    public func startWithoutWaitingForReadiness(timeout: Duration = .seconds(60)) throws {
        try launch()
        try waitUntilServing(path: "/healthz", timeout: timeout)
    }

    private func launch() throws {
        if createsDeadLetterTopic, let bootstrapServers = environment["KAFKA_BOOTSTRAP_SERVERS"] {
            let topic = (environment["KAFKA_TOPIC_TRANSFERS"] ?? "money_transfers") + ".dlq"
            var configuration = KafkaProducerConfiguration(bootstrapServers: bootstrapServers)
            configuration.properties["log_level"] = "2"
            let producer = try KafkaProducer(configuration: configuration, onDeliveryReports: { _ in })
            defer { producer.shutdown(timeout: .seconds(10)) }
            if try producer.partitionCount(of: topic, timeout: .seconds(10)) == nil {
                // A send names the topic in a metadata request, which makes dev-kafka create it.
                try producer.send(topic: topic, key: Array("topic-creation".utf8), value: [])
                guard producer.flush(timeout: .seconds(30)) else { throw HarnessError("could not create \(topic)") }
            }
        }
        let run = runs.withLock { $0.count }
        let process = try ChildProcess(
            executable: Products.path("transfer-service"), environment: environment, name: "\(name)-run\(run + 1)"
        )
        runs.withLock { $0.append(process) }
    }

    private func waitUntilServing(path: String, timeout: Duration) throws {
        guard let process else { throw HarnessError("\(name) never ran") }
        let deadline = ContinuousClock.now + timeout
        let probe = HTTPTestClient(port: httpPort, timeout: .seconds(2))
        while ContinuousClock.now < deadline {
            if let response = try? probe.get(path), response.status == 200 {
                return
            }
            guard process.isRunning else { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw HarnessError("\(name) did not start serving (\(path) never answered 200):\n\(process.recentOutput())")
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

    /// Waits up to `timeout` for a log line matching `condition` (lines are written in batches, every 50 ms).
    public func waitForLogLine(timeout: Duration = .seconds(10), where condition: (String) -> Bool) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            if logLines().contains(where: condition) { return true }
            if ContinuousClock.now >= deadline { return false }
            Thread.sleep(forTimeInterval: 0.1)
        }
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
