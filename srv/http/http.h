/*
 * The HTTP listener of veild: libwebsockets (HTTP/1.1, no TLS) on its own
 * thread with lws's default poll loop, and a small prefix router in front of
 * the services that speak HTTP (directory, provisioning document).
 *
 * TLS is a reverse proxy's job: the listener binds to loopback by default
 * and a proxy in front terminates TLS. Behind a proxy every request comes
 * from the proxy's address; with the proxy's address in --trusted-proxy the
 * per-address limits count the client its X-Forwarded-For / Forwarded
 * header names instead (forwarded.h), and the proxy's own connections are
 * not capped.
 *
 * Threading: handlers run on the HTTP thread, one at a time. They may call
 * the store's synchronous functions (identity, token) but must not block on
 * anything else.
 */
#ifndef VEIL_SRV_HTTP_H
#define VEIL_SRV_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "veil/util.h"
#include "../server.h"
#include "../limit/ratelimit.h"

#define VEIL_HTTP_DEFAULT_MAX_BODY (64u * 1024u)
#define VEIL_HTTP_MAX_RESPONSE (1024u * 1024u) /* largest response a handler may build */
#define VEIL_HTTP_MAX_PATH 512
#define VEIL_HTTP_MAX_QUERY 512
#define VEIL_HTTP_MAX_ROUTES 32
#define VEIL_HTTP_CLIENT_LEN 64

/* One request, valid only during the handler call. */
struct veil_http_req {
	const char *method; /* "GET", "POST", ... */
	const char *path;   /* the URL path after the route's prefix, NUL-terminated */
	const char *query;  /* urldecoded arguments joined by '&', "" if none */
	const uint8_t *body;
	size_t body_len;
	const char *client; /* the peer's address, a key for rate limiting; never log it */
};

/*
 * The response a handler fills. status starts at 500 and body is empty with
 * a maximum of VEIL_HTTP_MAX_RESPONSE; content_type must point to a string
 * that outlives the request (a literal).
 */
struct veil_http_resp {
	int status;
	const char *content_type;
	struct veil_buf body;
	int close; /* close the connection after this response */
	/*
	 * Streaming routes only: with has_file set, the body is file_len bytes
	 * of file_fd from file_off instead of body (the listener closes
	 * file_fd); content_range, if not empty, is sent as Content-Range.
	 */
	int has_file;
	int file_fd;
	uint64_t file_off, file_len;
	char content_range[96];
	int accept_ranges; /* send "Accept-Ranges: bytes" */
	int deferred;      /* set by veil_http_defer: answered later by veil_http_resume */
	/*
	 * Static pages (srv/web): Cache-Control instead of "no-store" if set,
	 * and with csp set, Content-Security-Policy and the headers that go
	 * with it (nosniff, no referrer). Literals that outlive the request.
	 */
	const char *cache_control;
	const char *csp;
	/* A redirect's target (with status 301/302/308), a literal or NULL. */
	const char *location;
};

typedef void (*veil_http_handler)(void *arg, const struct veil_http_req *req,
                                  struct veil_http_resp *resp);

struct veil_http;

/*
 * Creates the listener of srv (cfg.listen, cfg.http_port; port 0 picks a free
 * port), registers the built-in services (directory under /directory/, the
 * provisioning document at /.well-known/veil/provisioning) and starts the
 * HTTP thread. srv must outlive the listener. Returns 0 or a negative
 * veil_err (VEIL_EIO if the port cannot be bound).
 */
int veil_http_start(struct veil_http **out, struct veil_server *srv);

/*
 * Binds addr:port once and lets it go: 0, or -1 with one line in err that
 * names the cause (port taken, address not on this machine, not an address).
 * Port 0 checks the address alone.
 */
int veil_http_probe(const char *addr, uint16_t port, char *err, size_t errcap);

/*
 * Stops the thread (lws_cancel_service and a flag, then join), closes every
 * connection and frees h and the services it started. NULL is a no-op.
 */
void veil_http_stop(struct veil_http *h);

/*
 * 1 while veil_http_stop closes the connections: their close callbacks must
 * not start new work (open sockets, adopt).
 */
int veil_http_stopping(const struct veil_http *h);

/* The TCP port the listener is bound to (useful when cfg.http_port is 0). */
uint16_t veil_http_port(const struct veil_http *h);

/*
 * The lower-level steps veil_http_start is made of, for callers that add
 * their own routes: new (binds the port, no thread yet), route (only before
 * run), on_stop (a cleanup run by veil_http_stop after the thread ended, in
 * reverse order of registration), run (starts the thread).
 */
