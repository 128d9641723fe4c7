/// Redis Cluster's key slots: CRC16 (XMODEM) of the key, or of its hash tag, modulo 16,384.
public enum RedisSlot {
    /// How many slots a cluster has.
    public static let count = 16384

    /// Every slot, `0...16383`.
    public static let all: ClosedRange<Int> = 0...(count - 1)

    /// The slot of `key`. When the key has a hash tag (the text between its first `{` and the first `}` after
    /// it, if that text is not empty), only the tag is hashed, so `{user1}.a` and `{user1}.b` share a slot.
    public static func of(key: String) -> Int {
        var key = key
        return key.withUTF8 { of(keyBytes: $0) }
    }

    /// The slot of a key given as bytes.
    public static func of(keyBytes bytes: UnsafeBufferPointer<UInt8>) -> Int {
        Int(crc16(hashedPart(of: bytes)) & UInt16(count - 1))
    }

    /// A short hash tag for each slot: `of(key: "{" + hashTag(of: s) + "}")` is `s`, so `"prefix:{\(tag)}"`
    /// names one key per slot. The tag is the smallest decimal number that lands in the slot.
    public static func hashTag(of slot: Int) -> String {
        precondition(all.contains(slot), "slot \(slot) is outside 0...16383")
        return hashTags[slot]
    }

    /// Computed once, on first use (a few hundred thousand CRCs of short strings).
    private static let hashTags: [String] = {
        var tags = [String?](repeating: nil, count: count)
        var missing = count
        var candidate = 0
        while missing > 0 {
            var text = String(candidate)
            let slot = text.withUTF8 { Int(crc16($0) & UInt16(count - 1)) }
            if tags[slot] == nil {
                tags[slot] = text
                missing -= 1
            }
            candidate += 1
        }
        return tags.map { $0! }
    }()

    /// The part of the key that is hashed: the hash tag when there is a non-empty one, otherwise all of it.
    private static func hashedPart(of bytes: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        guard let open = bytes.firstIndex(of: UInt8(ascii: "{")) else { return bytes }
        guard let close = bytes[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1 else { return bytes }
        return UnsafeBufferPointer(rebasing: bytes[(open + 1)..<close])
    }

    /// CRC-16/XMODEM: polynomial 0x1021, initial value 0, no reflection, no final XOR.
    static func crc16(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ crcTable[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
        }
        return crc
    }

    private static let crcTable: [UInt16] = (0..<256).map { index in
        var crc = UInt16(index) << 8
        for _ in 0..<8 {
            crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
        }
        return crc
    }
}
