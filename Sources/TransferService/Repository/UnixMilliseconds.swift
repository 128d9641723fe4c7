// FoundationEssentials, not Foundation: the full Foundation would add ICU and ~45 MB to a static binary.
import FoundationEssentials

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

    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-26T08:04:39.123Z`.
    public var rfc3339: String {
        let date = Date(timeIntervalSince1970: Double(value) / 1000)
        return date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt))
    }

    /// Parses an RFC 3339 timestamp as `rfc3339` writes it; nil for anything else.
    public init?(rfc3339 text: String) {
        guard let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt).parse(text) else { return nil }
        self.init(Int64((date.timeIntervalSince1970 * 1000).rounded()))
    }

    public static func < (lhs: UnixMilliseconds, rhs: UnixMilliseconds) -> Bool { lhs.value < rhs.value }
}