int veil_http_new(struct veil_http **out, const struct veil_server *srv);
/*
 * Routes requests whose method equals method (or any method if method is
 * NULL) and whose path begins with prefix to fn. The first matching route,
 * in registration order, wins. Returns 0 or VEIL_ELIMIT / VEIL_EINVAL.
 */
int veil_http_route(struct veil_http *h, const char *method, const char *prefix,
                    veil_http_handler fn, void *arg);
int veil_http_on_stop(struct veil_http *h, void (*fn)(void *arg), void *arg);
/*
 * Calls fn on the HTTP thread after each pass of its loop (one poll and
 * the callbacks of what it found), e.g. to commit in one transaction what
 * the pass's callbacks wrote. One hook per listener (only before run):
 * 0, or VEIL_ELIMIT if one is set.
 */
int veil_http_on_pass(struct veil_http *h, void (*fn)(void *arg), void *arg);
/*
 * fn(arg) runs on the HTTP thread after veil_http_wake (at least once after
 * each call; also at other times). veil_http_wake is thread-safe and does
 * nothing once veil_http_stop has begun. 0 or VEIL_ELIMIT.
 */
int veil_http_on_wake(struct veil_http *h, void (*fn)(void *arg), void *arg);
void veil_http_wake(struct veil_http *h);
/*
 * Puts every request whose path begins with prefix under a per-address
 * limit of per_min requests a minute (a veil_ratelimit token bucket of its
 * own, keyed by the client address). Over it the listener answers 429
 * itself and the route never sees the request; a request takes a token
 * from every limit whose prefix it matches. per_min 0 adds no limit. Only
 * before run. Returns 0 or VEIL_ELIMIT / VEIL_EINVAL / VEIL_ENOMEM.
 */
int veil_http_limit(struct veil_http *h, const char *prefix, uint32_t per_min);
/*
 * Changes the rate of the limits set on prefix (SIGHUP), from any thread.
 * Returns 0, or VEIL_ENOTFOUND if none was set (a rate of 0 at start).
 */
int veil_http_limit_set(struct veil_http *h, const char *prefix, uint32_t per_min);

/*
 * Streaming routes: the request body is handed to the route chunk by chunk
 * as it arrives (never buffered, no http-max-body limit: the route sets its
 * own) and the response may be a byte range of a file, read as the socket
 * drains. Memory per request stays constant whatever the body size.
 */
struct veil_http_sreq {
	const char *method, *path, *query, *client; /* as in veil_http_req */
	const char *content_type;                   /* "" if absent */
	const char *authorization;                  /* "" if absent */
	const char *range;                          /* "" if absent */
	uint64_t content_length;                    /* 0 if absent */
};
struct veil_http_stream_ops {
	/*
	 * Called once the headers are in. Return 0 to go on: body is then
	 * called for every piece of the body (if any) and end once it is
	 * complete; or fill resp and return non-zero to answer at once (the
	 * rest of a body is not read; the connection closes). *ctx is the
	 * route's state for this request.
	 */
	int (*begin)(void *arg, const struct veil_http_sreq *req, void **ctx,
	             struct veil_http_resp *resp);
	/* A piece of the body; non-zero (resp filled) stops and closes the connection. */
	int (*body)(void *ctx, const uint8_t *p, size_t len, struct veil_http_resp *resp);
	/* The whole body arrived (or there was none): fill resp. */
	void (*end)(void *ctx, struct veil_http_resp *resp);
	/*
	 * Called exactly once for every ctx begin set (non-NULL), when the
	 * request is over: answered, or cut short by the peer (then before
	 * end). complete says whether end ran.
	 */
	void (*release)(void *ctx, int complete);
};
/* Like veil_http_route, for a streaming route; ops must outlive the listener. */
int veil_http_route_stream(struct veil_http *h, const char *method, const char *prefix,
                           const struct veil_http_stream_ops *ops, void *arg);
int veil_http_run(struct veil_http *h);

/*
 * WebSocket routes: an upgrade request whose path begins with prefix
 * becomes a WebSocket connection of the route (binary messages only, each
 * reassembled whole up to max_message bytes; a text message closes it with
 * 1003, a longer one with 1009). Every callback runs on the HTTP thread.
 * The connection handle stays valid until closed returns.
 */
#define VEIL_HTTP_MAX_WS_ROUTES 4
#define VEIL_HTTP_MAX_WS_PREFIX 64
/* Bytes a connection may have queued for sending before send refuses. */
#define VEIL_HTTP_WS_MAX_QUEUED (4u * 1024u * 1024u)

