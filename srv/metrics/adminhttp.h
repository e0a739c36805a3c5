/*
 * The admin HTTP listener (--admin-listen ADDR:PORT, loopback unless told
 * otherwise): what a monitoring system asks, kept off the public listeners.
 *   GET /healthz  200 "ok": the process and its event loop answer (liveness)
 *   GET /readyz   200 "ready" if the store answers a query now, else 503
 *                 (readiness; /healthz?ready is the same)
 *   GET /metrics  the Prometheus text exposition (metrics.h)
 * Anything else is 404 (405 for another method). It runs on veild's libuv
 * loop: a tiny HTTP/1.0 server, one request per connection, the request
 * head at most VEIL_ADMINHTTP_MAX_HEAD bytes and VEIL_ADMINHTTP_TIMEOUT_MS
 * to send it, at most VEIL_ADMINHTTP_MAX_CONNS connections at once. Store
 * queries run on the thread pool, never on the loop.
 */
#ifndef VEIL_SRV_ADMINHTTP_H
#define VEIL_SRV_ADMINHTTP_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "metrics.h"
#include "../server.h"

#define VEIL_ADMINHTTP_MAX_HEAD 2048
#define VEIL_ADMINHTTP_MAX_CONNS 32
#define VEIL_ADMINHTTP_TIMEOUT_MS 5000
#define VEIL_ADMINHTTP_MAX_PATH 64

struct veil_adminhttp;

/* Fills the loop thread's figures (chat counters, uptime) for /metrics. */
typedef void (*veil_adminhttp_collect)(void *arg, struct veil_metrics_input *in);

/*
 * Listens on addr:port (port 0: any free port, see veil_adminhttp_port).
 * Returns 0, or VEIL_EINVAL / VEIL_EIO with one line in err.
 */
int veil_adminhttp_start(struct veil_adminhttp **out, uv_loop_t *loop, struct veil_server *srv,
                         const char *addr, uint16_t port, veil_adminhttp_collect collect, void *arg,
                         char *err, size_t errcap);
uint16_t veil_adminhttp_port(const struct veil_adminhttp *a);
/* Stops listening and closes every connection as the loop runs. NULL is a no-op. */
void veil_adminhttp_stop(struct veil_adminhttp *a);

/*
 * Parses a request head: the request line "METHOD SP PATH SP HTTP/1.x" and
 * header lines up to the empty line. Returns 0 with the method (at most 7
 * letters) and the path (query dropped; at most VEIL_ADMINHTTP_MAX_PATH
 * bytes) copied out and *ready set if the query is exactly "ready";
 * VEIL_EAGAIN if the head is not complete yet; VEIL_EPROTO if it is not a
 * request; VEIL_ELIMIT if it is longer than VEIL_ADMINHTTP_MAX_HEAD.
 */
int veil_adminhttp_parse(const uint8_t *p, size_t n, char method[static 8],
                         char path[static VEIL_ADMINHTTP_MAX_PATH + 1], int *ready);

#endif
