import Foundation

/// A point in time as milliseconds since the Unix epoch (what the outbox scores hold).
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

    public static func < (lhs: UnixMilliseconds, rhs: UnixMilliseconds) -> Bool { lhs.value < rhs.value }
}
