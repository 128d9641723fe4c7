import Foundation
import ServiceTestSupport
import TestSupport
import Testing
import Transfers

#if canImport(Glibc)
import Glibc
#endif

/// A shutdown that load balancers can follow: with SHUTDOWN_DELAY_MS, SIGTERM first turns `/readyz` to 503 while
/// every other request is still served, then the listener closes and the process exits 0.
@Suite struct ShutdownTests {
    @Test func readinessFailsDuringTheShutdownDelayWhileRequestsAreStillServed() throws {
        let redis = try RedisServer.start()
        defer { redis.stop() }
        let service = ServiceInstance(name: "transfer-service-shutdown-delay", environment: [
            "SHUTDOWN_DELAY_MS": "4000", "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(redis.port),
            "KAFKA_BOOTSTRAP_SERVERS": DevKafka.shared.bootstrapServers, "KAFKA_GROUP_ID": "shutdown-\(UUID().uuidString)",
        ])
        try service.start()
        defer { service.terminate() }
        let http = service.http
        #expect(try http.get("/readyz").status == 200)

        let process = try #require(service.process)
        process.signal(SIGTERM)
        var readiness = try http.get("/readyz")
        let deadline = ContinuousClock.now + .seconds(10)
        while readiness.status == 200 && ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.02)
            readiness = try http.get("/readyz")
        }
        #expect(readiness.status == 503)
        #expect(readiness.headers["content-type"] == "application/problem+json")
        #expect(readiness.bodyText.contains("shutting-down"))

        // Still serving during the delay.
        #expect(try http.get("/healthz").status == 200)
        #expect(try http.get("/transfers/\(TransferID.random())").status == 404)
        let created = try http.postJSON("/transfers", #"{"sender_id":"leaving","receiver_id":"bob","amount":1}"#)
        #expect(created.status == 202)
        #expect(try http.get("/readyz").status == 503)

        // Then the listener closes: connections are refused, and the process exits 0.
        var refusal: String?
        while refusal == nil && ContinuousClock.now < deadline + .seconds(10) {
            do {
                _ = try http.get("/healthz")
                Thread.sleep(forTimeInterval: 0.02)
            } catch {
                refusal = "\(error)"
            }
        }
        #expect(refusal?.contains("refused") == true, "\(refusal ?? "never refused")")
        #expect(process.waitForExit(timeout: .seconds(20)) == 0)
        #expect(service.logLines().contains { $0.contains("shutting down: /readyz answers 503") })
    }
}
