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

/// Text log lines in the format of swift-log's `StreamLogHandler` (the format the service always had):
/// `<local time, %Y-%m-%dT%H:%M:%S%z> <level> <label>: <metadata as key=value, sorted by key> [<source>] <message>`,
/// written into a `BufferedLogOutput`; a critical line is written at once, since the process may be about to stop.
///
/// Why not `StreamLogHandler` itself: per line it calls `localtime`, which takes glibc's time-zone lock and
/// `stat`s /etc/localtime, and builds the metadata text through several intermediate strings. With one line per
/// created and per completed transfer that was about 5% of the service's CPU under load (`perf`). Here the line
/// is written into one string, and the time-zone offset is looked up once a minute (`LocalTimestamp`).
public struct BufferedTextLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let label: String
    private let output: BufferedLogOutput

    /// A handler for loggers named `label` that passes messages at `level` and above.
    public init(label: String, level: Logger.Level, output: BufferedLogOutput = .standardOutput) {
        self.label = label
        self.logLevel = level
        self.output = output
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        output.append(line(for: event, at: time(nil)))
        if event.level == .critical { output.flush() }
    }

    /// The line for `event` at `seconds` since the epoch, its newline included.
    func line(for event: LogEvent, at seconds: Int) -> String {
        var line = ""
        line.reserveCapacity(160)
        LocalTimestamp.append(seconds, to: &line)
        line += " "
        line += event.level.rawValue
        if !label.isEmpty {
            line += " "
            line += label
        }
        line += ":"
        var merged = metadata
        if let explicit = event.metadata, !explicit.isEmpty {
            merged.merge(explicit) { _, explicit in explicit }
        }
        if let error = event.error {
            merged["error.message"] = "\(error)"
            merged["error.type"] = "\(String(reflecting: type(of: error)))"
        }
        if merged.count == 1, let (key, value) = merged.first {
            Self.append(key, value, to: &line)  // the usual case (a transfer id): nothing to sort
        } else if !merged.isEmpty {
            for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
                Self.append(key, value, to: &line)
            }
        }
        line += " ["
        line += event.source
        line += "] "
        line += event.message.description
        line += "\n"
        return line
    }

    private static func append(_ key: String, _ value: Logger.Metadata.Value, to line: inout String) {
        line += " "
        line += key
        line += "="
        switch value {
        case .string(let text): line += text
        case .stringConvertible, .array, .dictionary: line += value.description
        }
    }
}

/// `%Y-%m-%dT%H:%M:%S%z` in local time, as `strftime` writes it, without a time-zone lookup per line.
///
/// The local time is UTC plus the zone's offset, which only changes at a daylight-saving transition (always at a
/// whole minute), so the offset is looked up (`localtime_r`) once a minute and kept, with the minute it is valid
/// for, in one atomic word: any thread reads it without a lock.
enum LocalTimestamp {
    /// (minute since the epoch) << 20 | (offset in seconds + 2^19); 0: nothing cached yet.
    private static let cachedOffset = Atomic<Int>(0)
    private static let offsetBias = 1 << 19

    static func append(_ seconds: Int, to text: inout String) {
        let offsetSeconds = offset(at: seconds)
        let local = seconds + offsetSeconds
        let days = TimestampText.floorDivision(local, 86_400)
        let secondOfDay = local - days * 86_400
        let (year, month, day) = TimestampText.civilDate(daysSinceEpoch: days)
        let offsetMinutes = abs(offsetSeconds) / 60
        text += TimestampText.write { writer in
            writer.digits(year, 4); writer.character("-"); writer.digits(month, 2); writer.character("-"); writer.digits(day, 2)
            writer.character("T")
            writer.digits(secondOfDay / 3600, 2); writer.character(":"); writer.digits(secondOfDay / 60 % 60, 2)
            writer.character(":"); writer.digits(secondOfDay % 60, 2)
            writer.character(offsetSeconds < 0 ? "-" : "+"); writer.digits(offsetMinutes / 60, 2); writer.digits(offsetMinutes % 60, 2)
        }
    }

    /// The local zone's offset from UTC at `seconds`, in seconds.
    static func offset(at seconds: Int) -> Int {
        let minute = TimestampText.floorDivision(seconds, 60)
        let cached = cachedOffset.load(ordering: .relaxed)
        if cached != 0, cached >> 20 == minute {
            return (cached & (1 << 20 - 1)) - offsetBias
        }
        var time = time_t(seconds)
        var broken = tm()
        guard localtime_r(&time, &broken) != nil else { return 0 }
        let offset = Int(broken.tm_gmtoff)
        if abs(offset) < offsetBias {
            cachedOffset.store(minute << 20 | (offset + offsetBias), ordering: .relaxed)
        }
        return offset
    }
}
