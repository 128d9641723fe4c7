// swift-tools-version: 6.0
import PackageDescription

// libFuzzer targets, one per entry point that reads untrusted bytes. They are a package of their own, depending
// on the service's package by path, because a fuzz target has no `main` (libFuzzer's runtime brings it) and so
// links only with `-sanitize=fuzzer`: as targets of the main package they would break a plain `swift build`,
// which builds every target. Build and run them with `scripts/fuzz`, which passes
// `-Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library`.
let package = Package(
    name: "transfer-service-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "transfer-service", path: ".."),
    ],
    targets: [
        // What the targets share: the entry-point plumbing and the check that turns a broken property into a crash.
        .target(name: "FuzzSupport", path: "support"),
        // JSONValue.parse, and the round trip of whatever it accepts.
        .executableTarget(
            name: "json-parse",
            dependencies: ["FuzzSupport", .product(name: "ExactJSON", package: "transfer-service")],
            path: "json-parse"
        ),
        // TransferRequest(json:): the HTTP body of a create.
        .executableTarget(
            name: "transfer-request",
            dependencies: [
                "FuzzSupport",
                .product(name: "Transfers", package: "transfer-service"),
                .product(name: "ExactJSON", package: "transfer-service"),
            ],
            path: "transfer-request"
        ),
        // Transfer(json:): a record from Redis or an event from Kafka, as the consumer reads it.
        .executableTarget(
            name: "transfer-decoding",
            dependencies: ["FuzzSupport", .product(name: "Transfers", package: "transfer-service")],
            path: "transfer-decoding"
        ),
    ],
    swiftLanguageModes: [.v6]
)
