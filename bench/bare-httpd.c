/*
 * The HTTP ceiling for scripts/bench: libmicrohttpd alone, set up like the service's HTTPServer (internal thread
 * pool, epoll, inter-thread signalling with suspend/resume allowed, the same connection limit and timeout),
 * answering every request with 200 and the body the service's GET /healthz sends. No Swift, no routing, no
 * metrics: what is left of the service's /healthz rate above this is the cost of everything else.
 *
 *   bare-httpd PORT [THREADS]    listens on 127.0.0.1:PORT until SIGTERM or SIGINT
 */
#include <microhttpd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char body[] = "{\"status\":\"alive\"}";
static struct MHD_Response *response;

static enum MHD_Result answer(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_data_size, void **context)
{
  static int seen;
  (void) cls; (void) url; (void) method; (void) version; (void) upload_data;
  if (*context == NULL) { /* the first call has the head only; answering then would close the connection */
    *context = &seen;
    return MHD_YES;
  }
  if (*upload_data_size != 0) {
    *upload_data_size = 0; /* a body is read and ignored */
    return MHD_YES;
  }
  return MHD_queue_response(connection, MHD_HTTP_OK, response);
}

int main(int argc, char **argv)
{
  if (argc < 2) {
    fprintf(stderr, "usage: bare-httpd PORT [THREADS]\n");
    return 2;
  }
  unsigned int threads = argc > 2 ? (unsigned int) atoi(argv[2]) : 8;
  struct sockaddr_in address;
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_port = htons((uint16_t) atoi(argv[1]));
  address.sin_addr.s_addr = inet_addr("127.0.0.1");

  response = MHD_create_response_from_buffer(strlen(body), (void *) body, MHD_RESPMEM_PERSISTENT);
  MHD_add_response_header(response, "Content-Type", "application/json");

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, NULL); /* inherited by MHD's threads; waited for below */

  struct MHD_Daemon *daemon = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL, answer, NULL,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &address,
      MHD_OPTION_LISTENING_ADDRESS_REUSE, 1,
      MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024,
      MHD_OPTION_THREAD_POOL_SIZE, threads > 1 ? threads : 0,
      MHD_OPTION_CONNECTION_TIMEOUT, 30,
      MHD_OPTION_CONNECTION_LIMIT, 1024,
      MHD_OPTION_END);
  if (daemon == NULL) {
    fprintf(stderr, "bare-httpd: cannot listen on 127.0.0.1:%s\n", argv[1]);
    return 1;
  }
  printf("listening\n");
  fflush(stdout);
  int received;
  sigwait(&signals, &received);
  MHD_stop_daemon(daemon);
  MHD_destroy_response(response);
  return 0;
}
