import ArgumentParser
import Foundation
import RedisClient
import KafkaClient
import ServiceTestSupport
import Synchronization
import TestSupport
import Testing
@testable import TransferService

@Suite struct ConfigurationTests {
    @Test func defaultsAreTheSketchs() throws {
        let configuration = try ServiceConfiguration.load(environment: [:], arguments: [])
        #expect(configuration.kafkaBootstrapServers == "localhost:9092")
        #expect(configuration.kafkaTopic == "money_transfers")
        #expect(configuration.redisHost == "localhost")
        #expect(configuration.redisPort == 6379)
        #expect(configuration.redisDatabase == 0)
        #expect(configuration.redisPassword == nil)
        #expect(configuration.kafkaGroupID == "transfer-processor")
        #expect(configuration.httpHost == "0.0.0.0")
        #expect(configuration.httpPort == 8080)
    }

    @Test func flagsOverrideTheEnvironment() throws {
        let configuration = try ServiceConfiguration.load(
            environment: ["REDIS_PORT": "7000", "REDIS_DB": "3", "KAFKA_TOPIC_TRANSFERS": "t1", "REDIS_PASSWORD": "s3cret"],
            arguments: ["--redis-port", "7001", "--kafka-topic-transfers=t2", "--http-port", "0"]
        )
        #expect(configuration.redisPort == 7001)
        #expect(configuration.redisDatabase == 3)
        #expect(configuration.kafkaTopic == "t2")
        #expect(configuration.redisPassword == "s3cret")
        #expect(configuration.httpPort == 0)
    }

    @Test(arguments: [
        (["REDIS_PORT": "abc"], [String](), "REDIS_PORT"),
        (["REDIS_PORT": "70000"], [], "REDIS_PORT"),
        (["REDIS_DB": "-1"], [], "REDIS_DB"),
        (["HTTP_PORT": ""], [], "HTTP_PORT"),
        (["KAFKA_TOPIC_TRANSFERS": "bad topic"], [], "KAFKA_TOPIC_TRANSFERS"),
        (["KAFKA_BOOTSTRAP_SERVERS": ""], [], "KAFKA_BOOTSTRAP_SERVERS"),
        ([:], ["--redis-port"], "--redis-port"),
        ([:], ["--no-such-flag", "1"], "--no-such-flag"),
    ])
    func invalidSettingIsNamed(environment: [String: String], arguments: [String], setting: String) {
        #expect(throws: ConfigurationError.self) {
            try ServiceConfiguration.load(environment: environment, arguments: arguments)
        }
        do {
            _ = try ServiceConfiguration.load(environment: environment, arguments: arguments)
        } catch {
            #expect(error.setting == setting)
        }
    }

    @Test func invalidConfigurationStopsTheBinaryWithOneLine() throws {
        let process = try ChildProcess(
            executable: Products.path("transfer-service"), environment: ["REDIS_PORT": "not-a-port"], name: "bad-config"
        )
        #expect(process.waitForExit(timeout: .seconds(30)) == 2)
        let errors = try String(contentsOfFile: process.stderrPath, encoding: .utf8)
        let lines = errors.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(lines.first?.contains("REDIS_PORT") == true)
    }
}

@Suite struct ClusterAndLifecycleSettingsTests {
    @Test func clusterNodesSelectClusterModeWithItsWaitDefault() throws {
        let single = try ServiceConfiguration.load(environment: [:], arguments: [])
        #expect(!single.isRedisCluster)
        #expect(single.redisWaitReplicas == 0)
        let cluster = try ServiceConfiguration.load(
            environment: ["REDIS_CLUSTER_NODES": "127.0.0.1:7000, 127.0.0.1:7001", "REDIS_USERNAME": "svc"], arguments: []
        )
        #expect(cluster.redisClusterNodes == [RedisNodeID(host: "127.0.0.1", port: 7000), RedisNodeID(host: "127.0.0.1", port: 7001)])
        #expect(cluster.redisWaitReplicas == 1)
        #expect(cluster.redis.username == "svc")
        let explicit = try ServiceConfiguration.load(environment: ["REDIS_CLUSTER_NODES": "n1:7000"], arguments: ["--redis-wait-replicas", "0"])
        #expect(explicit.redisWaitReplicas == 0)
    }

