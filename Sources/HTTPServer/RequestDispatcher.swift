import CMicroHTTPD
import Synchronization

/// What libmicrohttpd's callbacks reach through their `void*` argument: the responder, the limits and
/// the counters `HTTPServer.stop()` drains on. Immutable apart from atomics, so shared freely by worker threads.
final class RequestDispatcher: Sendable {
    let responder: any HTTPResponder
    let maxBodySize: Int
    let oversizedBodyDrainLimit: Int
    let requiresContentLength: Bool
    /// Requests whose context exists (URI seen) and whose completion MHD has not yet reported.
    let activeRequests = Atomic<Int>(0)
    /// Set by stop(): responses then carry "Connection: close" so keep-alive clients go away.
    let isDraining = Atomic<Bool>(false)
    /// Set by stop() once the drain timeout passed: requests still waiting for their reply are closed unanswered,
    /// since MHD must not be stopped with suspended connections.
    let isAbandoningSuspended = Atomic<Bool>(false)
    /// Requests whose connection is suspended while their reply is pending, per worker thread.
    let suspendedRequests = SuspendedRequestRegistry()
    /// Tests only: runs between suspending the connection and publishing that, to force a reply into that window.
    let afterSuspending: (@Sendable () -> Void)?

    init(
        responder: any HTTPResponder, maxBodySize: Int, oversizedBodyDrainLimit: Int, requiresContentLength: Bool,
        afterSuspending: (@Sendable () -> Void)? = nil
    ) {
        self.responder = responder
        self.afterSuspending = afterSuspending
        self.requiresContentLength = requiresContentLength
        self.maxBodySize = maxBodySize
        self.oversizedBodyDrainLimit = oversizedBodyDrainLimit
    }

