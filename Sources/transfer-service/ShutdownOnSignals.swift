import Dispatch
import Logging
import Synchronization
import TransferService
#if canImport(Glibc)
import Glibc
#endif

/// SIGTERM and SIGINT: the first stops the service gracefully within `limit` (after `SHUTDOWN_DELAY_MS`, during
/// which `/readyz` answers 503); a second one exits at once. Buffered log lines are written before every exit.
///
/// Signals are received by Dispatch sources, so stopping runs as ordinary code on a queue rather than inside a
/// signal handler. (This lives outside main.swift so that its closures are not tied to the main actor.)
enum ShutdownOnSignals {
    /// How long stopping may take after the shutdown delay.
    static let limit: DispatchTimeInterval = .milliseconds(9_500)
    private static let isStopping = Atomic<Bool>(false)
    /// Kept so the sources live as long as the process.
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []

    static func install(application: TransferApplication, logger: Logger) {
        let queue = DispatchQueue(label: "signals")
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        sources = [SIGTERM, SIGINT].map { signalNumber in
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: queue)
            source.setEventHandler {
                if isStopping.exchange(true, ordering: .relaxed) {
                    logger.warning("second signal: exiting at once", metadata: ["signal": "\(signalNumber)"])
                    BufferedLogOutput.standardOutput.flush()
                    exit(1)
                }
                logger.info("stopping", metadata: ["signal": "\(signalNumber)"])
                // Stopping blocks; it runs on its own queue so that a second signal is still heard.
                DispatchQueue.global().async {
                    application.stop()
                    BufferedLogOutput.standardOutput.flush()
                    exit(0)
                }
                let delay = DispatchTimeInterval.milliseconds(application.configuration.shutdownDelayMilliseconds)
                DispatchQueue.global().asyncAfter(deadline: .now() + delay + limit) {
                    logger.error("graceful shutdown took too long; exiting (the outbox and uncommitted offsets make up for it)")
                    BufferedLogOutput.standardOutput.flush()
                    exit(1)
                }
            }
            source.resume()
            return source
        }
    }
}
