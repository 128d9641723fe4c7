#if canImport(Glibc)
import Glibc
#endif

/// `transfer-service healthcheck`: asks the local service's `/healthz` and exits 0 when it answers 200.
/// For container HEALTHCHECKs, so the runtime image needs no curl. A plain socket keeps it free of libcurl.
enum HealthProbe {
    static func run(port: Int) -> Int32 {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { return 1 }
        defer { close(socket) }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { return 1 }
        let request = Array("GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8)
        guard send(socket, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else { return 1 }
        var buffer = [UInt8](repeating: 0, count: 64)
        let received = recv(socket, &buffer, buffer.count, 0)
        guard received > 0 else { return 1 }
        let statusLine = String(decoding: buffer[..<received], as: UTF8.self)
        return statusLine.hasPrefix("HTTP/1.1 200") ? 0 : 1
    }
}
