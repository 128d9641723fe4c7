import Dispatch
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Logging
import TransferService

// Reads the configuration, starts the service and runs until SIGTERM or SIGINT.

let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.contains("--help") || arguments.contains("-h") {
    print(ServiceConfiguration.usage)
    print("\n`transfer-service healthcheck` exits 0 when the local service answers GET /healthz with 200.")
    exit(0)
}

let isHealthCheck = arguments.first == "healthcheck"
let configuration: ServiceConfiguration
do {
    configuration = try ServiceConfiguration.load(
        environment: ProcessInfo.processInfo.environment, arguments: Array(arguments.dropFirst(isHealthCheck ? 1 : 0))
    )
} catch {
    let line = "transfer-service: \(error)\n"
    _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
    exit(2)
}
if isHealthCheck {
    exit(HealthProbe.run(port: configuration.httpPort))
}

let logLevel = Logger.Level(rawValue: configuration.logLevel) ?? .info
LoggingSystem.bootstrap { label in
    if configuration.logFormat == "json" {
        return JSONLogHandler(label: label, level: logLevel)
    }
    var handler = StreamLogHandler.standardOutput(label: label)
    handler.logLevel = logLevel
    return handler
}
let logger = Logger(label: "transfer-service")

let application: TransferApplication
do {
    application = try TransferApplication(configuration: configuration, logger: logger)
    try application.start()
} catch {
    logger.critical("\(error)")
    exit(1)
}

// Signals are handled on a Dispatch queue, so stopping runs as ordinary code rather than in a signal handler.
// The first SIGTERM or SIGINT stops gracefully, within `shutdownLimit`; a second one exits at once.
let shutdownLimit = 9.5
let isStopping = Atomic<Bool>(false)
signal(SIGTERM, SIG_IGN)
signal(SIGINT, SIG_IGN)
let signalQueue = DispatchQueue(label: "signals")
let signalSources = [SIGTERM, SIGINT].map { signalNumber in
    let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: signalQueue)
    source.setEventHandler {
        if isStopping.exchange(true, ordering: .relaxed) {
            logger.warning("second signal: exiting at once", metadata: ["signal": "\(signalNumber)"])
            exit(1)
        }
        logger.info("stopping", metadata: ["signal": "\(signalNumber)"])
        // Stopping blocks; it runs on its own thread so that a second signal is still heard.
        DispatchQueue.global().async {
            application.stop()
            exit(0)
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + shutdownLimit) {
            logger.error("graceful shutdown took too long; exiting (the outbox and uncommitted offsets make up for it)")
            exit(1)
        }
    }
    source.resume()
    return source
}
dispatchMain()
