import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import Logging
import TransferService

// Reads the configuration (flags, environment, subcommands: TransferServiceCommand), starts the service and
// runs until SIGTERM or SIGINT.
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
