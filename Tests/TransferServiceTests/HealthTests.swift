import ServiceTestSupport
import TestSupport
import Testing

@Suite struct HealthTests {
    let harness = ServiceHarness.shared

    @Test func livenessAndReadinessAnswer200WhenRedisAndKafkaAreUp() throws {
        let live = try harness.http.get("/healthz")
        #expect(live.status == 200)
        #expect(live.headers["content-type"] == "application/json")
        let ready = try harness.http.get("/readyz")
        #expect(ready.status == 200, "\(ready.bodyText)")
    }

    @Test func healthcheckCommandExitsZeroOnlyWhenTheServiceAnswers() throws {
        let good = try ChildProcess(
            executable: Products.path("transfer-service"), arguments: ["healthcheck", "--http-port", String(harness.http.port)],
            name: "healthcheck-good"
        )
        #expect(good.waitForExit(timeout: .seconds(10)) == 0)
        let bad = try ChildProcess(
            executable: Products.path("transfer-service"), arguments: ["healthcheck", "--http-port", String(FreePort.find())],
            name: "healthcheck-bad"
        )
        #expect(bad.waitForExit(timeout: .seconds(10)) == 1)
    }
}
