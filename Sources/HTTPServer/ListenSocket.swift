#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A bound, listening, non-blocking TCP socket, created here rather than by libmicrohttpd so that
/// host names resolve, bind errors are reported precisely and port 0 can be read back.
struct ListenSocket {
    let descriptor: Int32
    let port: Int

    static func open(host: String, port: Int, backlog: Int) throws(HTTPServerError) -> ListenSocket {
        guard (0...65535).contains(port) else {
            throw HTTPServerError(message: "invalid port \(port)")
        }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var addresses: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &addresses)
        guard status == 0, let first = addresses else {
            throw HTTPServerError(message: "cannot resolve \(host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(addresses) }

        // Try every resolved address; report the last failure if none binds.
        var lastError = HTTPServerError(message: "no address for \(host)")
        var candidate: UnsafeMutablePointer<addrinfo>? = first
        while let address = candidate {
            candidate = address.pointee.ai_next
            do {
                return try open(address.pointee, host: host, port: port, backlog: backlog)
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    private static func open(
        _ address: addrinfo, host: String, port: Int, backlog: Int
    ) throws(HTTPServerError) -> ListenSocket {
        let type = address.ai_socktype | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        let descriptor = socket(address.ai_family, type, address.ai_protocol)
        guard descriptor >= 0 else {
            throw systemError("socket() for \(host):\(port)")
        }
        var enabled: Int32 = 1
        // SO_REUSEADDR only skips TIME_WAIT leftovers; Linux still refuses a port another socket listens on.
        _ = setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &enabled, socklen_t(MemoryLayout<Int32>.size))
        guard bind(descriptor, address.ai_addr, address.ai_addrlen) == 0 else {
            let error = systemError("cannot bind \(host):\(port)")
            close(descriptor)
            throw error
        }
        guard listen(descriptor, Int32(clamping: backlog)) == 0 else {
            let error = systemError("cannot listen on \(host):\(port)")
            close(descriptor)
            throw error
        }
        guard let boundPort = localPort(of: descriptor) else {
            let error = systemError("getsockname() for \(host):\(port)")
            close(descriptor)
            throw error
        }
        return ListenSocket(descriptor: descriptor, port: boundPort)
    }

    /// The local port a socket is bound to, or nil if it is not an open IPv4/IPv6 socket.
    static func localPort(of descriptor: Int32) -> Int? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard result == 0 else { return nil }
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
            }
        case AF_INET6:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
            }
        default:
            return nil
        }
    }

    private static func systemError(_ what: String) -> HTTPServerError {
        let code = errno
        return HTTPServerError(message: "\(what): \(String(cString: strerror(code))) (errno \(code))")
    }
}
