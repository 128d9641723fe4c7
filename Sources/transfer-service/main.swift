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

ShutdownOnSignals.install(application: application, logger: logger)
dispatchMain()
