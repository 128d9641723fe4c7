import Foundation
import ServiceTestSupport
import TestSupport
import Testing
import TransferService

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
        #expect(cluster.redisClusterNodes == [HostAndPort(host: "127.0.0.1", port: 7000), HostAndPort(host: "127.0.0.1", port: 7001)])
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
