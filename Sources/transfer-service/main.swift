import CMalloc
import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import Logging
import TransferService

// Reads the configuration (flags, environment, subcommands: TransferServiceCommand), starts the service and
// runs until SIGTERM or SIGINT.

// glibc gives threads that allocate at the same time their own malloc arenas, up to 8 per core; freed memory then
// stays spread over many of them (HTTP workers, Redis connection threads, librdkafka's threads). Two arenas cut
// peak RSS under load by about a fifth without costing CPU (README, Performance). MALLOC_ARENA_MAX still wins.
if getenv("MALLOC_ARENA_MAX") == nil {
    mallopt(M_ARENA_MAX, 2)
}
let configuration = TransferServiceCommand.configurationOrExit()

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
