// FoundationEssentials, not Foundation: the full Foundation would add ICU and ~45 MB to a static binary.
import FoundationEssentials
import Transfers

/// A point in time as milliseconds since the Unix epoch: what outbox scores hold, and the source of the RFC 3339
/// timestamps stored in transfers.
public struct UnixMilliseconds: Sendable, Comparable {
    public var value: Int64

    public init(_ value: Int64) {
        self.value = value
    }

    /// The current wall-clock time.
    public static func now() -> UnixMilliseconds {
        UnixMilliseconds(Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)))
    }

    /// This time plus `milliseconds`.
    public func adding(milliseconds: Int64) -> UnixMilliseconds {
        UnixMilliseconds(value + milliseconds)
    }

    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-26T08:04:39.123Z` (what `Date.ISO8601FormatStyle` with
    /// fractional seconds writes). Computed with integer arithmetic: every create and every completion writes one,
    /// and Foundation's formatter cost about 1% of the service's CPU under load (`perf`).
    public var rfc3339: String {
        let value = Int(self.value)
        let days = TimestampText.floorDivision(value, 86_400_000)
        let millisecondOfDay = value - days * 86_400_000
        let (year, month, day) = TimestampText.civilDate(daysSinceEpoch: days)
        let secondOfDay = millisecondOfDay / 1000
        return TimestampText.write { writer in
            writer.digits(year, 4); writer.character("-"); writer.digits(month, 2); writer.character("-"); writer.digits(day, 2)
            writer.character("T")
            writer.digits(secondOfDay / 3600, 2); writer.character(":"); writer.digits(secondOfDay / 60 % 60, 2)
            writer.character(":"); writer.digits(secondOfDay % 60, 2); writer.character("."); writer.digits(millisecondOfDay % 1000, 3)
            writer.character("Z")
        }
    }

    /// Parses a UTC RFC 3339 timestamp as `rfc3339` writes it (the domain's one reader of them); nil for anything
    /// else.
    public init?(rfc3339 text: String) {
        guard let milliseconds = RFC3339Timestamp.milliseconds(text) else { return nil }
        self.init(milliseconds)
    }

    public static func < (lhs: UnixMilliseconds, rhs: UnixMilliseconds) -> Bool { lhs.value < rhs.value }
}

/// The pieces of the timestamps the service writes many times a second (records, events, log lines), without a
/// formatter object or a heap allocation per field.
enum TimestampText {
    /// `value / divisor` rounded towards minus infinity (times before 1970 count back from the epoch).
    static func floorDivision(_ value: Int, _ divisor: Int) -> Int {
        value >= 0 ? value / divisor : (value - divisor + 1) / divisor
    }

    /// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's `civil_from_days`).
    static func civilDate(daysSinceEpoch days: Int) -> (year: Int, month: Int, day: Int) {
        let shifted = days + 719_468
        let era = floorDivision(shifted, 146_097)
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// The ASCII text `body` writes (at most 48 bytes), built on the stack.
    static func write(_ body: (inout Writer) -> Void) -> String {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 48) { buffer in
            var writer = Writer(buffer: buffer)
            body(&writer)
            return String(decoding: UnsafeBufferPointer(rebasing: buffer[..<writer.end]), as: UTF8.self)
        }
    }

    struct Writer {
        let buffer: UnsafeMutableBufferPointer<UInt8>
        var end = 0

        /// `value` in decimal, zero-padded to `count` digits (a wider value keeps all its digits; negative: 0).
        mutating func digits(_ value: Int, _ count: Int) {
            let value = max(value, 0)
            var divisor = 1
            for _ in 1..<count { divisor *= 10 }
            while divisor <= value / 10 { divisor *= 10 }
            while divisor > 0 {
                buffer[end] = UInt8(ascii: "0") + UInt8(value / divisor % 10)
                end += 1
                divisor /= 10
            }
        }

        mutating func character(_ ascii: Unicode.Scalar) {
            buffer[end] = UInt8(ascii: ascii)
            end += 1
        }
    }
}
