import Foundation
import Synchronization
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// POSTs new transfers from a few threads at a paced rate until stopped (or a cap on attempts), spreading them over
/// the given instances, and records what came back.
final class LoadGenerator: Sendable {
    /// What one run of load produced.
    struct Report: Sendable {
        /// Ids of transfers answered 202, in the order the answers arrived.
        var acceptedIDs: [String] = []
        /// Answers by status code.
        var statusCounts: [Int: Int] = [:]
        /// Connections refused (no instance listening on that port at that moment).
        var refused = 0
        /// Connections that broke before a complete answer (e.g. the instance was killed mid-request).
        var broken = 0
        /// Requests with no answer within the client's timeout: a hang.
        var timedOut = 0
        /// 503s that were not application/problem+json or had no Retry-After.
        var malformedUnavailable = 0
        /// 202s whose body was not a fresh transfer (status initiated, version 1).
        var malformedAccepted = 0
        /// The slowest answer, of any status.
        var slowest: Duration = .zero
        /// The slowest 503.
        var slowestUnavailable: Duration = .zero
        /// A few examples of unexpected answers or errors, for failure messages.
        var samples: [String] = []

        var attempts: Int { statusCounts.values.reduce(0, +) + refused + broken + timedOut }
        var accepted: Int { acceptedIDs.count }
        /// Answers other than 202 and 503: none is expected under any fault.
        var unexpectedStatusCount: Int { statusCounts.filter { $0.key != 202 && $0.key != 503 }.values.reduce(0, +) }

        /// One line: attempts, answers by status, connection failures, slowest answers.
        var summary: String {
            let statuses = statusCounts.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
            return "\(attempts) POSTs: [\(statuses)], refused \(refused), broken \(broken), timed out \(timedOut); "
                + "slowest answer \(Self.format(slowest)), slowest 503 \(Self.format(slowestUnavailable))"
        }

        static func format(_ duration: Duration) -> String {
            let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
            return "\(milliseconds) ms"
        }
    }

    private let targets: [HTTPTestClient]
    private let threadCount: Int
    private let interval: Duration
    private let maxAttempts: Int
    private let stopRequested = Atomic<Bool>(false)
    private let attemptsStarted = Atomic<Int>(0)
    private let acceptedSoFar = Atomic<Int>(0)
    private let report = Mutex(Report())
    private let finished = DispatchGroup()

    /// `requestsPerSecond` in total over `threads` threads; each request goes to the next target in turn (a
    /// refused connection moves on to the next target at once).
    init(targets: [HTTPTestClient], threads: Int = 4, requestsPerSecond: Int = 200, maxAttempts: Int = 6_000) {
        self.targets = targets
        threadCount = threads
        interval = .microseconds(1_000_000 * threads / max(1, requestsPerSecond))
        self.maxAttempts = maxAttempts
    }

    /// Starts the threads; returns at once.
    func start() {
        for index in 0..<threadCount {
            finished.enter()
            let thread = Thread { [self] in
                run(thread: index)
                finished.leave()
            }
            thread.start()
        }
    }

    /// Number of 202s so far.
    var accepted: Int { acceptedSoFar.load(ordering: .relaxed) }

    /// Waits until `count` transfers in total have been accepted; throws after `timeout` or when the cap on
    /// attempts ended the load first.
    func waitUntilAccepted(_ count: Int, timeout: Duration = .seconds(60)) throws {
        let deadline = ContinuousClock.now + timeout
        while accepted < count {
            guard ContinuousClock.now < deadline, attemptsStarted.load(ordering: .relaxed) < maxAttempts else {
                throw LoadError("only \(accepted) of \(count) accepted; so far: \(snapshot().summary)")
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    /// The report so far.
    func snapshot() -> Report {
        report.withLock { $0 }
    }

    /// Stops the threads, waits for their last requests, and returns the report.
    func stop() -> Report {
        stopRequested.store(true, ordering: .relaxed)
        finished.wait()
        return snapshot()
    }

    private func run(thread: Int) {
        var targetIndex = thread % targets.count
        var sequence = 0
        let clock = ContinuousClock()
        var nextStart = clock.now
        while !stopRequested.load(ordering: .relaxed) {
            guard attemptsStarted.add(1, ordering: .relaxed).newValue <= maxAttempts else { return }
            sequence += 1
            let body = #"{"sender_id": "load-\#(thread)-\#(sequence)", "receiver_id": "bob", "amount": \#(1 + sequence % 9_999).\#(sequence % 100)}"#
            let target = targets[targetIndex]
            targetIndex = (targetIndex + 1) % targets.count
            let started = clock.now
            let outcome: Result<HTTPTestResponse, any Error> = Result { try target.postJSON("/transfers", body) }
            let elapsed = started.duration(to: clock.now)
            let refused = record(outcome, elapsed: elapsed, port: target.port)
            if refused && targets.count > 1 { continue }  // another instance may be up: try it at once
            nextStart = max(nextStart + interval, clock.now - interval)
            if refused { nextStart = max(nextStart, clock.now + .milliseconds(20)) }
            let pause = clock.now.duration(to: nextStart)
            if pause > .zero { Thread.sleep(forTimeInterval: Double(pause.components.attoseconds) / 1e18) }
        }
    }

    /// Records one outcome; true when the connection was refused.
    private func record(_ outcome: Result<HTTPTestResponse, any Error>, elapsed: Duration, port: Int) -> Bool {
        var acceptedID: String?
        var refused = false
        report.withLock { report in
            switch outcome {
            case .success(let response):
                report.statusCounts[response.status, default: 0] += 1
                report.slowest = max(report.slowest, elapsed)
                switch response.status {
                case 202:
                    if let id = Self.freshTransferID(in: response.bodyText) {
                        acceptedID = id
                        report.acceptedIDs.append(id)
                    } else {
                        report.malformedAccepted += 1
                        report.sample("202 with an unexpected body: \(response.bodyText)")
                    }
                case 503:
                    report.slowestUnavailable = max(report.slowestUnavailable, elapsed)
                    let isProblem = response.headers["content-type"]?.hasPrefix("application/problem+json") ?? false
                    if !isProblem || response.headers["retry-after"] == nil {
                        report.malformedUnavailable += 1
                        report.sample("503 without problem+json or Retry-After: \(response.headers) \(response.bodyText)")
                    }
                default:
                    report.sample("\(response.status) from :\(port): \(response.bodyText)")
                }
            case .failure(let error):
                let message = "\(error)"
                if message.contains("Connection refused") {
                    report.refused += 1
                    refused = true
                } else if message.contains("no response") {
                    report.timedOut += 1
                    report.sample("no answer from :\(port): \(message)")
                } else {
                    report.broken += 1
                }
            }
        }
        if acceptedID != nil { acceptedSoFar.add(1, ordering: .relaxed) }
        return refused
    }

    /// The transfer id of a 202 body, if it is a transfer with status initiated and version 1.
    private static func freshTransferID(in body: String) -> String? {
        guard body.contains(#""status":"initiated""#), body.contains(#""version":1"#),
            let range = body.range(of: #""transfer_id":""#)
        else { return nil }
        let id = body[range.upperBound...].prefix(36)
        return id.count == 36 ? String(id) : nil
    }
}

extension LoadGenerator.Report {
    fileprivate mutating func sample(_ text: String) {
        if samples.count < 5 { samples.append(String(text.prefix(300))) }
    }
}

/// The load could not reach its target.
struct LoadError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
