import Crypto

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
        return TransferID(uuidBytes: bytes)
    }

    public var description: String { rawValue }
}

extension TransferID {
    /// The namespace of derived ids (RFC 9562 name-based UUIDs): a fixed random UUID of this service.
    static let idempotencyNamespace: [UInt8] = [
        0x3f, 0x6c, 0x1e, 0x52, 0x9b, 0x0d, 0x4a, 0x7e, 0x8c, 0x21, 0x55, 0xd4, 0x90, 0x6a, 0xe3, 0x17,
    ]

    /// The id of the transfer that a create with `idempotencyKey` makes, for a client known as `scope` (empty
    /// when the API has no authentication): a version 5 (name-based, SHA-1) UUID of the two. Deriving it means
    /// the key's record and the transfer share one Redis hash slot, so one script can check the key and create
    /// the transfer atomically, and concurrent requests with one key all name the same transfer.
    public static func derived(fromIdempotencyKey idempotencyKey: String, scope: String) -> TransferID {
        var name = idempotencyNamespace
        // The scope cannot contain a newline (it is hex or empty), so scope + key is unambiguous.
        name.append(contentsOf: scope.utf8)
        name.append(UInt8(ascii: "\n"))
        name.append(contentsOf: idempotencyKey.utf8)
        return nameBased(name)
    }

    /// The version 5 (name-based, SHA-1) UUID of `name`, which starts with its namespace.
    static func nameBased(_ name: [UInt8]) -> TransferID {
        var bytes = Array(Insecure.SHA1.hash(data: name).prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x50  // version 5
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 9562 variant
        return TransferID(uuidBytes: bytes)
    }

    /// The canonical text of 16 UUID bytes.
    init(uuidBytes bytes: [UInt8]) {
        let hexDigits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(36)
        for (index, byte) in bytes.enumerated() {
            if index == 4 || index == 6 || index == 8 || index == 10 { text.append(UInt8(ascii: "-")) }
            text.append(hexDigits[Int(byte >> 4)])
            text.append(hexDigits[Int(byte & 0x0F)])
        }
        rawValue = String(decoding: text, as: UTF8.self)
    }
}
