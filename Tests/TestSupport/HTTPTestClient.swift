#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A response read by HTTPTestClient; header names lowercased.
public struct HTTPTestResponse: Sendable {
    /// The status code.
    public var status: Int
    /// Header fields by lowercased name; repeated fields are joined with ", ".
    public var headers: [String: String]
    /// The body bytes (de-chunked).
    public var body: [UInt8]
    /// The body decoded as UTF-8.
    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    /// Creates a response.
    public init(status: Int, headers: [String: String], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// Why HTTPTestClient could not get a response.
public struct HTTPTestClientError: Error, Sendable, CustomStringConvertible {
    /// What failed.
    public var message: String
    /// The message.
    public var description: String { message }
}

/// A minimal blocking HTTP/1.1 client over POSIX sockets for tests: one connection per request ("Connection: close"), safe to use from many threads at once.
public struct HTTPTestClient: Sendable {
    /// The server's address.
    public var host: String
    /// The server's port.
    public var port: Int
    /// The most one request may take, connect to last byte.
    public var timeout: Duration

    /// Creates a client; nothing connects until a request is sent.
    public init(host: String = "127.0.0.1", port: Int, timeout: Duration = .seconds(10)) {
        self.host = host
        self.port = port
        self.timeout = timeout
    }

    /// Sends a request with Host, Content-Length (when `body` is not nil) and "Connection: close" added.
    public func send(
        method: String, path: String, headers: [(String, String)] = [], body: [UInt8]? = nil
    ) throws -> HTTPTestResponse {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\n"
        for (name, value) in headers {
            head += "\(name): \(value)\r\n"
        }
        if let body {
            head += "Content-Length: \(body.count)\r\n"
        }
        head += "Connection: close\r\n\r\n"
        return try exchange(Array(head.utf8) + (body ?? []), expectsBody: method != "HEAD")
    }

    /// Sends a GET request.
    public func get(_ path: String, headers: [(String, String)] = []) throws -> HTTPTestResponse {
        try send(method: "GET", path: path, headers: headers)
    }

    /// Sends a POST request with a JSON body and "Content-Type: application/json".
    public func postJSON(_ path: String, _ json: String, headers: [(String, String)] = []) throws -> HTTPTestResponse {
        try send(
            method: "POST", path: path, headers: [("Content-Type", "application/json")] + headers,
            body: Array(json.utf8))
    }

    /// Writes raw request bytes (for malformed, chunked or oversized requests) and reads the response; a write that fails because the server already answered and closed must still return that response.
    public func sendRaw(_ request: [UInt8]) throws -> HTTPTestResponse {
        try exchange(request, expectsBody: true)
    }

    /// Writes and reads at the same time (poll), so a server that answers before reading the whole
    /// request, then closes, never leaves us blocked in write() or losing its answer.
    private func exchange(_ request: [UInt8], expectsBody: Bool) throws -> HTTPTestResponse {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        let socket = try connect(deadline: deadline)
        defer { close(socket) }

        var written = 0
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            if let response = try ResponseParser.parse(received, atEOF: false, expectsBody: expectsBody) {
                return response
            }
            let wantsWrite = written < request.count
            var descriptor = pollfd(
                fd: socket, events: Int16(POLLIN) | (wantsWrite ? Int16(POLLOUT) : 0), revents: 0)
            let ready = poll(&descriptor, 1, try remainingMilliseconds(until: deadline, clock: clock))
            if ready < 0 {
                if errno == EINTR { continue }
                throw systemError("poll")
            }
            if ready == 0 { continue }  // remainingMilliseconds throws once the deadline passes
            if descriptor.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
                if count > 0 {
                    received.append(contentsOf: buffer[0..<count])
                    continue
                }
                if count < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                // EOF, or a reset after the server answered: whatever arrived is the answer.
                let resetError = count < 0 ? errno : 0
                if let response = try ResponseParser.parse(received, atEOF: true, expectsBody: expectsBody) {
                    return response
                }
                if resetError != 0 {
                    errno = resetError
                    throw systemError("recv after \(received.count) bytes")
                }
                throw HTTPTestClientError(message: "connection closed after \(received.count) bytes, no complete response")
            }
            if wantsWrite && descriptor.revents & Int16(POLLOUT) != 0 {
                let count = request.withUnsafeBytes {
                    Glibc.send(socket, $0.baseAddress! + written, $0.count - written, Int32(MSG_NOSIGNAL))
                }
                if count >= 0 {
                    written += count
                } else if errno == EPIPE || errno == ECONNRESET {
                    written = request.count  // the server stopped reading; its answer may already be here
                } else if errno != EINTR && errno != EAGAIN {
                    throw systemError("send")
                }
            }
        }
    }

