import ArgumentParser
import TransferService
#if canImport(Glibc)
import Glibc
#endif

/// The command line: `transfer-service [options]` serves; each subcommand does one job with the same configuration
/// (a `ConfiguredCommand`) and exits. Add a subcommand by listing it in `subcommands`.
struct TransferServiceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transfer-service",
        abstract: "The money-transfer service: HTTP API, transfers in Redis, events through Kafka.",
        discussion: """
            Every option is also read from the environment variable shown beside it; a flag wins over the variable, \
            the variable over the default. An invalid setting stops the service with exit code 2 and one line naming it.
            """,
        subcommands: [HealthCheckCommand.self, MigrateCommand.self]
    )

    @OptionGroup var settings: ServiceOptions

    /// For a plain `transfer-service [options]`: the configuration to serve with. A subcommand runs and exits
    /// here, `--help` prints and exits 0, and a bad command line or setting exits 2 with one line on stderr.
    static func configurationOrExit(arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> ServiceConfiguration {
        do {
            var command = try parseAsRoot(arguments)
            if let serve = command as? TransferServiceCommand {
                return try serve.settings.load()
            }
            try command.run()
            Glibc.exit(0)
        } catch let error as ConfigurationError {
            exitWithOneLine(error.description)
        } catch {
            if exitCode(for: error) == .success {
                print(fullMessage(for: error))
                Glibc.exit(0)
            }
            exitWithOneLine(ConfigurationError(commandLineMessage: message(for: error)).description)
        }
    }

    private static func exitWithOneLine(_ message: String) -> Never {
        let line = "transfer-service: \(message)\n"
        _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
        Glibc.exit(2)
    }
}

/// `transfer-service healthcheck`: exits 0 when the local service answers `GET /healthz` with 200 (for container
/// health checks; it reads `HTTP_PORT` like the service).
struct HealthCheckCommand: ConfiguredCommand {
    static let configuration = CommandConfiguration(
        commandName: "healthcheck",
        abstract: "Exit 0 when the local service's GET /healthz answers 200 (for container health checks)."
    )

    @OptionGroup var settings: ServiceOptions

    func run(configuration: ServiceConfiguration) throws {
        Glibc.exit(HealthProbe.run(port: configuration.httpPort))
    }
}

/// `transfer-service migrate`: moves data written by the release before cluster support into today's key layout
/// (see `LegacyLayoutMigration`), prints what it moved, and exits 0 (1 when Redis fails it).
struct MigrateCommand: ConfiguredCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Move data of the release before cluster support into today's key layout, then exit."
    )

    @OptionGroup var settings: ServiceOptions

    func run(configuration: ServiceConfiguration) throws {
        do {
            print("transfer-service migrate: \(try LegacyLayoutMigration.run(configuration: configuration))")
        } catch {
            print("transfer-service migrate: \(error)")
            Glibc.exit(1)
        }
    }
}
