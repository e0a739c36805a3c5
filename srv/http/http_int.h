/*
 * Internals shared by the HTTP listener's files (http.c: the HTTP routes and
 * the lws context; ws.c: WebSocket routes).
 */
#ifndef VEIL_SRV_HTTP_INT_H
#define VEIL_SRV_HTTP_INT_H

#include <libwebsockets.h>

#include "http.h"

struct http_ws_route {
	char prefix[VEIL_HTTP_MAX_WS_PREFIX];
	size_t plen;
	size_t max_message;
	const struct veil_http_ws_ops *ops;
	void *arg;
};

struct http_ws_table {
	struct http_ws_route r[VEIL_HTTP_MAX_WS_ROUTES];
	size_t n;
};

/*
 * The WebSocket reasons of the "http" protocol's callback: *slot is the
 * connection's state in its per-session data. Returns what the callback
 * returns; *handled is set to 1 for a reason it took.
 */
int http_ws_callback(struct http_ws_table *t, struct lws *wsi, enum lws_callback_reasons reason,
                     struct veil_http_ws **slot, void *in, size_t len, int *handled);

/*
 * Gives back what an idle WebSocket holds for its next message: its
 * reassembly buffer and the pages of lws's receive buffer. A connection
 * that had a message since the last sweep is only marked (swept next time).
 * On the HTTP thread.
 */
void http_ws_sweep(struct veil_http_ws *c);
/* Sweeps of idle WebSockets the listener made so far (any thread; for tests). */
unsigned http_sweeps(struct veil_http *h);

/*
 * The address of the client of wsi's request, a key for limits (never to be
 * logged): the peer's, or with --trusted-proxy the one its X-Forwarded-For /
 * Forwarded header names (forwarded.h).
 */
void http_client_addr(struct lws *wsi, char *out, size_t cap);

/*
 * libwebsockets' allocator (lwsmem.c): each WebSocket's receive buffer in a
 * mapping of its own, untouched until a control frame arrives, the rest in
 * malloc. Installed once per process, before the first lws context.
 */
void http_lwsmem_install(void);
/* The receive buffer this thread's last WebSocket got (taken: NULL after), or NULL. */
void *http_lwsmem_last_rx(void);
/* Receive buffers in their own mappings now, and their resident pages (for tests). */
size_t http_lwsmem_count(void);
size_t http_lwsmem_resident(void);
/*
 * Gives back the pages of receive buffer rx (lws must hold nothing in it:
 * no control frame partly read). 0, VEIL_ENOTFOUND if rx is not one of
 * them, VEIL_EIO.
 */
int http_lwsmem_idle(void *rx);

#endif
