#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A blocking TCP connection to 127.0.0.1 with a read buffer; used from one thread at a time.
final class LoopbackSocket {
    private let descriptor: Int32
    private var buffer: [UInt8] = []
    private var readIndex = 0

    /// Connects to 127.0.0.1:`port`; reads and writes give up after `timeoutSeconds`.
    init(port: Int, timeoutSeconds: Int = 30) throws {
        #if canImport(Glibc)
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        descriptor = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard descriptor >= 0 else { throw BenchError("socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            let code = errno
            close(descriptor)
            throw BenchError("connect to 127.0.0.1:\(port): errno \(code)")
        }
        var noDelay: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, socklen_t(MemoryLayout<Int32>.size))
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit {
        close(descriptor)
    }

    /// Writes all of `bytes`.
    func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            guard written > 0 else { throw BenchError("send: errno \(errno)") }
            offset += written
        }
    }

    /// Reads more bytes into the buffer; throws on EOF, error or timeout.
    private func fill() throws {
        if readIndex > 0 && readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            readIndex = 0
        } else if readIndex > 65_536 {
            buffer.removeFirst(readIndex)
            readIndex = 0
        }
        var chunk = [UInt8](repeating: 0, count: 65_536)
        let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { throw BenchError(count == 0 ? "connection closed by peer" : "recv: errno \(errno)") }
        buffer.append(contentsOf: chunk[0..<count])
    }

    /// The next line without its CRLF.
    func readLine() throws -> [UInt8] {
        while true {
            if let newline = buffer[readIndex...].firstIndex(of: UInt8(ascii: "\n")) {
                var end = newline
                if end > readIndex && buffer[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                let line = Array(buffer[readIndex..<end])
                readIndex = newline + 1
                return line
            }
            try fill()
        }
    }

    /// Exactly `count` bytes.
    func readBytes(_ count: Int) throws -> [UInt8] {
        while buffer.count - readIndex < count { try fill() }
        let bytes = Array(buffer[readIndex..<(readIndex + count)])
        readIndex += count
        return bytes
    }
}

/// One keep-alive HTTP/1.1 connection that sends a request and reads its (Content-Length framed) response.
final class KeepAliveHTTPConnection {
    private let socket: LoopbackSocket
    private let port: Int

    init(port: Int) throws {
        self.port = port
        socket = try LoopbackSocket(port: port)
    }

    /// Sends a request and returns the status, the Location header (if any) and the body.
    func send(method: String, path: String, jsonBody: [UInt8]?) throws -> (status: Int, location: String?, body: [UInt8]) {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n"
        if let jsonBody { head += "Content-Type: application/json\r\nContent-Length: \(jsonBody.count)\r\n" }
        head += "\r\n"
        try socket.write(Array(head.utf8) + (jsonBody ?? []))

        let statusLine = String(decoding: try socket.readLine(), as: UTF8.self)
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw BenchError("bad status line: \(statusLine)")
        }
        var contentLength = 0
        var location: String?
        while true {
            let line = try socket.readLine()
            if line.isEmpty { break }
            let text = String(decoding: line, as: UTF8.self)
            guard let colon = text.firstIndex(of: ":") else { continue }
            let name = text[..<colon].lowercased()
            let value = String(text[text.index(after: colon)...].drop { $0 == " " || $0 == "\t" })
            if name == "content-length" { contentLength = Int(value) ?? 0 }
            if name == "location" { location = value }
            if name == "transfer-encoding" { throw BenchError("chunked responses are not expected") }
        }
        return (status, location, try socket.readBytes(contentLength))
    }
}

/// Reads Redis pub/sub pushes (RESP2) from a connection subscribed with PSUBSCRIBE.
final class RedisPushReader {
    private let socket: LoopbackSocket

    /// Connects and subscribes to `pattern`; waits for the subscription's confirmation.
    init(port: Int, pattern: String) throws {
        socket = try LoopbackSocket(port: port, timeoutSeconds: 1)
        let command = ["PSUBSCRIBE", pattern]
        var text = "*\(command.count)\r\n"
        for part in command { text += "$\(part.utf8.count)\r\n\(part)\r\n" }
        try socket.write(Array(text.utf8))
        var confirmation: [[UInt8]] = []
        while confirmation.isEmpty { confirmation = try readArray() ?? [] }
        guard String(decoding: confirmation[0], as: UTF8.self) == "psubscribe" else {
            throw BenchError("PSUBSCRIBE answered \(confirmation.map { String(decoding: $0, as: UTF8.self) })")
        }
    }

    /// The next push as its elements (integers as their text), or nil when none arrived within a second.
    func readArray() throws -> [[UInt8]]? {
        let header: [UInt8]
        do {
            header = try socket.readLine()
        } catch let error as BenchError where error.description.hasPrefix("recv: errno \(EAGAIN)") {
            return nil
        }
        guard header.first == UInt8(ascii: "*"), let count = Int(String(decoding: header.dropFirst(), as: UTF8.self)) else {
            throw BenchError("unexpected push: \(String(decoding: header, as: UTF8.self))")
        }
        var elements: [[UInt8]] = []
        for _ in 0..<count {
            let line = try socket.readLine()
            switch line.first {
            case UInt8(ascii: "$"):
                let length = Int(String(decoding: line.dropFirst(), as: UTF8.self)) ?? 0
                elements.append(try socket.readBytes(length))
                _ = try socket.readLine()
            case UInt8(ascii: ":"):
                elements.append(Array(line.dropFirst()))
            default:
                throw BenchError("unexpected push element: \(String(decoding: line, as: UTF8.self))")
            }
        }
        return elements
    }
}