    @Test(arguments: [
        (["REDIS_CLUSTER_NODES": "n1:7000", "REDIS_HOST": "redis"], "REDIS_HOST"),
        (["REDIS_CLUSTER_NODES": "n1:7000", "REDIS_PORT": "6380"], "REDIS_PORT"),
        (["REDIS_CLUSTER_NODES": "n1:7000", "REDIS_DB": "1"], "REDIS_DB"),
        (["REDIS_CLUSTER_NODES": "n1"], "REDIS_CLUSTER_NODES"),
        (["REDIS_CLUSTER_NODES": ":7000"], "REDIS_CLUSTER_NODES"),
        (["REDIS_WAIT_REPLICAS": "-1"], "REDIS_WAIT_REPLICAS"),
        (["TRANSFER_RETENTION": "30"], "TRANSFER_RETENTION"),
        (["TRANSFER_RETENTION": "0d"], "TRANSFER_RETENTION"),
        (["RECONCILE_AFTER_MS": "10"], "RECONCILE_AFTER_MS"),
        (["SHUTDOWN_DELAY_MS": "x"], "SHUTDOWN_DELAY_MS"),
    ])
    func conflictingOrInvalidSettingIsNamed(environment: [String: String], setting: String) {
        do {
            _ = try ServiceConfiguration.load(environment: environment, arguments: [])
            Issue.record("expected \(setting) to be refused")
        } catch {
            #expect(error.setting == setting)
        }
    }

    @Test func lifecycleSettings() throws {
        let defaults = try ServiceConfiguration.load(environment: [:], arguments: [])
        #expect(defaults.reconcileAfterMilliseconds == 60_000)
        #expect(defaults.shutdownDelayMilliseconds == 0)
        #expect(defaults.transferRetentionSeconds == nil)
        let set = try ServiceConfiguration.load(
            environment: ["TRANSFER_RETENTION": "30d", "RECONCILE_AFTER_MS": "5000"], arguments: ["--shutdown-delay-ms=2000"]
        )
        #expect(set.transferRetentionSeconds == 30 * 86_400)
        #expect(set.reconcileAfterMilliseconds == 5_000)
        #expect(set.shutdownDelayMilliseconds == 2_000)
    }
}

