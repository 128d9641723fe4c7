// swift-tools-version: 6.0
import PackageDescription

// Layers, with dependencies pointing one way:
//   executables -> TransferService -> (Transfers, HTTPServer, RedisClient, KafkaClient) -> C shims
// Transfers (the domain) depends only on ExactJSON and never does I/O.
let package = Package(
    name: "transfer-service",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "transfer-service", targets: ["transfer-service"]),
        .executable(name: "dev-kafka", targets: ["dev-kafka"]),
        // For the fuzz targets in Fuzz/, a package of their own that depends on this one by path.
        .library(name: "ExactJSON", targets: ["ExactJSON"]),
        .library(name: "Transfers", targets: ["Transfers"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        // C libraries, exposed through system-library shims (module.modulemap + shim.h).
        // No pkgConfig for libmicrohttpd and hiredis: their .pc files add -D_FILE_OFFSET_BITS=64, which SwiftPM
        // rejects with a warning; off_t is 64-bit on every platform we build for, and the headers are in /usr/include.
        .systemLibrary(name: "CMicroHTTPD", providers: [.apt(["libmicrohttpd-dev"])]),
        .systemLibrary(name: "CHiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "CRdKafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
        // glibc's <malloc.h> (mallopt), for the executable's allocator settings.
        .systemLibrary(name: "CMalloc"),

        // Thin, generic Swift wrappers: the only modules that touch C types. No transfer knowledge.
        .target(name: "HTTPServer", dependencies: ["CMicroHTTPD"]),
        .target(name: "RedisClient", dependencies: ["CHiredis", .product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "KafkaClient", dependencies: ["CRdKafka", "ExactJSON"]),
        // librdkafka's mock cluster and a consumer-group lag reader: for dev-kafka, the benchmark and tests only,
        // so the production client carries neither.
        .target(name: "KafkaDevSupport", dependencies: ["KafkaClient", "CRdKafka"]),

        // JSON that keeps numbers as their exact text, so money never passes through a Double.
        .target(name: "ExactJSON", dependencies: [.product(name: "OrderedCollections", package: "swift-collections")]),

        // The domain: transfer model, amounts, validation, the version rule. No I/O.
        .target(name: "Transfers", dependencies: ["ExactJSON", .product(name: "Crypto", package: "swift-crypto")]),

        // The wiring: repository, outbox publisher, consumer, routes, configuration.
        .target(
            name: "TransferService",
            dependencies: [
                "Transfers", "ExactJSON", "HTTPServer", "RedisClient", "KafkaClient",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),

        .executableTarget(
            name: "transfer-service",
            dependencies: [
                "TransferService", "CMalloc", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "dev-kafka",
            dependencies: ["KafkaClient", "KafkaDevSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // Load generation and measurement helpers for scripts/bench.
        .executableTarget(
            name: "transfer-bench",
            dependencies: [
                "KafkaClient", "KafkaDevSupport", "RedisClient", "Transfers",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // Helpers for tests: child processes, free ports, a real redis-server, a raw HTTP client.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        // The built service, a redis-server and the shared dev-kafka, started as child processes for tests.
        .target(
            name: "ServiceTestSupport",
            dependencies: ["TestSupport", "RedisClient", "KafkaClient", "KafkaDevSupport", "Transfers"],
            path: "Tests/ServiceTestSupport"
        ),

        .testTarget(name: "ExactJSONTests", dependencies: ["ExactJSON"]),
        .testTarget(name: "TransfersTests", dependencies: ["Transfers"]),
        .testTarget(name: "HTTPServerTests", dependencies: ["HTTPServer", "TestSupport"]),
        .testTarget(name: "RedisClientTests", dependencies: ["RedisClient", "TestSupport"]),
        .testTarget(name: "KafkaClientTests", dependencies: ["KafkaClient", "KafkaDevSupport"]),
        .testTarget(
            name: "TransferServiceTests",
            dependencies: [
                "TransferService", "Transfers", "ExactJSON", "RedisClient", "KafkaClient", "KafkaDevSupport", "TestSupport",
                "ServiceTestSupport", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                // Built so the tests can run the real binaries as child processes.
                "transfer-service", "dev-kafka",
            ]
        ),
        // Crashes, restarts, outages and hostile traffic against real processes.
        .testTarget(
            name: "FaultInjectionTests",
            dependencies: [
                "Transfers", "ExactJSON", "RedisClient", "KafkaClient", "TestSupport", "ServiceTestSupport",
                "transfer-service", "dev-kafka",
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