struct veil_http_ws;
struct veil_http_ws_ops {
	/*
	 * An upgrade request for path (the whole path, NUL-terminated); the
	 * client's address is in client, a key for limits, never to be logged.
	 * Return 0 with *ctx set to accept (messages may be queued with
	 * veil_http_ws_send at once; they go out after the 101), non-zero to
	 * refuse the upgrade.
	 */
	int (*open)(void *arg, struct veil_http_ws *c, const char *path, const char *client,
	            void **ctx);
	/* One whole binary message. */
	void (*message)(void *ctx, const uint8_t *p, size_t n);
	/* Everything queued has been written (optional; NULL if not wanted). */
	void (*drained)(void *ctx);
	/*
	 * The connection is gone; c must not be used any more, except for
	 * veil_http_ws_peer_close_code during this call. Called once.
	 */
	void (*closed)(void *ctx);
	/* The timer set with veil_http_ws_timer fired (optional; not once closing). */
	void (*timer)(void *ctx);
	/*
	 * The 101 went out and the connection is not closing (optional): from
	 * here on veil_http_ws_timer may be armed.
	 */
	void (*established)(void *ctx);
};
/*
 * How often idle WebSockets give back the memory they hold for their next
 * message (default 10 s; a connection is swept once a whole period passed
 * without a message). Only before run; for tests.
 */
void veil_http_ws_sweep_ms(struct veil_http *h, uint32_t ms);
/* Only before run. Returns 0 or VEIL_ELIMIT / VEIL_EINVAL. */
int veil_http_ws_route(struct veil_http *h, const char *prefix, size_t max_message,
                       const struct veil_http_ws_ops *ops, void *arg);
/*
 * Queues a copy of one binary message. VEIL_ELIMIT over
 * VEIL_HTTP_WS_MAX_QUEUED, VEIL_ECLOSED once closing, VEIL_ENOMEM.
 */
int veil_http_ws_send(struct veil_http_ws *c, const uint8_t *p, size_t n) VEIL_WUR;
/* Bytes queued and not yet written. */
size_t veil_http_ws_queued(const struct veil_http_ws *c);
/*
 * Arms the connection's one timer to fire the route's timer callback in ms
 * milliseconds (replacing an armed one); 0 disarms it. Only once the
 * connection is established (from message or later).
 */
void veil_http_ws_timer(struct veil_http_ws *c, uint32_t ms);
/*
 * Stops (pause 1) or resumes (0) reading from the connection, e.g. while
 * the connection it forwards to has much queued (see drained).
 */
void veil_http_ws_rx_pause(struct veil_http_ws *c, int pause);
/*
 * The close code of the close frame the peer sent, 0 if it sent none (yet);
 * meaningful in the closed callback.
 */
int veil_http_ws_peer_close_code(const struct veil_http_ws *c);
/*
 * Closes with code (a WebSocket close code) once the queued messages are
 * written; messages that arrive meanwhile are dropped. closed follows.
 */
void veil_http_ws_close(struct veil_http_ws *c, int code);

/*
 * Deferred answers. A plain route's handler that cannot answer at once (it
 * waits for a durable write on another thread) calls veil_http_defer(resp)
 * and returns; the connection then waits, reading nothing more, until
 * veil_http_resume answers it with the returned ticket. Tickets are never
 * reused, so resuming a connection that closed meanwhile is harmless.
 */
uint64_t veil_http_defer(struct veil_http_resp *resp);
/*
 * Answers the deferred request ticket with status, content_type (a literal)
 * and a copy of body. Thread-safe; the answer goes out on the HTTP thread.
 * Returns 0, VEIL_ECLOSED once veil_http_stop has begun, VEIL_ENOMEM.
 */
int veil_http_resume(struct veil_http *h, uint64_t ticket, int status, const char *content_type,
                     const void *body, size_t len);

/* Helpers for handlers. */
/* Sets status, content type "application/json" and the body to text. */
void veil_http_resp_json(struct veil_http_resp *resp, int status, const char *text);
/*
 * Serialises obj (a jansson json_t *, reference stolen; NULL gives 500) as
 * the compact JSON body with status.
 */
struct json_t;
void veil_http_resp_object(struct veil_http_resp *resp, int status, struct json_t *obj);
/* A {"success":false,"error":msg[,"errorType":type]} response; type may be NULL. */
void veil_http_resp_error(struct veil_http_resp *resp, int status, const char *msg,
                          const char *type);

#endif
