import Foundation
import ServiceTestSupport
import Testing
import Transfers

/// The issue's promise, counted from Redis, the topics and every instance's log after a scenario:
/// every 202'd transfer ends `completed` with version 2, exactly once; no record goes past version 2; the outbox
/// drains; nothing is dead-lettered.
struct PromiseCheck {
    /// Transfers answered 202.
    var accepted = 0
    /// Accepted transfers whose record is completed with version 2.
    var completed = 0
    /// Accepted transfers missing from Redis, or not completed with version 2, when the wait ended.
    var lost: [String] = []
    /// Records (accepted or not) with a version above 2.
    var pastVersion2: [String] = []
    /// Transfers whose event was applied more than once, by the instances' logs.
    var doubleApplied: [String] = []
    /// "transfer completed" log lines of all instances (a sanity figure: the double-apply count reads them).
    var completionLogLines = 0
    /// Accepted transfers a consumer recreated from their event: their record had vanished from Redis.
    var recreated: [String] = []
    /// Records in Redis whose POST was not answered 202 (the answer was lost to a crash or outage mid-request).
    var unansweredButStored = 0
    /// Of those, the ones not completed with version 2.
    var unansweredNotCompleted: [String] = []
    /// Outbox entries left.
    var outboxLeft = 0
    /// Events on the transfers topic, and how many transfers had more than one (resent after a fault).
    var events = 0
    var transfersWithDuplicateEvents = 0
    /// Messages on the dead-letter topic.
    var deadLetters = 0
    /// Seconds from the end of the load until every accepted transfer was completed and the outbox empty.
    var secondsToDrain = 0.0

    /// Waits (bounded) for the accepted transfers to complete and the outbox to drain, then counts everything.
    static func run(
        deployment: ServiceDeployment, acceptedIDs: [String], readTopics: Bool = true, timeout: Duration = .seconds(120)
    ) throws -> PromiseCheck {
        var check = PromiseCheck()
        check.accepted = acceptedIDs.count
        let started = ContinuousClock.now
        let deadline = started + timeout
        while true {
            try deployment.checkKafkaRunning()
            let records = try deployment.storedRecords(of: acceptedIDs)
            let done = acceptedIDs.allSatisfy { records[$0].map(isCompletedVersion2) ?? false }
            if done, try deployment.outboxCount() == 0 { break }
            if ContinuousClock.now >= deadline { break }
            Thread.sleep(forTimeInterval: 0.25)
        }
        let elapsed = started.duration(to: .now)
        check.secondsToDrain = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18

        let records = try deployment.storedRecords()
        let acceptedSet = Set(acceptedIDs)
        for id in acceptedIDs {
            if let record = records[id], isCompletedVersion2(record) {
                check.completed += 1
            } else {
                check.lost.append("\(id): \(records[id] ?? "not in Redis")")
            }
        }
        for (id, record) in records {
            if let transfer = try? Transfer(json: Array(record.utf8)), transfer.version > 2 {
                check.pastVersion2.append("\(id): \(record)")
            }
            if !acceptedSet.contains(id) {
                check.unansweredButStored += 1
                if !isCompletedVersion2(record) { check.unansweredNotCompleted.append("\(id): \(record)") }
            }
        }
        let applied = deployment.appliedLogCounts()
        for id in Set(applied.completed.keys).union(applied.recreated.keys) {
            let count = applied.completed[id, default: 0] + applied.recreated[id, default: 0]
            if count > 1 { check.doubleApplied.append("\(id) applied \(count) times") }
        }
        check.completionLogLines = applied.completed.values.reduce(0, +)
        check.recreated = acceptedIDs.filter { applied.recreated[$0] != nil }
        check.outboxLeft = try deployment.outboxCount()
        if readTopics {
            let contents = try deployment.readTopics(expectedKeys: acceptedSet.subtracting(check.lost.map { String($0.prefix(36)) }))
            check.events = contents.events.count
            check.transfersWithDuplicateEvents = contents.eventCountsByKey.values.filter { $0 > 1 }.count
            check.deadLetters = contents.deadLetters.count
        }
        return check
    }

    static func isCompletedVersion2(_ record: String) -> Bool {
        guard let transfer = try? Transfer(json: Array(record.utf8)) else { return false }
        return transfer.status == .completed && transfer.version == 2
    }

    /// One line of figures.
    var summary: String {
        "accepted \(accepted), completed \(completed), lost \(lost.count), double-applied \(doubleApplied.count) "
            + "(of \(completionLogLines) completion log lines), "
            + "past version 2 \(pastVersion2.count), recreated \(recreated.count), outbox left \(outboxLeft), "
            + "stored without a 202 \(unansweredButStored) (not completed \(unansweredNotCompleted.count)), "
            + "events on the topic \(events) (transfers with resent duplicates \(transfersWithDuplicateEvents)), "
            + "dead letters \(deadLetters); drained \(String(format: "%.1f", secondsToDrain)) s after the load"
    }

    /// Records a test issue for every broken promise.
    func expectKept(sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(accepted > 0, "no transfer was accepted at all", sourceLocation: sourceLocation)
        #expect(lost.isEmpty, "accepted but not completed: \(lost.prefix(5))", sourceLocation: sourceLocation)
        #expect(doubleApplied.isEmpty, "applied twice: \(doubleApplied.prefix(5))", sourceLocation: sourceLocation)
        #expect(pastVersion2.isEmpty, "past version 2: \(pastVersion2.prefix(5))", sourceLocation: sourceLocation)
        #expect(recreated.isEmpty, "records vanished and were recreated: \(recreated.prefix(5))", sourceLocation: sourceLocation)
        #expect(unansweredNotCompleted.isEmpty, "stored, never completed: \(unansweredNotCompleted.prefix(5))", sourceLocation: sourceLocation)
        #expect(outboxLeft == 0, "outbox entries left: \(outboxLeft)", sourceLocation: sourceLocation)
        #expect(deadLetters == 0, "dead-lettered although every event was a valid transfer", sourceLocation: sourceLocation)
    }
}
