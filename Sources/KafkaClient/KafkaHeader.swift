import CRdKafka

/// A Kafka message header.
public struct KafkaHeader: Sendable, Equatable {
    /// The header name.
    public var key: String
    /// The header value bytes (a null value on the wire reads back as empty).
    public var value: [UInt8]

    /// Creates a header.
    public init(key: String, value: [UInt8]) {
        self.key = key
        self.value = value
    }
}

extension KafkaHeader {
    /// Builds an rd_kafka_headers_t holding copies of `headers`; the caller owns the result.
    static func makeCHeaders(_ headers: [KafkaHeader]) -> OpaquePointer {
        let list = rd_kafka_headers_new(headers.count)!
        for header in headers {
            header.value.withUnsafeBytes { bytes in
                // Ignoring the result is safe: header_add only fails on a read-only list, and this one is new.
                _ = rd_kafka_header_add(list, header.key, -1, bytes.baseAddress, bytes.count)
            }
        }
        return list
    }

    /// Copies every header of a consumed message (empty when it has none).
    static func copyAll(from message: UnsafePointer<rd_kafka_message_t>) -> [KafkaHeader] {
        var list: OpaquePointer?
        // The list stays owned by the message, so it is read, not destroyed.
        guard rd_kafka_message_headers(message, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return [] }
        var headers: [KafkaHeader] = []
        var index = 0
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(list, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
            headers.append(KafkaHeader(key: name.map { String(cString: $0) } ?? "", value: bytes))
            index += 1
        }
        return headers
    }
}