/// A file with `text` in a fresh temporary directory; returns its path.
func temporaryFile(_ text: String, named name: String = "file") throws -> String {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("configuration-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let path = directory.appendingPathComponent(name).path
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

@Suite struct CommandLineTests {
    @Test func everySettingHasItsFlagAndEveryFlagItsSetting() throws {
        let help = ServiceOptions.helpMessage(columns: 1_000)
        for setting in ServiceSettings.all {
            #expect(help.contains(setting.flag + " "), "no \(setting.flag) in --help")
            #expect(help.contains("[env: \(setting.environmentName)]"))
        }
        // Each flag, given alone, reaches its own setting (and no other).
        for setting in ServiceSettings.all {
            let options = try ServiceOptions.parse([setting.flag, "x"])
            #expect(options.flagValues == [setting.environmentName: "x"], "\(setting.flag)")
        }
    }

    @Test func helpShowsNoSecret() throws {
        let help = ServiceOptions.helpMessage(columns: 1_000)
        #expect(help.contains("--redis-password-file"))
        #expect(help.contains("--api-tokens-file"))
        #expect(help.contains("--kafka-properties-file"))
    }
}

@Suite struct KafkaPropertiesFileTests {
    static let managedServiceFile = """
        # Kafka client settings, as the managed service hands them out
        ! Java-style comment
        bootstrap.servers=broker-1.example:9092,broker-2.example:9092

        security.protocol=SASL_SSL\r
        sasl.mechanism : PLAIN
          sasl.username=transfer-svc
        sasl.password = p@ss=word:with#chars
        client.id=transfers
        ssl.ca.location=/etc/ssl/certs/ca-certificates.crt

        """

    @Test func propertiesReachTheProducersTheConsumerAndTheAdminClient() throws {
        let path = try temporaryFile(Self.managedServiceFile, named: "client.properties")
        let configuration = try ServiceConfiguration.load(environment: ["KAFKA_PROPERTIES_FILE": path], arguments: [])
        // bootstrap.servers from the file becomes the brokers setting.
        #expect(configuration.kafkaBootstrapServers == "broker-1.example:9092,broker-2.example:9092")
        let expected = [
            "security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", "sasl.username": "transfer-svc",
            "sasl.password": "p@ss=word:with#chars", "client.id": "transfers", "ssl.ca.location": "/etc/ssl/certs/ca-certificates.crt",
        ]
        #expect(configuration.kafkaProperties == expected)
        for (name, value) in expected {
            #expect(configuration.kafkaProducer.properties[name] == value)
            #expect(configuration.kafkaConsumer.properties[name] == value)
        }
        // What the service relies on is still what it sets.
        #expect(configuration.kafkaConsumer.properties["session.timeout.ms"] == "45000")
        #expect(configuration.kafkaProducer.properties["allow.auto.create.topics"] == "false")
        #expect(configuration.kafkaPropertiesFile?.entries.first { $0.name == "sasl.username" }?.line == 7)
        let logged = try #require(configuration.kafkaPropertiesFile?.redactedDescription)
        #expect(logged.contains("sasl.password=[redacted]"))
        #expect(logged.contains("sasl.username=transfer-svc"))
        #expect(!logged.contains("p@ss"))
    }

    @Test(arguments: [
        ("sasl.username=a\nenable.auto.commit=false\n", 2, "enable.auto.commit is set by the service"),
        ("acks=1\n", 1, "acks is set by the service"),
        // librdkafka reads a topic-level property with a "topic." prefix as the property itself.
        ("topic.auto.offset.reset=latest\n", 1, "topic.auto.offset.reset is set by the service"),
        ("topic.request.required.acks=1\n", 1, "topic.request.required.acks is set by the service"),
        ("delivery.timeout.ms=60000\n", 1, "delivery.timeout.ms is set by the service (the outbox lease"),
        ("group.id=other\n", 1, "use KAFKA_GROUP_ID"),
        ("# ok\nno.such.property=1\n", 2, "no.such.property is not a librdkafka property"),
        // Java clients' way of giving credentials: librdkafka knows it and says what to use instead.
        ("sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required;\n", 1, "sasl.jaas.config is refused by librdkafka: Java JAAS"),
        ("security.protocol=SASL_BOGUS\n", 1, "security.protocol is refused by librdkafka"),
        ("sasl.username=a\nsasl.username=b\n", 2, "sasl.username is already set on line 2"),
        ("client.id\n", 1, "is not name=value"),
        ("ssl.ca.location=/a/\\\n  b\n", 1, "continued lines are not supported"),
    ])
    func anUnusableLineIsNamed(text: String, line: Int, reason: String) throws {
        let secret = "do-not-show-\(UUID().uuidString)"
        let path = try temporaryFile("sasl.password=\(secret)\n" + text, named: "client.properties")
        do {
            _ = try ServiceConfiguration.load(environment: ["KAFKA_PROPERTIES_FILE": path], arguments: [])
            Issue.record("expected the file to be refused")
        } catch {
            #expect(error.setting == "KAFKA_PROPERTIES_FILE")
            #expect(error.description.contains("\(path) line \(line + 1): "), "\(error)")
            #expect(error.description.contains(reason), "\(error)")
            #expect(!error.description.contains(secret))
        }
    }

    @Test func secretNamesAreRedacted() throws {
        let file = try KafkaPropertiesFile(path: "p", text: """
            sasl.password=a1
            ssl.key.password=a2
            ssl.key.pem=a3
            sasl.kerberos.keytab=a5
            sasl.username=visible
            """)
        #expect(file.redactedDescription == "sasl.password=[redacted], ssl.key.password=[redacted], ssl.key.pem=[redacted], "
            + "sasl.kerberos.keytab=[redacted], sasl.username=visible")
        // librdkafka's error texts quote refused values; a secret's is replaced, others stay for the operator.
        let quoted = #"Invalid value "hunter2" for configuration property "x""#
        #expect(KafkaProperty.redacting(quoted, name: "ssl.key.password", value: "hunter2") == #"Invalid value "[redacted]" for configuration property "x""#)
        #expect(KafkaProperty.redacting(quoted, name: "security.protocol", value: "hunter2") == quoted)
    }

    @Test func bootstrapServersInTheFileAndTheSettingConflict() throws {
        let path = try temporaryFile("bootstrap.servers=a:9092\n", named: "client.properties")
        do {
            _ = try ServiceConfiguration.load(
                environment: ["KAFKA_PROPERTIES_FILE": path, "KAFKA_BOOTSTRAP_SERVERS": "b:9092"], arguments: []
            )
            Issue.record("expected a conflict")
        } catch {
            #expect(error.description.contains("line 1: bootstrap.servers cannot be used together with KAFKA_BOOTSTRAP_SERVERS"))
        }
    }

    @Test func aMissingFileIsNamed() {
        do {
            _ = try ServiceConfiguration.load(environment: [:], arguments: ["--kafka-properties-file", "/nonexistent/client.properties"])
            Issue.record("expected an error")
        } catch {
            #expect(error.setting == "KAFKA_PROPERTIES_FILE")
            #expect(error.reason == "cannot read /nonexistent/client.properties: No such file or directory")
        }
    }
}

@Suite struct SecretFileTests {
    @Test func redisPasswordFileLosesItsTrailingNewline() throws {
        let path = try temporaryFile("s3cret pass\n", named: "redis-password")
        let configuration = try ServiceConfiguration.load(environment: ["REDIS_PASSWORD_FILE": path], arguments: [])
        #expect(configuration.redisPassword == "s3cret pass")
        #expect(configuration.redis.password == "s3cret pass")
        let fromFlag = try ServiceConfiguration.load(environment: [:], arguments: ["--redis-password-file=\(path)"])
        #expect(fromFlag.redisPassword == "s3cret pass")
    }

    @Test func tokensFileTakesCommasAndLines() throws {
        let path = try temporaryFile("first-token\r\nsecond-token, third-token\n\n", named: "api-tokens")
        let configuration = try ServiceConfiguration.load(environment: ["API_TOKENS_FILE": path], arguments: [])
        #expect(configuration.apiTokens == ["first-token", "second-token", "third-token"])
    }

    @Test(arguments: [
        (["REDIS_PASSWORD": "x"], "REDIS_PASSWORD_FILE", "cannot be used together with REDIS_PASSWORD"),
        (["API_TOKENS": "x"], "API_TOKENS_FILE", "cannot be used together with API_TOKENS"),
    ])
    func aVariableAndItsFileConflict(environment: [String: String], fileSetting: String, reason: String) throws {
        let path = try temporaryFile("from-file-secret\n")
        do {
            _ = try ServiceConfiguration.load(environment: environment.merging([fileSetting: path]) { $1 }, arguments: [])
            Issue.record("expected a conflict")
        } catch {
            #expect(error.setting == fileSetting)
            #expect(error.reason.contains(reason))
            #expect(!error.description.contains("from-file-secret"))
        }
    }

    @Test func anEmptySecretFileIsRefused() throws {
        let empty = try temporaryFile("\n")
        for setting in ["REDIS_PASSWORD_FILE", "API_TOKENS_FILE"] {
            do {
                _ = try ServiceConfiguration.load(environment: [setting: empty], arguments: [])
                Issue.record("expected \(setting) to be refused")
            } catch {
                #expect(error.setting == setting)
            }
        }
    }
}

@Suite struct TopicSettingsTests {
    @Test func defaultsAndLimits() throws {
        let defaults = try ServiceConfiguration.load(environment: [:], arguments: [])
        #expect(!defaults.kafkaCreateTopics)
        #expect(defaults.kafkaTopicsToCreate == [
            KafkaNewTopic(name: "money_transfers", partitions: 6, replicationFactor: 3),
            KafkaNewTopic(name: "money_transfers.dlq", partitions: 6, replicationFactor: 3),
        ])
        let set = try ServiceConfiguration.load(
            environment: ["KAFKA_CREATE_TOPICS": "true", "KAFKA_TOPIC_PARTITIONS": "12"], arguments: ["--kafka-topic-replication-factor", "-1"]
        )
        #expect(set.kafkaCreateTopics)
        #expect(set.kafkaTopicsToCreate.first == KafkaNewTopic(name: "money_transfers", partitions: 12, replicationFactor: -1))
        for (name, value) in [("KAFKA_CREATE_TOPICS", "yes"), ("KAFKA_TOPIC_PARTITIONS", "0"), ("KAFKA_TOPIC_REPLICATION_FACTOR", "0")] {
            do {
                _ = try ServiceConfiguration.load(environment: [name: value], arguments: [])
                Issue.record("expected \(name)=\(value) to be refused")
            } catch {
                #expect(error.setting == name)
            }
        }
    }
}

/// A subcommand as the lead's `migrate` would be written: it only declares the options and its work.
private struct ProbeCommand: ConfiguredCommand {
    static let received = Mutex<ServiceConfiguration?>(nil)
    @OptionGroup var settings: ServiceOptions

    func run(configuration: ServiceConfiguration) throws {
        Self.received.withLock { $0 = configuration }
    }
}

@Suite struct ConfiguredCommandTests {
    @Test func aSubcommandGetsTheLoadedConfiguration() throws {
        var command = try ProbeCommand.parse(["--redis-port", "7001", "--kafka-create-topics=true"])
        try command.run()
        let configuration = try #require(ProbeCommand.received.withLock { $0 })
        #expect(configuration.redisPort == 7001)
        #expect(configuration.kafkaCreateTopics)

        var invalid = try ProbeCommand.parse(["--redis-port", "0"])
        #expect(throws: ConfigurationError(setting: "REDIS_PORT", reason: "must be a whole number from 1 to 65535, not '0'")) {
            try invalid.run()
        }
    }
}
