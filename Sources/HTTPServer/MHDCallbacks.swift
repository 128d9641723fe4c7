import CMicroHTTPD

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The C entry points libmicrohttpd calls. They are plain functions (capturing closures cannot be C
// function pointers); the dispatcher arrives through the `void*` argument, the per-request context
// through `con_cls`.

/// MHD_OPTION_URI_LOG_CALLBACK: called once per request with the raw URI; its result becomes `*con_cls`.
func uriLogCallback(
    dispatcherPointer: UnsafeMutableRawPointer?, uri: UnsafePointer<CChar>?, connection: OpaquePointer?
) -> UnsafeMutableRawPointer? {
    guard let dispatcherPointer else { return nil }
    let dispatcher = Unmanaged<RequestDispatcher>.fromOpaque(dispatcherPointer).takeUnretainedValue()
    var query: String?
    if let uri, let questionMark = strchr(uri, Int32(UInt8(ascii: "?"))) {
        query = String(cString: questionMark + 1)
    }
    dispatcher.activeRequests.add(1, ordering: .relaxed)
    return Unmanaged.passRetained(RequestContext(query: query)).toOpaque()
}

/// MHD_AccessHandlerCallback.
func accessHandlerCallback(
    dispatcherPointer: UnsafeMutableRawPointer?,
    connection: OpaquePointer?,
    url: UnsafePointer<CChar>?,
    method: UnsafePointer<CChar>?,
    version: UnsafePointer<CChar>?,
    uploadData: UnsafePointer<CChar>?,
    uploadDataSize: UnsafeMutablePointer<Int>?,
    contextPointer: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
) -> MHD_Result {
    guard let dispatcherPointer, let connection, let url, let method, let uploadDataSize,
        let contextPointer, let rawContext = contextPointer.pointee
    else { return .NO }
    let dispatcher = Unmanaged<RequestDispatcher>.fromOpaque(dispatcherPointer).takeUnretainedValue()
    let context = Unmanaged<RequestContext>.fromOpaque(rawContext).takeUnretainedValue()
    return dispatcher.handle(
        connection: connection, url: url, method: method,
        uploadData: uploadData, uploadDataSize: uploadDataSize, context: context)
}

/// MHD_OPTION_NOTIFY_COMPLETED: releases the context created by uriLogCallback.
func requestCompletedCallback(
    dispatcherPointer: UnsafeMutableRawPointer?,
    connection: OpaquePointer?,
    contextPointer: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
    termination: MHD_RequestTerminationCode
) {
    guard let contextPointer, let rawContext = contextPointer.pointee else { return }
    contextPointer.pointee = nil
    let context = Unmanaged<RequestContext>.fromOpaque(rawContext).takeRetainedValue()
    if let pending = context.pendingReply {
        pending.registry?.remove(pending)
    }
    if let dispatcherPointer {
        let dispatcher = Unmanaged<RequestDispatcher>.fromOpaque(dispatcherPointer).takeUnretainedValue()
        dispatcher.activeRequests.subtract(1, ordering: .relaxed)
    }
}
