import ExactJSON
import Foundation
import ServiceTestSupport
import TestSupport
import Testing
import Transfers

@Suite struct ObservabilityTests {
    @Test func metricsExposeRequestsTransfersAndTheOutbox() throws {
        let harness = ServiceHarness.shared
        let created = try harness.http.postJSON("/transfers", #"{"sender_id":"metrics-a","receiver_id":"metrics-b","amount":3}"#)
        #expect(created.status == 202)
        guard case .object(let body) = try JSONValue.parse(created.body), case .string(let id)? = body["transfer_id"] else {
            throw HarnessError("no id")
        }
        _ = try harness.waitForStoredTransfer(id) { $0.status == .completed }
        Thread.sleep(forTimeInterval: 1.5)  // the outbox sweeper reports its depth once a second

        let response = try harness.http.get("/metrics")
        #expect(response.status == 200)
        #expect(response.headers["content-type"]?.hasPrefix("text/plain") == true)
        let text = response.bodyText
        for expected in [
            #"http_requests_total{route="/transfers",method="POST",status="202"}"#,
            "http_request_duration_seconds_bucket{",
            "transfers_created_total ", "transfers_completed_total ", "transfer_outbox_resent_total ",
            #"consumer_events_processed_total{outcome="completed"}"#, "consumer_event_processing_duration_seconds_bucket{",
        ] {
            #expect(text.contains(expected), "missing \(expected)")
        }
    }

    @Test func jsonLogsAreOneObjectPerLineWithTheTransferIDAndNoSecrets() throws {
        let redis = try RedisServer.start()
        defer { redis.stop() }
        let service = ServiceInstance(name: "transfer-service-json-logs", environment: [
            "LOG_FORMAT": "json", "API_TOKENS": "very-secret-token", "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(redis.port),
            "KAFKA_BOOTSTRAP_SERVERS": DevKafka.shared.bootstrapServers, "KAFKA_GROUP_ID": "json-log-\(UUID().uuidString)",
        ])
        try service.start()
        let http = service.http
        let secretBody = #"{"sender_id":"log-sender-secret","receiver_id":"log-receiver","amount":9}"#
        let created = try http.postJSON("/transfers", secretBody, headers: [("Authorization", "Bearer very-secret-token")])
        #expect(created.status == 202)
        guard case .object(let body) = try JSONValue.parse(created.body), case .string(let id)? = body["transfer_id"] else {
            throw HarnessError("no id")
        }
        service.terminate()

        let lines = service.logLines()
        #expect(!lines.isEmpty)
        var sawInitiated = false
        for line in lines {
            guard case .object(let entry) = try JSONValue.parse(String(line)) else {
                Issue.record("not a JSON object: \(line)")
                continue
            }
            for member in ["timestamp", "level", "message", "label"] {
                #expect(entry[member] != nil, "\(member) missing in \(line)")
            }
            if entry["message"] == .string("transfer initiated") {
                sawInitiated = true
                #expect(entry["transfer_id"] == .string(id))
            }
            #expect(!line.contains("very-secret-token"))
            #expect(!line.contains("log-sender-secret"))
        }
        #expect(sawInitiated)
    }
}