    private func connect(deadline: ContinuousClock.Instant) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var addresses: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &addresses)
        guard status == 0, let address = addresses else {
            throw HTTPTestClientError(message: "cannot resolve \(host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(addresses) }
        let socket = Glibc.socket(
            address.pointee.ai_family,
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard socket >= 0 else { throw systemError("socket") }
        if Glibc.connect(socket, address.pointee.ai_addr, address.pointee.ai_addrlen) != 0 {
            guard errno == EINPROGRESS else {
                let error = systemError("connect to \(host):\(port)")
                close(socket)
                throw error
            }
            var descriptor = pollfd(fd: socket, events: Int16(POLLOUT), revents: 0)
            do {
                let clock = ContinuousClock()
                while poll(&descriptor, 1, try remainingMilliseconds(until: deadline, clock: clock)) <= 0 {}
            } catch {
                close(socket)
                throw error
            }
            var socketError: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(socket, SOL_SOCKET, SO_ERROR, &socketError, &length)
            if socketError != 0 {
                close(socket)
                errno = socketError
                throw systemError("connect to \(host):\(port)")
            }
        }
        return socket
    }

    private func remainingMilliseconds(until deadline: ContinuousClock.Instant, clock: ContinuousClock) throws -> Int32 {
        let remaining = clock.now.duration(to: deadline)
        guard remaining > .zero else {
            throw HTTPTestClientError(message: "no response from \(host):\(port) within \(timeout)")
        }
        let components = remaining.components
        return Int32(clamping: components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 + 1)
    }

    private func systemError(_ what: String) -> HTTPTestClientError {
        let code = errno
        return HTTPTestClientError(message: "\(what): \(String(cString: strerror(code))) (errno \(code))")
    }
}

/// Parses one HTTP/1.1 response from the bytes received so far.
enum ResponseParser {
    /// The response, or nil if more bytes are needed. At EOF a response without a length ends there.
    static func parse(_ bytes: [UInt8], atEOF: Bool, expectsBody: Bool) throws -> HTTPTestResponse? {
        var start = 0
        while true {
            guard let headEnd = find([13, 10, 13, 10], in: bytes, from: start) else {
                if atEOF && !bytes.isEmpty {
                    throw HTTPTestClientError(message: "incomplete response head: \(String(decoding: bytes, as: UTF8.self))")
                }
                return nil
            }
            let lines = String(decoding: bytes[start..<headEnd], as: UTF8.self).split(separator: "\r\n", omittingEmptySubsequences: false)
            let statusParts = lines[0].split(separator: " ", maxSplits: 2)
            guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/"), let status = Int(statusParts[1]) else {
                throw HTTPTestClientError(message: "bad status line: \(lines[0])")
            }
            var headers: [String: String] = [:]
            for line in lines.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                let name = line[..<colon].lowercased()
                let value = line[line.index(after: colon)...].trimmingSpaces()
                headers[name] = headers[name].map { "\($0), \(value)" } ?? value
            }
            let bodyStart = headEnd + 4
            if (100..<200).contains(status) && status != 101 {
                start = bodyStart  // an interim response (100 Continue); the real one follows
                continue
            }
            if !expectsBody || status == 204 || status == 304 {
                return HTTPTestResponse(status: status, headers: headers, body: [])
            }
            if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
                guard let body = try dechunk(bytes, from: bodyStart) else {
                    if atEOF { throw HTTPTestClientError(message: "connection closed inside a chunked body") }
                    return nil
                }
                return HTTPTestResponse(status: status, headers: headers, body: body)
            }
            if let lengthText = headers["content-length"] {
                guard let length = Int(lengthText) else {
                    throw HTTPTestClientError(message: "bad Content-Length: \(lengthText)")
                }
                if bytes.count - bodyStart >= length {
                    return HTTPTestResponse(status: status, headers: headers, body: Array(bytes[bodyStart..<bodyStart + length]))
                }
                if atEOF {
                    throw HTTPTestClientError(message: "connection closed after \(bytes.count - bodyStart) of \(length) body bytes")
                }
                return nil
            }
            return atEOF ? HTTPTestResponse(status: status, headers: headers, body: Array(bytes[bodyStart...])) : nil
        }
    }

    private static func dechunk(_ bytes: [UInt8], from start: Int) throws -> [UInt8]? {
        var body: [UInt8] = []
        var position = start
        while true {
            guard let lineEnd = find([13, 10], in: bytes, from: position) else { return nil }
            let sizeText = String(decoding: bytes[position..<lineEnd], as: UTF8.self)
                .split(separator: ";", maxSplits: 1).first.map(String.init)?.trimmingSpaces() ?? ""
            guard let size = Int(sizeText, radix: 16) else {
                throw HTTPTestClientError(message: "bad chunk size: \(sizeText)")
            }
            let dataStart = lineEnd + 2
            if size == 0 {
                // Trailers, if any, end with an empty line.
                return find([13, 10, 13, 10], in: bytes, from: lineEnd) != nil || bytes.count >= dataStart + 2 ? body : nil
            }
            guard bytes.count >= dataStart + size + 2 else { return nil }
            body.append(contentsOf: bytes[dataStart..<dataStart + size])
            position = dataStart + size + 2
        }
    }

    private static func find(_ pattern: [UInt8], in bytes: [UInt8], from start: Int) -> Int? {
        guard bytes.count >= pattern.count, start <= bytes.count - pattern.count else { return nil }
        for index in start...(bytes.count - pattern.count) where bytes[index] == pattern[0] {
            if bytes[index..<index + pattern.count].elementsEqual(pattern) { return index }
        }
        return nil
    }
}

extension StringProtocol {
    fileprivate func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
