import Foundation
import ServiceTestSupport
import TestSupport
import Testing
import Transfers

/// The settings a real deployment needs (a properties file for a managed Kafka, secrets mounted as files, topics
/// that may be missing), each against the built binary and real processes.
@Suite struct DeploymentSettingsTests {
    static let body = #"{"sender_id": "alice", "receiver_id": "bob", "amount": 12.5}"#

    /// Runs the service binary without waiting for it to be ready.
    static func startService(_ name: String, environment: [String: String]) throws -> (ChildProcess, HTTPTestClient) {
        let port = FreePort.find()
        let process = try ChildProcess(
            executable: Products.path("transfer-service"),
            environment: environment.merging(["HTTP_HOST": "127.0.0.1", "HTTP_PORT": String(port)]) { $1 }, name: name
        )
        return (process, HTTPTestClient(port: port, timeout: .seconds(5)))
    }

    /// Polls `condition` every 100 ms until it holds; throws with `what` after `limit` (a bound, not a measurement).
    static func waitFor(_ what: String, limit: Duration = .seconds(60), _ condition: () throws -> Bool) throws {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if (try? condition()) == true { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw HarnessError("gave up waiting: \(what)")
    }

    static func text(ofFile path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }

    // MARK: Kafka properties file

    @Test(arguments: [
        ("no.such.property=1", "no.such.property is not a librdkafka property"),
        ("enable.idempotence=false", "enable.idempotence is set by the service"),
        ("security.protocol=SASL_BOGUS", "security.protocol is refused by librdkafka"),
    ])
    func anUnusablePropertiesFileStopsTheBinaryWithOneLine(line: String, reason: String) throws {
        let secret = "pw-\(UUID().uuidString)"
        let path = try temporaryFile("# managed Kafka\nsasl.username=svc\nsasl.password=\(secret)\n\(line)\n", named: "client.properties")
        let process = try ChildProcess(
            executable: Products.path("transfer-service"), environment: ["KAFKA_PROPERTIES_FILE": path], name: "bad-properties"
        )
        #expect(process.waitForExit(timeout: .seconds(30)) == 2)
        let errors = Self.text(ofFile: process.stderrPath)
        let lines = errors.split(separator: "\n")
        #expect(lines.count == 1, "\(errors)")
        #expect(lines.first?.contains("KAFKA_PROPERTIES_FILE \(path) line 4: \(reason)") == true, "\(errors)")
        #expect(!(errors + Self.text(ofFile: process.stdoutPath)).contains(secret))
    }

    /// librdkafka 2.0.2's mock cluster has no SASL (no SaslHandshake or SaslAuthenticate handler), so credentials
    /// cannot be checked against it. What this shows instead: every Kafka client the service makes (admin, outbox
    /// producer, dead-letter producer, consumer) was built with the file's properties, from librdkafka's own debug
    /// log (`debug=security` and `client.id`, from the same file), and readiness fails because no broker speaks SASL.
    @Test func propertiesFromTheFileReachEveryKafkaClient() throws {
        let redis = try RedisServer.start()
        defer { redis.stop() }
        let clientID = "sasl-probe-\(UUID().uuidString.prefix(8))"
        let password = "pw-\(UUID().uuidString)"
        let path = try temporaryFile("""
            security.protocol=SASL_PLAINTEXT
            sasl.mechanism=PLAIN
            sasl.username=transfer-svc
            sasl.password=\(password)
            client.id=\(clientID)
            debug=security

            """, named: "client.properties")
        let (process, http) = try Self.startService("sasl-properties", environment: [
            "KAFKA_PROPERTIES_FILE": path, "KAFKA_BOOTSTRAP_SERVERS": DevKafka.shared.bootstrapServers,
            "KAFKA_GROUP_ID": "sasl-properties", "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(redis.port),
            // The consumer's librdkafka log goes through the service's logger, at librdkafka's own (debug) level.
            "LOG_LEVEL": "debug",
        ])
        defer { process.stop() }

        // librdkafka's log line when a client is created with SASL PLAIN: "<client.id>#producer-2| [thrd:app]:
        // Selected provider PLAIN (builtin) for SASL mechanism PLAIN", on stderr for the producers and the admin
        // client, in the service's own log (stdout) for the consumer.
        func producersUsingPlain() -> Set<String> {
            Set(Self.text(ofFile: process.stderrPath).split(separator: "\n").compactMap { line -> String? in
                guard line.contains("for SASL mechanism PLAIN"), let start = line.range(of: "|\(clientID)#") else { return nil }
                return line[start.upperBound...].split(separator: "|").first.map(String.init)
            })
        }
        func consumerUsesPlain() -> Bool {
            process.stdoutLines().contains { $0.contains("for SASL mechanism PLAIN") && $0.contains("librdkafka=") }
        }
        try Self.waitFor("three producers and a consumer with SASL PLAIN") { producersUsingPlain().count == 3 && consumerUsesPlain() }
        let producers = producersUsingPlain()
        #expect(producers.allSatisfy { $0.hasPrefix("producer-") }, "\(producers)")

        try Self.waitFor("the HTTP server") { (try? http.get("/healthz").status) == 200 }
        let readiness = try http.get("/readyz")
        #expect(readiness.status == 503)
        #expect(readiness.bodyText.contains("Kafka is unavailable"))
        let started = try #require(process.stdoutLines().first { $0.contains("transfer service started") })
        #expect(started.contains("sasl.password=[redacted]"))
        #expect(started.contains("sasl.username=transfer-svc"))
        let metrics = try http.get("/metrics")
        #expect(metrics.status == 200)
        for output in [Self.text(ofFile: process.stdoutPath), Self.text(ofFile: process.stderrPath), metrics.bodyText] {
            #expect(!output.contains(password))
        }
    }

    // MARK: Secrets from files

    @Test func redisPasswordFromAFileAuthenticates() throws {
        let password = "redis-\(UUID().uuidString)"
        let redis = try RedisServer.start(extraArguments: ["--requirepass", password])
        defer { redis.stop() }
        let right = try temporaryFile(password + "\n", named: "redis-password")
        let wrong = try temporaryFile("not-the-password\n", named: "redis-password")
        let environment = [
            "KAFKA_BOOTSTRAP_SERVERS": DevKafka.shared.bootstrapServers, "KAFKA_TOPIC_TRANSFERS": "password_file_transfers",
            "KAFKA_GROUP_ID": "password-file", "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(redis.port),
        ]

        let (wrongProcess, wrongHTTP) = try Self.startService(
            "redis-wrong-password", environment: environment.merging(["REDIS_PASSWORD_FILE": wrong, "KAFKA_GROUP_ID": "wrong-password"]) { $1 }
        )
        defer { wrongProcess.stop() }
        try Self.waitFor("the HTTP server") { (try? wrongHTTP.get("/healthz").status) == 200 }
        let notReady = try wrongHTTP.get("/readyz")
        #expect(notReady.status == 503)
        #expect(notReady.bodyText.contains("Redis authentication"))

        let service = ServiceInstance(name: "redis-password-file", environment: environment.merging(["REDIS_PASSWORD_FILE": right]) { $1 })
        try service.start()
        defer { service.terminate() }
        let created = try service.http.postJSON("/transfers", Self.body)
        #expect(created.status == 202)
        let object = try JSONSerialization.jsonObject(with: Data(created.body)) as? [String: Any]
        let id = try #require(object?["transfer_id"] as? String)
        try Self.waitFor("transfer completed") {
            try service.http.get("/transfers/\(id)").bodyText.contains(#""status":"completed""#)
        }
        for output in [service.logLines().joined(separator: "\n"), Self.text(ofFile: wrongProcess.stdoutPath)] {
            #expect(!output.contains(password))
            #expect(!output.contains("not-the-password"))
        }
    }

    @Test func apiTokensFromAFile() throws {
        let redis = try RedisServer.start()
        defer { redis.stop() }
        let tokens = try temporaryFile("alpha-token-1\nbeta-token-2\n", named: "api-tokens")
        let service = ServiceInstance(name: "tokens-file", environment: [
            "API_TOKENS_FILE": tokens, "KAFKA_BOOTSTRAP_SERVERS": DevKafka.shared.bootstrapServers,
            "KAFKA_TOPIC_TRANSFERS": "tokens_file_transfers", "KAFKA_GROUP_ID": "tokens-file",
            "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(redis.port),
        ])
        try service.start()
        defer { service.terminate() }
        let path = "/transfers/\(TransferID.random())"
        #expect(try service.http.get(path).status == 401)
        #expect(try service.http.get(path, headers: [("Authorization", "Bearer gamma-token-3")]).status == 401)
        #expect(try service.http.get(path, headers: [("Authorization", "Bearer alpha-token-1")]).status == 404)
        #expect(try service.http.get(path, headers: [("Authorization", "Bearer beta-token-2")]).status == 404)
        let logs = service.logLines().joined(separator: "\n")
        #expect(!logs.contains("alpha-token-1") && !logs.contains("beta-token-2"))
        #expect(!logs.contains("runs without authentication"))
    }

    // MARK: Topics

    @Test func aMissingTopicFailsReadinessUntilItExists() throws {
        let kafka = try DevKafka(brokers: 1, createsTopics: false, name: "dev-kafka-no-topics")
        defer { kafka.stop() }
        let redis = try RedisServer.start()
        defer { redis.stop() }
        let (process, http) = try Self.startService("missing-topic", environment: [
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrapServers, "KAFKA_TOPIC_TRANSFERS": "late_transfers",
            "KAFKA_GROUP_ID": "missing-topic", "KAFKA_SESSION_TIMEOUT_MS": "6000",
            "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(redis.port),
        ])
        defer { process.stop() }
        try Self.waitFor("the HTTP server") { (try? http.get("/healthz").status) == 200 }
        for _ in 0..<3 {
            let readiness = try http.get("/readyz")
            #expect(readiness.status == 503)
            #expect(readiness.bodyText.contains("Kafka topic late_transfers, late_transfers.dlq (missing)"), "\(readiness.bodyText)")
        }
        // Asking about the topics did not create them.
        #expect(try http.get("/readyz").status == 503)

        try kafka.inject("create late_transfers 3")
        // One of the two exists now: readiness names the other.
        try Self.waitFor("readiness naming only the dead-letter topic") {
            try http.get("/readyz").bodyText.contains("Kafka topic late_transfers.dlq (missing)")
        }
        try kafka.inject("create late_transfers.dlq 3")
        try Self.waitFor("readiness") { try http.get("/readyz").status == 200 }
        // Log lines are written in batches, every 50 ms.
        try Self.waitFor("the log line saying so") { process.stdoutLines().contains { $0.contains("Kafka topics available") } }
        let logs = process.stdoutLines()
        #expect(logs.filter { $0.contains("Kafka topic missing") }.count == 2, "\(logs)")  // both, then the .dlq alone
        #expect(logs.contains { $0.contains("Kafka topics available") })

        // The consumer finds the topic at its next metadata refresh, and the transfer completes.
        let created = try http.postJSON("/transfers", Self.body)
        #expect(created.status == 202)
        let object = try JSONSerialization.jsonObject(with: Data(created.body)) as? [String: Any]
        let id = try #require(object?["transfer_id"] as? String)
        try Self.waitFor("transfer completed", limit: .seconds(120)) {
            try http.get("/transfers/\(id)").bodyText.contains(#""status":"completed""#)
        }
    }

    /// librdkafka's mock cluster has no CreateTopics API and reports no controller, so KAFKA_CREATE_TOPICS cannot
    /// create anything on dev-kafka. This shows the service asks (CreateTopics, which waits for the controller in
    /// vain), says so once, and stays unready naming the topics rather than pretending.
    @Test func createTopicsAsksTheControllerAndStaysUnreadyWhenItCannot() throws {
        let kafka = try DevKafka(brokers: 1, createsTopics: false, name: "dev-kafka-no-admin")
        defer { kafka.stop() }
        let redis = try RedisServer.start()
        defer { redis.stop() }
        let (process, http) = try Self.startService("create-topics", environment: [
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrapServers, "KAFKA_TOPIC_TRANSFERS": "created_transfers",
            "KAFKA_GROUP_ID": "create-topics", "KAFKA_CREATE_TOPICS": "true", "KAFKA_TOPIC_REPLICATION_FACTOR": "1",
            "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(redis.port),
        ])
        defer { process.stop() }
        try Self.waitFor("the HTTP server") { (try? http.get("/healthz").status) == 200 }
        let readiness = try http.get("/readyz")
        #expect(readiness.status == 503)
        #expect(readiness.bodyText.contains("Kafka topic created_transfers, created_transfers.dlq (missing)"), "\(readiness.bodyText)")
        let failures = process.stdoutLines().filter { $0.contains("Kafka topic missing and not created") }
        #expect(failures.count == 1, "\(process.stdoutLines())")
        #expect(failures.first?.contains("creating topics: Failed while waiting for controller") == true)
    }
}