    /// One access-handler call; see MHD_AccessHandlerCallback for the protocol (first call: headers only,
    /// then one call per body piece, then a final call with no data, where the response is queued).
    func handle(
        connection: OpaquePointer,
        url: UnsafePointer<CChar>,
        method: UnsafePointer<CChar>,
        uploadData: UnsafePointer<CChar>?,
        uploadDataSize: UnsafeMutablePointer<Int>,
        context: RequestContext
    ) -> MHD_Result {
        if let pending = context.pendingReply {
            // Called again after the connection was resumed: queue the reply that arrived meanwhile.
            guard let outcome = pending.takeOutcome() else { return .YES }
            pending.registry?.remove(pending)
            return queue(outcome, on: connection)
        }
        guard var request = context.request else {
            return handleHead(connection: connection, url: url, method: method, context: context)
        }
        let pieceSize = uploadDataSize.pointee
        if pieceSize > 0 {
            uploadDataSize.pointee = 0  // every piece is consumed, whether kept or dropped
            if context.isRejected { return .YES }
            if context.discardedBytes > 0 || context.body.count + pieceSize > maxBodySize {
                return discard(pieceSize, context: context)
            }
            guard let uploadData else { return .NO }
            uploadData.withMemoryRebound(to: UInt8.self, capacity: pieceSize) {
                context.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: pieceSize))
            }
            return .YES
        }
        if context.isRejected { return .YES }
        if context.discardedBytes > 0 {
            return reject(request, .bodyTooLarge(limit: maxBodySize), connection: connection, context: context)
        }
        // Move the body out so the request holds the only reference (no copy on later mutation).
        request.body = context.body
        context.body = []
        context.request = nil
        let pending = PendingReply(connection: connection)
        context.pendingReply = pending
        responder.respond(to: request, reply: HTTPReply(pending))
        if let outcome = pending.takeAnswerWithoutSuspending() {
            return queue(outcome, on: connection)  // answered synchronously: no suspension
        }
        return suspend(pending, connection: connection)
    }

    /// Takes the connection out of MHD's event loop until the reply arrives, so this worker serves other
    /// connections meanwhile. Registered first, so that a stop() giving up on waiting sees it (see stop()).
    private func suspend(_ pending: PendingReply, connection: OpaquePointer) -> MHD_Result {
        let shard = suspendedRequests.shardForCurrentThread()
        shard.insert(pending)
        if isAbandoningSuspended.load(ordering: .sequentiallyConsistent) {
            pending.deliver(.close)
        }
        if let outcome = pending.takeAnswerWithoutSuspending() {
            shard.remove(pending)
            return queue(outcome, on: connection)
        }
        MHD_suspend_connection(connection)
        afterSuspending?()
        // False: the reply came meanwhile and the connection was resumed at once; either way MHD calls the
        // access handler again once resumed, and the first branch of handle() queues the reply.
        _ = pending.publishSuspension()
        return .YES
    }

    private func queue(_ outcome: PendingReply.Outcome, on connection: OpaquePointer) -> MHD_Result {
        switch outcome {
        case .response(let response): queue(response, on: connection, forceClose: false)
        case .close: .NO  // MHD closes the connection
        }
    }

    /// The first call: build the request head; reject an announced oversized body before reading any of it.
    private func handleHead(
        connection: OpaquePointer,
        url: UnsafePointer<CChar>,
        method: UnsafePointer<CChar>,
        context: RequestContext
    ) -> MHD_Result {
        let request = HTTPRequest(
            method: String(cString: method),
            path: String(cString: url),
            query: context.query,
            headers: Self.requestHeaders(of: connection),
            body: []
        )
        context.request = request
        // Two different lengths leave the body's end ambiguous (request smuggling behind a proxy that reads the
        // other one): refused, and the connection closed (RFC 9112 6.3).
        if Set(request.headers.values(forName: "Content-Length")).count > 1 {
            return reject(request, .conflictingContentLength, connection: connection, context: context)
        }
        if let lengthText = request.headers["Content-Length"], let length = Int(lengthText), length > 0 {
            if length > maxBodySize {
                return reject(request, .bodyTooLarge(limit: maxBodySize), connection: connection, context: context)
            }
            context.body.reserveCapacity(length)
        } else if requiresContentLength, request.headers["Transfer-Encoding"] != nil {
            return reject(request, .lengthRequired, connection: connection, context: context)
        }
        return .YES
    }

    /// A body without a usable Content-Length (chunked) grew past the limit. libmicrohttpd 0.9.75 refuses
    /// MHD_queue_response until the whole request has arrived, so the rejection cannot be sent mid-upload:
    /// read and drop up to `oversizedBodyDrainLimit` more bytes so a body that ends soon still gets its
    /// answer, and past that return MHD_NO, which makes MHD close the connection without reading the rest.
    private func discard(_ pieceSize: Int, context: RequestContext) -> MHD_Result {
        if context.discardedBytes == 0 {
            context.body = []  // free the kept part now
        }
        context.discardedBytes += pieceSize
        return context.discardedBytes <= oversizedBodyDrainLimit ? .YES : .NO
    }

    private func reject(
        _ request: HTTPRequest, _ rejection: HTTPRequestRejection, connection: OpaquePointer, context: RequestContext
    ) -> MHD_Result {
        context.isRejected = true
        context.body = []
        let response = responder.respond(to: rejection, for: request)
        return queue(response, on: connection, forceClose: true)
    }

    private func queue(_ response: HTTPResponse, on connection: OpaquePointer, forceClose: Bool) -> MHD_Result {
        let created = response.body.withUnsafeBytes { bytes in
            // MUST_COPY: the Swift array's storage does not outlive this call.
            MHD_create_response_from_buffer(
                bytes.count, UnsafeMutableRawPointer(mutating: bytes.baseAddress), .RESPMEM_MUST_COPY)
        }
        guard let mhdResponse = created else { return .NO }
        defer { MHD_destroy_response(mhdResponse) }  // MHD keeps its own reference once queued
        for field in response.headers {
            // MHD refuses the headers it manages itself (Content-Length, ...); that is the documented behaviour.
            _ = MHD_add_response_header(mhdResponse, field.name, field.value)
        }
        if forceClose || isDraining.load(ordering: .relaxed) {
            _ = MHD_add_response_header(mhdResponse, "Connection", "close")
        }
        let status = UInt32(clamping: max(response.status, 0))
        return MHD_queue_response(connection, status, mhdResponse)
    }

    private static func requestHeaders(of connection: OpaquePointer) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.reserveCapacity(Int(MHD_get_connection_values_n(connection, .HEADER_KIND, nil, nil)))
        withUnsafeMutablePointer(to: &headers) { headersPointer in
            _ = MHD_get_connection_values_n(connection, .HEADER_KIND, { target, _, name, nameLength, value, valueLength in
                guard let target, let name else { return .YES }
                let headers = target.assumingMemoryBound(to: HTTPHeaders.self)
                // A field value has no leading or trailing whitespace (RFC 9110 5.5); libmicrohttpd drops only the
                // leading, so "key " and "key" would otherwise be two idempotency keys or tokens.
                var length = valueLength
                if let value {
                    while length > 0, value[length - 1] == 0x20 || value[length - 1] == 0x09 { length -= 1 }
                }
                headers.pointee.add(
                    name: decodeUTF8(name, nameLength),
                    value: value.map { decodeUTF8($0, length) } ?? ""
                )
                return .YES
            }, headersPointer)
        }
        return headers
    }
}

/// Per-request state, created when MHD sees the URI and released when MHD reports completion.
/// Touched only by the worker thread that owns the connection, so it needs no lock (the reply handoff, which other
/// threads touch, is in `PendingReply`).
final class RequestContext {
    /// The raw query, taken from the URI before MHD splits and decodes it.
    let query: String?
    /// The request head, set on the first access-handler call.
    var request: HTTPRequest?
    var body: [UInt8] = []
    /// The rejection was queued on the first call (announced oversized body, or no Content-Length when required).
    var isRejected = false
    /// Bytes dropped since a body of unknown length passed the limit; nonzero means "reject at the end".
    var discardedBytes = 0
    /// Set when the request was handed to the responder.
    var pendingReply: PendingReply?

    init(query: String?) {
        self.query = query
    }
}

/// Decodes `length` bytes as UTF-8, repairing invalid sequences.
func decodeUTF8(_ pointer: UnsafePointer<CChar>, _ length: Int) -> String {
    pointer.withMemoryRebound(to: UInt8.self, capacity: length) {
        String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
    }
}
