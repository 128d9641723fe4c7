import Foundation
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Plain TCP connections to a loopback port that a test holds open and feeds by hand: idle sockets, slowloris.
final class RawConnection {
    private var descriptor: Int32

    /// Connects (blocking, loopback only); nil if the connection could not be made.
    init?(port: Int) {
        guard let socket = connectToLoopback(port: port) else { return nil }
        descriptor = socket
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
    }

    /// Sends bytes; false once the server has closed or reset the connection.
    func send(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }

    /// What the server did with the connection so far, without waiting.
    enum State: Equatable {
        /// Still open, nothing received.
        case open
        /// The server answered (the first bytes received, e.g. a status line).
        case answered(String)
        /// The server closed or reset it without an answer.
        case closed
    }

    /// Peeks at the connection without blocking.
    func state() -> State {
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT) | Int32(MSG_PEEK)) }
        if count > 0 {
            let text = String(decoding: buffer[..<count], as: UTF8.self)
            return .answered(String(text.prefix { !$0.isNewline }))
        }
        if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return .open }
        return .closed
    }
}
