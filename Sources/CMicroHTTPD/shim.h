#pragma once
// libmicrohttpd needs the socket types declared before its header.
#include <stdarg.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <microhttpd.h>

// MHD_start_daemon is variadic and does not import into Swift; this fixed-signature helper passes
// the options a server with an externally created listen socket needs.
// The URI log callback creates the per-request context (it sees the raw URI, query included) and
// the completion callback frees it.
static inline struct MHD_Daemon *cmhd_start_daemon(
    unsigned int flags,
    MHD_socket listen_socket,
    unsigned int thread_pool_size,
    unsigned int connection_timeout_seconds,
    unsigned int connection_limit,
    MHD_AccessHandlerCallback access_handler,
    void *access_handler_context,
    MHD_RequestCompletedCallback request_completed,
    void *request_completed_context,
    void *(*uri_log)(void *context, const char *uri, struct MHD_Connection *connection),
    void *uri_log_context)
{
    return MHD_start_daemon(
        flags, 0, NULL, NULL, access_handler, access_handler_context,
        MHD_OPTION_LISTEN_SOCKET, listen_socket,
        MHD_OPTION_THREAD_POOL_SIZE, thread_pool_size,
        MHD_OPTION_CONNECTION_TIMEOUT, connection_timeout_seconds,
        MHD_OPTION_CONNECTION_LIMIT, connection_limit,
        MHD_OPTION_NOTIFY_COMPLETED, request_completed, request_completed_context,
        MHD_OPTION_URI_LOG_CALLBACK, uri_log, uri_log_context,
        MHD_OPTION_END);
}
