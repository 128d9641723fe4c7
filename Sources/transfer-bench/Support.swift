import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failure that ends the command with one line on stderr and exit status 1 (2 for a bad command line).
struct BenchError: Error, CustomStringConvertible {
    var description: String
    var isUsage = false

    init(_ description: String, isUsage: Bool = false) {
        self.description = description
        self.isUsage = isUsage
    }
}

/// `--name value` options after the subcommand.
struct Options {
    private var values: [String: String] = [:]

    init(_ arguments: ArraySlice<String>) throws {
        var remaining = arguments
        while let name = remaining.popFirst() {
            guard name.hasPrefix("--"), let value = remaining.popFirst() else {
                throw BenchError("expected --name value pairs, got \(name)", isUsage: true)
            }
            values[String(name.dropFirst(2))] = value
        }
    }

    func string(_ name: String) throws -> String {
        guard let value = values[name] else { throw BenchError("missing --\(name)", isUsage: true) }
        return value
    }

    func string(_ name: String, default fallback: String) -> String { values[name] ?? fallback }

    func integer(_ name: String) throws -> Int {
        let text = try string(name)
        guard let number = Int(text) else { throw BenchError("--\(name) must be an integer, got \(text)", isUsage: true) }
        return number
    }

    func integer(_ name: String, default fallback: Int) throws -> Int {
        values[name] == nil ? fallback : try integer(name)
    }

    func double(_ name: String) throws -> Double {
        let text = try string(name)
        guard let number = Double(text) else { throw BenchError("--\(name) must be a number, got \(text)", isUsage: true) }
        return number
    }
}

/// Monotonic time in nanoseconds (CLOCK_MONOTONIC), comparable across threads of this process.
func monotonicNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

/// Sleeps until the monotonic clock reaches `deadline` (returns at once if it already has).
func sleep(untilMonotonic deadline: UInt64) {
    var time = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
    while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &time, nil) == EINTR {}
}

/// Writes one line to stderr (progress and errors; stdout carries the results).
func log(_ message: String) {
    FileHandle.standardError.write(Data("transfer-bench: \(message)\n".utf8))
}

/// The value at quantile `q` (0...1) of sorted samples, nearest-rank; nil when there are none.
func quantile(_ sorted: [Double], _ q: Double) -> Double? {
    guard !sorted.isEmpty else { return nil }
    let rank = Int((q * Double(sorted.count)).rounded(.up))
    return sorted[min(max(rank, 1), sorted.count) - 1]
}

/// Prints `object` as one line of JSON on stdout.
func printJSON(_ object: [String: Any]) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

/// Starts `count` threads running `body(index)` and waits for all of them.
func runThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    for index in 0..<count {
        group.enter()
        let thread = Thread {
            body(index)
            group.leave()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
    group.wait()
}

/// A value shared between threads, guarded by a lock.
final class Locked<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()

    init(_ value: Value) { self.value = value }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
