import Dispatch
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Log lines collected from any number of threads and written to a file descriptor in batches: one write(2) per
/// flush instead of one per line.
///
/// Appending is lock-free: each line is pushed onto an atomic stack (a compare-and-swap), and a flush takes the
/// whole stack with one exchange and writes it oldest first. Lines stay whole and in the order they were appended.
/// Flushes happen every `flushInterval` (see `startFlushing`), when more than `maxPendingBytes` wait (the logging
/// thread then writes them itself, so a blocked output slows logging instead of growing memory), on `flush()`, on a
/// critical line, and at `exit` (registered by `standardOutput`).
public final class BufferedLogOutput: @unchecked Sendable {  // the raw pointers are owned through the atomic stack
    /// Standard output, flushed at process exit too.
    public static let standardOutput: BufferedLogOutput = {
        let output = BufferedLogOutput(descriptor: STDOUT_FILENO)
        atexit { BufferedLogOutput.standardOutput.flush() }
        return output
    }()

    /// At most this long between a line being logged and written, once `startFlushing()` ran.
    public static let flushInterval: Duration = .milliseconds(50)
    /// Past this many buffered bytes the logging thread flushes.
    static let maxPendingBytes = 256 * 1024

    private final class Line {
        let text: String
        /// The line appended before this one (retained through `Unmanaged`), or nil.
        var older: UnsafeMutableRawPointer?

        init(_ text: String) {
            self.text = text
        }
    }

    private let descriptor: Int32
    /// The newest pending line (a retained `Line`), or nil.
    private let newest = Atomic<UnsafeMutableRawPointer?>(nil)
    private let pendingBytes = Atomic<Int>(0)
    /// Taken by flushes only (never by appends), so that batches are written in the order they were taken.
    private let writing = Mutex<Void>(())
    private let timer = Mutex<(any DispatchSourceTimer)?>(nil)

    /// Output to `descriptor`, which stays open (the caller owns it).
    public init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    deinit {
        timer.withLock { $0?.cancel() }
        flush()
    }

    /// Queues one complete line (its newline included).
    public func append(_ line: String) {
        let node = Unmanaged.passRetained(Line(line))
        let raw = node.toOpaque()
        var head = newest.load(ordering: .relaxed)
        while true {
            node._withUnsafeGuaranteedRef { $0.older = head }
            let (exchanged, current) = newest.compareExchange(
                expected: head, desired: raw, successOrdering: .releasing, failureOrdering: .relaxed)
            if exchanged { break }
            head = current
        }
        if pendingBytes.wrappingAdd(line.utf8.count, ordering: .relaxed).newValue > Self.maxPendingBytes {
            flush()
        }
    }

    /// Writes every pending line now.
    public func flush() {
        writing.withLock { _ in
            guard var cursor = newest.exchange(nil, ordering: .acquiring) else { return }
            var lines: [Line] = []
            while true {
                let line = Unmanaged<Line>.fromOpaque(cursor).takeRetainedValue()
                lines.append(line)
                guard let older = line.older else { break }
                cursor = older
            }
            var batch: [UInt8] = []
            batch.reserveCapacity(lines.reduce(0) { $0 + $1.text.utf8.count })
            for line in lines.reversed() {
                batch.append(contentsOf: line.text.utf8)
            }
            pendingBytes.wrappingSubtract(batch.count, ordering: .relaxed)
            write(batch)
        }
    }

    /// Flushes every `flushInterval` from now on, on a queue of its own.
    public func startFlushing() {
        timer.withLock { timer in
            guard timer == nil else { return }
            let source = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "log-flush"))
            let interval = Self.flushInterval.components.attoseconds / 1_000_000_000
            source.schedule(deadline: .now(), repeating: .nanoseconds(Int(interval)), leeway: .milliseconds(5))
            source.setEventHandler { [weak self] in self?.flush() }
            source.resume()
            timer = source
        }
    }

    private func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else {
                    return  // nothing sensible to do when the log itself cannot be written
                }
            }
        }
    }
}

/// swift-log's text handler (`StreamLogHandler`, the format the service always had) writing into a
/// `BufferedLogOutput`; a critical line is written at once, since the process may be about to stop.
public struct BufferedTextLogHandler: LogHandler {
    private var handler: StreamLogHandler
    private let output: BufferedLogOutput

    /// A handler for loggers named `label` that passes messages at `level` and above.
    public init(label: String, level: Logger.Level, output: BufferedLogOutput = .standardOutput) {
        handler = StreamLogHandler(label: label, stream: BufferedLogStream(output: output))
        handler.logLevel = level
        self.output = output
    }

    public var metadata: Logger.Metadata {
        get { handler.metadata }
        set { handler.metadata = newValue }
    }

    public var logLevel: Logger.Level {
        get { handler.logLevel }
        set { handler.logLevel = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { handler[metadataKey: key] }
        set { handler[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) {
        handler.log(event: event)
        if event.level == .critical { output.flush() }
    }
}

/// What `StreamLogHandler` writes to: it writes each line with one `write` call, so lines arrive whole.
private struct BufferedLogStream: TextOutputStream, Sendable {
    let output: BufferedLogOutput

    mutating func write(_ string: String) {
        output.append(string)
    }
}
