import Dispatch
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Logging
import TransferService

// Reads the configuration, starts the service and runs until SIGTERM or SIGINT.

let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.contains("--help") || arguments.contains("-h") {
    print(ServiceConfiguration.usage)
    print("\n`transfer-service healthcheck` exits 0 when the local service answers GET /healthz with 200.")
    print("`transfer-service migrate` moves data of the release before cluster support into today's key layout.")
    exit(0)
}

let isHealthCheck = arguments.first == "healthcheck"
let isMigration = arguments.first == "migrate"
let configuration: ServiceConfiguration
do {
    configuration = try ServiceConfiguration.load(
        environment: ProcessInfo.processInfo.environment, arguments: Array(arguments.dropFirst(isHealthCheck || isMigration ? 1 : 0))
    )
} catch {
    let line = "transfer-service: \(error)\n"
    _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
    exit(2)
}
if isHealthCheck {
    exit(HealthProbe.run(port: configuration.httpPort))
}
if isMigration {
    do {
        print("transfer-service migrate: \(try LegacyLayoutMigration.run(configuration: configuration))")
        exit(0)
    } catch {
        print("transfer-service migrate: \(error)")
        exit(1)
    }
}

let logLevel = Logger.Level(rawValue: configuration.logLevel) ?? .info
// Lines are written in batches (every 50 ms, at a critical line and at exit), not one write(2) each.
BufferedLogOutput.standardOutput.startFlushing()
LoggingSystem.bootstrap { label in
    if configuration.logFormat == "json" {
        return JSONLogHandler(label: label, level: logLevel)
    }
    return BufferedTextLogHandler(label: label, level: logLevel)
}
let logger = Logger(label: "transfer-service")

let application: TransferApplication
do {
    application = try TransferApplication(configuration: configuration, logger: logger)
    try application.start()
} catch {
    logger.critical("\(error)")  // a critical line is written at once
    exit(1)
}

ShutdownOnSignals.install(application: application, logger: logger)
dispatchMain()
