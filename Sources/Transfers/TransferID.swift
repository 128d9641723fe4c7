/// A transfer's id: a UUID in canonical lowercase form (`8-4-4-4-12` hex digits).
public struct TransferID: Sendable, Hashable, CustomStringConvertible {
    /// The canonical lowercase text.
    public let rawValue: String

    /// Accepts any UUID in `8-4-4-4-12` form, either case; nil for anything else.
    public init?(_ text: String) {
        let bytes = Array(text.utf8)
        guard bytes.count == 36 else { return nil }
        var lowered = [UInt8]()
        lowered.reserveCapacity(36)
        for (index, byte) in bytes.enumerated() {
            if index == 8 || index == 13 || index == 18 || index == 23 {
                guard byte == UInt8(ascii: "-") else { return nil }
                lowered.append(byte)
                continue
            }
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"): lowered.append(byte)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): lowered.append(byte + 0x20)
            default: return nil
            }
        }
        rawValue = String(decoding: lowered, as: UTF8.self)
    }

    /// A new random version 4 UUID.
    public static func random() -> TransferID {
        var generator = SystemRandomNumberGenerator()
        return random(using: &generator)
    }

    /// A new version 4 UUID from `generator`.
    public static func random(using generator: inout some RandomNumberGenerator) -> TransferID {
        // Two 64-bit draws rather than sixteen byte draws: the system generator makes a syscall per draw.
        var bytes = [UInt8]()
        bytes.reserveCapacity(16)
        for word in [generator.next(), generator.next()] as [UInt64] {
            withUnsafeBytes(of: word) { bytes.append(contentsOf: $0) }
        }
        bytes[6] = (bytes[6] & 0x0F) | 0x40  // version 4
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 9562 variant
        let hexDigits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(36)
        for (index, byte) in bytes.enumerated() {
            if index == 4 || index == 6 || index == 8 || index == 10 { text.append(UInt8(ascii: "-")) }
            text.append(hexDigits[Int(byte >> 4)])
            text.append(hexDigits[Int(byte & 0x0F)])
        }
        return TransferID(String(decoding: text, as: UTF8.self))!
    }

    public var description: String { rawValue }
}
