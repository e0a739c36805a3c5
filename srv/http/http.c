/*
 * The HTTP listener: libwebsockets on its own thread, HTTP/1.1 only, and a
 * prefix router. Each connection walks IDLE -> (BODY | DRAIN) -> SEND -> IDLE;
 * the request body is buffered up to the configured maximum. A request that
 * announces more gets 413 once its body has been read and thrown away (up to
 * VEIL_HTTP_DRAIN_MAX; beyond that at once), so the client can read the
 * answer; one that sends more than it announced is cut off. Either way the
 * connection closes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>
#include <libwebsockets.h>
#include <sodium.h>

#include "http.h"
#include "http_int.h"
#include "forwarded.h"
#include "../limit/connlimit.h"
#include "../blob/blob.h"
#include "../directory/directory.h"
#include "metrics/metrics.h"

#define VEIL_HTTP_MAX_CLEANUPS 16
#define VEIL_HTTP_MAX_LIMITS 8
#define VEIL_HTTP_MAX_PREFIX 128
#define VEIL_HTTP_MAX_FDS 4096           /* connections per listener (lws sizes its tables by it) */
#define VEIL_HTTP_CHUNK 4096             /* bytes written per writable callback */
#define VEIL_HTTP_FILE_CHUNK (64 * 1024) /* file body bytes per writable callback */
#define VEIL_HTTP_REFUSE_LOG_MS 60000    /* at most one line about refused connections */
#define VEIL_HTTP_WS_SWEEP_MS 10000      /* idle WebSockets give memory back (ws.c) */
#define HTTP_CB_SWEEP LWS_CALLBACK_USER  /* the sweep's visit to each connection */

struct http_route {
	char method[8]; /* "" = any */
	char prefix[VEIL_HTTP_MAX_PREFIX];
	size_t plen;
	veil_http_handler fn;
	const struct veil_http_stream_ops *sops; /* streaming route if not NULL */
	void *arg;
};

/* A per-address request limit on every path under prefix. */
struct http_limit {
	char prefix[VEIL_HTTP_MAX_PREFIX];
	size_t plen;
	struct veil_ratelimit *rl;
};

/* An answer to a deferred request, queued by veil_http_resume for the HTTP thread. */
struct http_resumed {
	struct http_resumed *next;
	uint64_t ticket;
	int status;
	const char *content_type;
	size_t len;
	uint8_t body[];
};

struct http_req;

struct http_cleanup {
	void (*fn)(void *arg);
	void *arg;
};

struct veil_http {
	struct lws_context *ctx;
	struct lws_protocols protocols[2];
	pthread_t thread;
	int running;
	atomic_int stop;
	uint16_t port;
	size_t max_body;
	struct http_route routes[VEIL_HTTP_MAX_ROUTES];
	size_t nroutes;
	struct http_cleanup cleanups[VEIL_HTTP_MAX_CLEANUPS];
	size_t ncleanups;
	struct http_cleanup on_pass; /* after each pass of the loop (veil_http_on_pass) */
	struct http_cleanup wakers[VEIL_HTTP_MAX_CLEANUPS]; /* veil_http_on_wake */
	size_t nwakers;
	struct http_limit limits[VEIL_HTTP_MAX_LIMITS];
	size_t nlimits;
	struct http_ws_table ws;
	uint32_t ws_sweep_ms;
	lws_sorted_usec_list_t sweep; /* the next sweep of idle WebSockets */
	atomic_uint sweeps;           /* sweeps done (for tests) */
	int stopping;                 /* the context is being destroyed: no new work */
	/* Per-address connection limits; refusals counted for the next log line. */
	struct veil_connlimit *conns;
	uint64_t refused_open, refused_rate, refused_log_ms;
	/* --trusted-proxy: their connections are not limited, their headers name the client */
	struct veil_cidr trusted[VEIL_MAX_TRUSTED_PROXIES];
	size_t ntrusted;
	/* Deferred requests: waiting connections (HTTP thread) and answers (locked). */
	struct http_req *waiting;
	uint64_t next_ticket;
	pthread_mutex_t rlock;
	struct http_resumed *resumed, **resumed_tail;
	int resume_closed; /* under rlock: veil_http_stop has begun */
};

enum http_state { ST_IDLE = 0, ST_BODY, ST_DRAIN, ST_SEND, ST_WAIT };

/*
 * A request refused before its body was read (too large, no quota, bad
 * token) is answered only after the body has arrived, up to this many bytes,
 * and discarded: a client still sending would otherwise hit a reset and never
 * read the answer. Larger bodies get the answer at once and the connection
 * closes.
 */
#define VEIL_HTTP_DRAIN_MAX (16u * 1024u * 1024u)

/*
 * A request in progress: allocated when its headers are in, freed once it
 * is answered (or the connection closes), so that a connection between
 * requests, and a WebSocket, holds only struct http_pss.
 */
struct http_req {
	int state;
	int route; /* index into routes, or -1 */
	char method[8];
	char path[VEIL_HTTP_MAX_PATH];
	char query[VEIL_HTTP_MAX_QUERY];
	char client[VEIL_HTTP_CLIENT_LEN];
	struct veil_buf body;
	struct veil_http_resp resp;
	int headers_sent;
	size_t sent;
	/* Streaming routes: the route's ops and its state for this request. */
	const struct veil_http_stream_ops *sops;
	void *sctx;
	int sctx_complete;
	/* A deferred request (ST_WAIT): on h->waiting until answered or closed. */
	struct veil_http *h;
	struct lws *wsi;
	uint64_t ticket;
	struct http_req *wprev, *wnext;
};

/*
 * Per-connection state, zeroed by lws when the connection binds to us; kept
 * small, as every idle connection and every WebSocket holds one (an HTTP
 * connection's upgrade frees it and lws gives the WebSocket a fresh one).
 */
struct http_pss {
	struct http_req *req;    /* the request in progress, or NULL */
	struct veil_http_ws *ws; /* a WebSocket connection's state */
};

static const char *json_content_type = "application/json";

void veil_http_resp_json(struct veil_http_resp *resp, int status, const char *text)
{
	resp->status = status;
	resp->content_type = json_content_type;
	veil_buf_reset(&resp->body);
	if (veil_buf_append(&resp->body, text, strlen(text)) != 0)
		resp->status = 500;
}

void veil_http_resp_object(struct veil_http_resp *resp, int status, json_t *obj)
{
	char *text = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;
	json_decref(obj);
	if (text == NULL) {
		veil_http_resp_error(resp, 500, "internal error", NULL);
		return;
	}
	veil_http_resp_json(resp, status, text);
	free(text);
}

void veil_http_resp_error(struct veil_http_resp *resp, int status, const char *msg,
                          const char *type)
{
	/* The messages are our own literals, but escape them anyway. */
	char esc[256];
	size_t o = 0;
	for (const char *p = msg; *p != '\0' && o + 7 < sizeof esc; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '"' || c == '\\') {
			esc[o++] = '\\';
			esc[o++] = (char)c;
		} else if (c < 0x20) {
			esc[o++] = ' ';
		} else {
			esc[o++] = (char)c;
		}
	}
	esc[o] = '\0';
	char text[384];
	if (type != NULL)
		snprintf(text, sizeof text,
		         "{\"success\":false,\"error\":\"%s\",\"errorType\":\"%s\"}", esc, type);
	else
		snprintf(text, sizeof text, "{\"success\":false,\"error\":\"%s\"}", esc);
	veil_http_resp_json(resp, status, text);
}

static void wait_unlink(struct http_req *ps)
{
	if (ps->state != ST_WAIT)
		return;
	if (ps->wprev != NULL)
		ps->wprev->wnext = ps->wnext;
	else
		ps->h->waiting = ps->wnext;
	if (ps->wnext != NULL)
		ps->wnext->wprev = ps->wprev;
	ps->wprev = ps->wnext = NULL;
	ps->state = ST_IDLE;
}

static void req_release(struct http_req *ps)
{
	wait_unlink(ps);
	if (ps->sops != NULL && ps->sctx != NULL)
		ps->sops->release(ps->sctx, ps->sctx_complete);
	ps->sctx = NULL;
	ps->sops = NULL;
	if (ps->resp.has_file) {
		close(ps->resp.file_fd);
		ps->resp.has_file = 0;
	}
	veil_buf_release(&ps->body);
	veil_buf_release(&ps->resp.body);
	ps->state = ST_IDLE;
	ps->headers_sent = 0;
	ps->sent = 0;
}

/* Ends the connection's request, if one is in progress, and frees its state. */
static void pss_end_request(struct http_pss *pss)
{
	if (pss->req == NULL)
		return;
	req_release(pss->req);
	free(pss->req);
	pss->req = NULL;
}

static const char *method_name(int m)
{
	switch (m) {
	case LWSHUMETH_GET: return "GET";
	case LWSHUMETH_POST: return "POST";
	case LWSHUMETH_OPTIONS: return "OPTIONS";
	case LWSHUMETH_PUT: return "PUT";
	case LWSHUMETH_PATCH: return "PATCH";
	case LWSHUMETH_DELETE: return "DELETE";
	case LWSHUMETH_HEAD: return "HEAD";
	default: return NULL;
	}
}

/* Queues the response in ps->resp for sending. */
static void respond(struct lws *wsi, struct http_req *ps)
{
	if (ps->resp.content_type == NULL)
		ps->resp.content_type = json_content_type;
	if (ps->resp.status < 100 || ps->resp.status > 599)
		ps->resp.status = 500;
	if (ps->resp.status == 500 && ps->resp.body.len == 0)
		veil_http_resp_error(&ps->resp, 500, "internal error", NULL);
	/* The body is not needed any more; free it before the response goes out. */
	veil_buf_release(&ps->body);
	ps->state = ST_SEND;
	ps->headers_sent = 0;
	ps->sent = 0;
	lws_callback_on_writable(wsi);
}

static void dispatch(struct veil_http *h, struct lws *wsi, struct http_req *ps)
{
	const struct http_route *r = &h->routes[ps->route];
	struct veil_http_req req = {
	    .method = ps->method,
	    .path = ps->path + r->plen,
	    .query = ps->query,
	    .body = ps->body.p != NULL ? ps->body.p : (const uint8_t *)"",
	    .body_len = ps->body.len,
	    .client = ps->client,
	};
	ps->ticket = ++h->next_ticket;
	r->fn(r->arg, &req, &ps->resp);
	if (ps->resp.deferred) {
		veil_buf_release(&ps->body);
		ps->h = h;
		ps->wsi = wsi;
		ps->state = ST_WAIT;
		ps->wprev = NULL;
		ps->wnext = h->waiting;
		if (h->waiting != NULL)
			h->waiting->wprev = ps;
		h->waiting = ps;
		return;
	}
	respond(wsi, ps);
}

uint64_t veil_http_defer(struct veil_http_resp *resp)
{
	struct http_req *ps =
	    (struct http_req *)(void *)((char *)resp - offsetof(struct http_req, resp));
	resp->deferred = 1;
	return ps->ticket;
}

int veil_http_resume(struct veil_http *h, uint64_t ticket, int status, const char *content_type,
                     const void *body, size_t len)
{
	if (len > VEIL_HTTP_MAX_RESPONSE)
		return VEIL_ELIMIT;
	struct http_resumed *r = malloc(sizeof *r + len);
	if (r == NULL)
		return VEIL_ENOMEM;
	r->next = NULL;
	r->ticket = ticket;
	r->status = status;
	r->content_type = content_type;
	r->len = len;
	if (len > 0)
		memcpy(r->body, body, len);
	pthread_mutex_lock(&h->rlock);
	if (h->resume_closed) {
		pthread_mutex_unlock(&h->rlock);
		free(r);
		return VEIL_ECLOSED;
	}
	/* One wake-up for a run of answers: run_resumed takes the whole list. */
	int wake = h->resumed == NULL;
	*h->resumed_tail = r;
	h->resumed_tail = &r->next;
	if (wake)
		lws_cancel_service(h->ctx);
	pthread_mutex_unlock(&h->rlock);
	return 0;
}

/* On the HTTP thread: sends the answers veil_http_resume queued. */
static void run_resumed(struct veil_http *h)
{
	pthread_mutex_lock(&h->rlock);
	struct http_resumed *r = h->resumed;
	h->resumed = NULL;
	h->resumed_tail = &h->resumed;
	pthread_mutex_unlock(&h->rlock);
	while (r != NULL) {
		struct http_resumed *next = r->next;
		struct http_req *ps = h->waiting;
		while (ps != NULL && ps->ticket != r->ticket)
			ps = ps->wnext;
		if (ps != NULL) {
			wait_unlink(ps);
			ps->resp.deferred = 0;
			ps->resp.status = r->status;
			ps->resp.content_type = r->content_type;
			veil_buf_reset(&ps->resp.body);
			if (veil_buf_append(&ps->resp.body, r->body, r->len) != 0)
				ps->resp.status = 500;
			respond(ps->wsi, ps);
		}
		free(r);
		r = next;
	}
}

/* Copies header tok into dst ("" if absent or too long). */
static void hdr_copy(struct lws *wsi, enum lws_token_indexes tok, char *dst, size_t cap)
{
	dst[0] = '\0';
	int n = lws_hdr_total_length(wsi, tok);
	if (n <= 0 || (size_t)n >= cap || lws_hdr_copy(wsi, dst, (int)cap, tok) < 0)
		dst[0] = '\0';
}

/*
 * Starts a streaming route: begin sees the headers; a body then flows to
 * the route's body callback (state ST_BODY) and end answers.
 */
static void stream_begin(const struct http_route *r, struct lws *wsi, struct http_req *ps,
                         uint64_t content_length, int has_body)
{
	char ctype[256], auth[512], range[128];
	hdr_copy(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, ctype, sizeof ctype);
	hdr_copy(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, auth, sizeof auth);
	hdr_copy(wsi, WSI_TOKEN_HTTP_RANGE, range, sizeof range);
	struct veil_http_sreq req = {
	    .method = ps->method,
	    .path = ps->path + r->plen,
	    .query = ps->query,
	    .client = ps->client,
	    .content_type = ctype,
	    .authorization = auth,
	    .range = range,
	    .content_length = content_length,
	};
	ps->sops = r->sops;
	void *ctx = NULL;
	int rc = r->sops->begin(r->arg, &req, &ctx, &ps->resp);
	ps->sctx = ctx;
	sodium_memzero(auth, sizeof auth);
	if (rc != 0) {
		if (has_body)
			ps->resp.close = 1;
		if (has_body && content_length <= VEIL_HTTP_DRAIN_MAX)
			ps->state = ST_DRAIN; /* answered at the end of the body */
		else
			respond(wsi, ps);
		return;
	}
	if (!has_body) {
		r->sops->end(ctx, &ps->resp);
		ps->sctx_complete = 1;
		respond(wsi, ps);
		return;
	}
	ps->state = ST_BODY;
}

static void too_large(struct lws *wsi, struct http_req *ps)
{
	veil_http_resp_error(&ps->resp, 413, "request body too large", NULL);
	ps->resp.close = 1;
	respond(wsi, ps);
}

/* A request header of up to VEIL_HTTP_FORWARDED_MAX bytes, or "" (absent, longer). */
static void forwarded_header(struct lws *wsi, enum lws_token_indexes tok, const char *custom,
                             char *out, int cap)
{
	int n = custom != NULL ? lws_hdr_custom_length(wsi, custom, (int)strlen(custom))
	                       : lws_hdr_total_length(wsi, tok);
	out[0] = '\0';
	if (n <= 0 || n >= cap)
		return;
	n = custom != NULL ? lws_hdr_custom_copy(wsi, out, cap, custom, (int)strlen(custom))
	                   : lws_hdr_copy(wsi, out, cap, tok);
	if (n < 0)
		out[0] = '\0';
}

void http_client_addr(struct lws *wsi, char *out, size_t cap)
{
	struct veil_http *h = lws_context_user(lws_get_context(wsi));
	char peer[VEIL_HTTP_CLIENT_LEN];
	char xff[VEIL_HTTP_FORWARDED_MAX + 1], fwd[VEIL_HTTP_FORWARDED_MAX + 1];
	if (lws_get_peer_simple(wsi, peer, sizeof peer) == NULL)
		snprintf(peer, sizeof peer, "unknown");
	xff[0] = fwd[0] = '\0';
	if (h != NULL && h->ntrusted > 0 && veil_cidr_match_text(h->trusted, h->ntrusted, peer)) {
		forwarded_header(wsi, WSI_TOKEN_X_FORWARDED_FOR, NULL, xff, sizeof xff);
		if (xff[0] == '\0')
			forwarded_header(wsi, WSI_TOKEN_COUNT, "forwarded:", fwd, sizeof fwd);
	}
	veil_http_forwarded_client(h != NULL ? h->trusted : NULL, h != NULL ? h->ntrusted : 0, peer,
	                           xff, fwd, out, cap);
}

/* Takes a token for the client from every limit over the path; 0, or -1 if one is empty. */
static int over_limit(struct veil_http *h, const struct http_req *ps)
{
	uint64_t now = veil_mono_ms();
	for (size_t i = 0; i < h->nlimits; i++) {
		const struct http_limit *l = &h->limits[i];
		if (strncmp(ps->path, l->prefix, l->plen) == 0 &&
		    veil_ratelimit_take(l->rl, ps->client, now) != 0) {
			veil_refusal_from(VEIL_METRIC_REFUSE_HTTP_RATE,
			                  "HTTP requests over a per-address rate (--dir-rate, "
			                  "--blob-rate, --gateway-addr-rate)",
			                  ps->client);
			return -1;
		}
	}
	return 0;
}

/*
 * Answers a request refused before its body was read (the answer is in
 * ps->resp) and closes the connection: after the body if it announced one
 * of up to VEIL_HTTP_DRAIN_MAX bytes, so that the client reads the answer,
 * else at once.
 */
static void refuse(struct lws *wsi, struct http_req *ps, int has_body)
{
	char cl[32];
	unsigned long long v = 0;
	if (has_body && lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
	    lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 && cl[0] != '-') {
		char *end;
		v = strtoull(cl, &end, 10);
		if (end == cl || *end != '\0')
			v = 0;
	}
	ps->resp.close = 1;
	if (v > 0 && v <= VEIL_HTTP_DRAIN_MAX)
		ps->state = ST_DRAIN;
	else
		respond(wsi, ps);
}

static int on_request(struct veil_http *h, struct lws *wsi, struct http_pss *pss, const char *uri,
                      size_t ulen)
{
	pss_end_request(pss);
	struct http_req *ps = calloc(1, sizeof *ps);
	if (ps == NULL)
		return -1; /* closes the connection */
	pss->req = ps;
	ps->route = -1;
	veil_buf_init(&ps->resp.body, VEIL_HTTP_MAX_RESPONSE);
	ps->resp.status = 500;

	char *muri;
	int mlen;
	const char *m = method_name(lws_http_get_uri_and_method(wsi, &muri, &mlen));
	if (m == NULL) {
		veil_http_resp_error(&ps->resp, 405, "method not allowed", NULL);
		ps->resp.close = 1;
		respond(wsi, ps);
		return 0;
	}
	snprintf(ps->method, sizeof ps->method, "%s", m);
	http_client_addr(wsi, ps->client, sizeof ps->client);

	if (uri == NULL || ulen >= sizeof ps->path) {
		veil_http_resp_error(&ps->resp, 414, "URI too long", NULL);
		respond(wsi, ps);
		return 0;
	}
	memcpy(ps->path, uri, ulen);
	ps->path[ulen] = '\0';

	/* lws splits the arguments into urldecoded fragments; join them again. */
	size_t qo = 0;
	for (int i = 0;; i++) {
		char frag[VEIL_HTTP_MAX_QUERY];
		int n = lws_hdr_copy_fragment(wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i);
		if (n < 0)
			break;
		if (qo + (i > 0) + (size_t)n >= sizeof ps->query) {
			veil_http_resp_error(&ps->resp, 414, "query too long", NULL);
			respond(wsi, ps);
			return 0;
		}
		if (i > 0)
			ps->query[qo++] = '&';
		memcpy(ps->query + qo, frag, (size_t)n);
		qo += (size_t)n;
		ps->query[qo] = '\0';
	}

	int path_matched = 0;
	for (size_t i = 0; i < h->nroutes; i++) {
		const struct http_route *r = &h->routes[i];
		if (strncmp(ps->path, r->prefix, r->plen) != 0)
			continue;
		path_matched = 1;
		if (r->method[0] == '\0' || strcmp(r->method, ps->method) == 0) {
			ps->route = (int)i;
			break;
		}
	}
	if (ps->route < 0) {
		if (path_matched)
			veil_http_resp_error(&ps->resp, 405, "method not allowed", NULL);
		else
			veil_http_resp_error(&ps->resp, 404, "not found", NULL);
		respond(wsi, ps);
		return 0;
	}

	int has_body = strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0;
	if (over_limit(h, ps) != 0) {
		veil_http_resp_error(&ps->resp, 429, "rate limit exceeded", NULL);
		refuse(wsi, ps, has_body);
		return 0;
	}
	const struct http_route *rt = &h->routes[ps->route];
	if (!has_body) {
		if (rt->sops != NULL)
			stream_begin(rt, wsi, ps, 0, 0);
		else
			dispatch(h, wsi, ps);
		return 0;
	}
	veil_buf_init(&ps->body, h->max_body);
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
		char cl[32];
		if (lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0) {
			veil_http_resp_error(&ps->resp, 400, "bad content-length", NULL);
			ps->resp.close = 1;
			respond(wsi, ps);
			return 0;
		}
		char *end;
		unsigned long long v = strtoull(cl, &end, 10);
		if (end == cl || *end != '\0' || cl[0] == '-') {
			veil_http_resp_error(&ps->resp, 400, "bad content-length", NULL);
			ps->resp.close = 1;
			respond(wsi, ps);
			return 0;
		}
		if (rt->sops != NULL) {
			/* The route judges the length; the body is not buffered here. */
			stream_begin(rt, wsi, ps, (uint64_t)v, v > 0);
			return 0;
		}
		if (v > h->max_body) {
			if (v <= VEIL_HTTP_DRAIN_MAX) {
				veil_http_resp_error(&ps->resp, 413, "request body too large",
				                     NULL);
				ps->resp.close = 1;
				ps->state = ST_DRAIN;
			} else {
				too_large(wsi, ps);
			}
			return 0;
		}
		if (v == 0) {
			dispatch(h, wsi, ps);
			return 0;
		}
		if (veil_buf_reserve(&ps->body, (size_t)v) != 0) {
			veil_http_resp_error(&ps->resp, 503, "out of memory", NULL);
			ps->resp.close = 1;
			respond(wsi, ps);
			return 0;
		}
	} else if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
		/*
		 * lws 4.1 does not de-chunk request bodies on the server side, so a
		 * chunked body would never arrive as such: ask for a length instead.
		 */
		veil_http_resp_error(&ps->resp, 411, "content-length required", NULL);
		ps->resp.close = 1;
		respond(wsi, ps);
		return 0;
	} else {
		/* Neither a length nor chunks: HTTP/1.1 says the body is empty. */
		if (rt->sops != NULL)
			stream_begin(rt, wsi, ps, 0, 0);
		else
			dispatch(h, wsi, ps);
		return 0;
	}
	ps->state = ST_BODY;
	return 0;
}

/* Sends the next piece of a file body; 1 when it was the last. */
static int send_file_some(struct lws *wsi, struct http_req *ps)
{
	static _Thread_local uint8_t fbuf[LWS_PRE + VEIL_HTTP_FILE_CHUNK];
	uint64_t left = ps->resp.file_len - ps->sent;
	size_t n = left > VEIL_HTTP_FILE_CHUNK ? VEIL_HTTP_FILE_CHUNK : (size_t)left;
	ssize_t got =
	    pread(ps->resp.file_fd, fbuf + LWS_PRE, n, (off_t)(ps->resp.file_off + ps->sent));
	if (got != (ssize_t)n)
		return -1; /* the file shrank or failed: cut the response short */
	int last = ps->sent + n == ps->resp.file_len;
	if (lws_write(wsi, fbuf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) !=
	    (int)n)
		return -1;
	ps->sent += n;
	return last;
}

static int add_cache_control(struct lws *wsi, const struct veil_http_resp *r, uint8_t **p,
                             uint8_t *end)
{
	const char *cc = r->cache_control != NULL ? r->cache_control : "no-store";
	return lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL, (const uint8_t *)cc,
	                                    (int)strlen(cc), p, end);
}

/* The headers of a page a browser runs (srv/web): its CSP, no sniffing, no referrer. */
static int add_page_headers(struct lws *wsi, const struct veil_http_resp *r, uint8_t **p,
                            uint8_t *end)
{
	static const struct {
		const char *name, *value;
	} fixed[] = {
	    {"x-content-type-options:", "nosniff"},
	    {"referrer-policy:", "no-referrer"},
	    {"cross-origin-opener-policy:", "same-origin"},
	};
	if (r->location != NULL &&
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_LOCATION, (const uint8_t *)r->location,
	                                 (int)strlen(r->location), p, end))
		return -1;
	if (r->csp == NULL)
		return 0;
	if (lws_add_http_header_by_name(wsi, (const uint8_t *)"content-security-policy:",
	                                (const uint8_t *)r->csp, (int)strlen(r->csp), p, end))
		return -1;
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
		if (lws_add_http_header_by_name(wsi, (const uint8_t *)fixed[i].name,
		                                (const uint8_t *)fixed[i].value,
		                                (int)strlen(fixed[i].value), p, end))
			return -1;
	return 0;
}

static int send_some(struct lws *wsi, struct http_pss *pss)
{
	struct http_req *ps = pss->req;
	uint8_t buf[LWS_PRE + VEIL_HTTP_CHUNK];
	if (!ps->headers_sent) {
		uint8_t *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
		uint64_t clen = ps->resp.has_file ? ps->resp.file_len : ps->resp.body.len;
		if (lws_add_http_common_headers(wsi, (unsigned)ps->resp.status,
		                                ps->resp.content_type, (lws_filepos_t)clen, &p,
		                                end) ||
		    add_cache_control(wsi, &ps->resp, &p, end) ||
		    add_page_headers(wsi, &ps->resp, &p, end))
			return -1;
		if (ps->resp.content_range[0] != '\0' &&
		    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_RANGE,
		                                 (const uint8_t *)ps->resp.content_range,
		                                 (int)strlen(ps->resp.content_range), &p, end))
			return -1;
		if (ps->resp.accept_ranges &&
		    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_ACCEPT_RANGES,
		                                 (const uint8_t *)"bytes", 5, &p, end))
			return -1;
		if (ps->resp.close &&
		    lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
		                                 (const uint8_t *)"close", 5, &p, end))
			return -1;
		if (lws_finalize_write_http_header(wsi, start, &p, end))
			return -1;
		ps->headers_sent = 1;
		if (clen > 0) {
			lws_callback_on_writable(wsi);
			return 0;
		}
	} else if (ps->resp.has_file) {
		int r = send_file_some(wsi, ps);
		if (r < 0)
			return -1;
		if (r == 0) {
			lws_callback_on_writable(wsi);
			return 0;
		}
	} else {
		size_t n = ps->resp.body.len - ps->sent;
		if (n > VEIL_HTTP_CHUNK)
			n = VEIL_HTTP_CHUNK;
		int last = ps->sent + n == ps->resp.body.len;
		memcpy(buf + LWS_PRE, ps->resp.body.p + ps->sent, n);
		if (lws_write(wsi, buf + LWS_PRE, n,
		              last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
			return -1;
		ps->sent += n;
		if (!last) {
			lws_callback_on_writable(wsi);
			return 0;
		}
	}
	int close = ps->resp.close;
	pss_end_request(pss);
	if (close)
		return -1;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/*
 * A new TCP connection, before lws reads a byte from it: refused (closed at
 * once) if its address has too many open or opened too many lately. One
 * log line a minute at most says how many were refused; it never names an
 * address.
 */
static int filter_connection(struct veil_http *h, const struct lws_filter_network_conn_args *a)
{
	uint64_t now = veil_mono_ms();
	/* A trusted proxy carries many clients: its connections are not capped. */
	if (veil_cidr_match_sa(h->trusted, h->ntrusted, (const struct sockaddr *)&a->cli_addr,
	                       a->clilen))
		return 0;
	int rc =
	    veil_connlimit_check(h->conns, (const struct sockaddr *)&a->cli_addr, a->clilen, now);
	if (rc == 0)
		return 0;
	veil_metric_inc(VEIL_METRIC_REFUSE_HTTP_CONN);
	if (rc == VEIL_ELIMIT)
		h->refused_open++;
	else
		h->refused_rate++;
	if (h->refused_log_ms == 0 || now - h->refused_log_ms >= VEIL_HTTP_REFUSE_LOG_MS) {
		veil_log_warn("http: refused %" PRIu64 " connections over the per-address cap "
		              "(http-conn-per-addr) and %" PRIu64 " over the per-address rate "
		              "(http-conn-rate) since the last report",
		              h->refused_open, h->refused_rate);
		h->refused_open = h->refused_rate = 0;
		h->refused_log_ms = now;
	}
	return -1;
}

/* Counts an accepted connection as open for its address until it is destroyed. */
static void count_connection(struct veil_http *h, struct lws *wsi)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	uintptr_t token = 0;
	int fd = lws_get_socket_fd(wsi);
	if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) != 0 ||
	    veil_cidr_match_sa(h->trusted, h->ntrusted, (struct sockaddr *)&ss, sl))
		return;
	if (veil_connlimit_open(h->conns, (struct sockaddr *)&ss, sl, &token) == 0)
		lws_set_opaque_user_data(wsi, (void *)token);
}

static int http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
	struct http_pss *pss = user;
	struct http_req *ps = pss != NULL ? pss->req : NULL;
	struct veil_http *h = lws_context_user(lws_get_context(wsi));
	int handled = 0;
	int wrc =
	    http_ws_callback(&h->ws, wsi, reason, pss != NULL ? &pss->ws : NULL, in, len, &handled);
	if (handled)
		return wrc;
	switch (reason) {
	case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
		return user != NULL ? filter_connection(h, user) : 0;
	case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED: count_connection(h, wsi); return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		veil_connlimit_close(h->conns, (uintptr_t)lws_get_opaque_user_data(wsi));
		lws_set_opaque_user_data(wsi, NULL);
		return 0;
	case HTTP_CB_SWEEP:
		if (pss != NULL && pss->ws != NULL)
			http_ws_sweep(pss->ws);
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		run_resumed(h);
		for (size_t i = 0; i < h->nwakers; i++)
			h->wakers[i].fn(h->wakers[i].arg);
		return 0;
	case LWS_CALLBACK_HTTP:
		if (pss == NULL)
			return -1;
		return on_request(h, wsi, pss, in, len);
	case LWS_CALLBACK_HTTP_BODY:
		if (ps == NULL || ps->state != ST_BODY)
			return 0; /* refused or after a 413: drop whatever still arrives */
		if (ps->sops != NULL) {
			if (ps->sops->body(ps->sctx, in, len, &ps->resp) != 0) {
				ps->resp.close = 1;
				respond(wsi, ps);
			}
			return 0;
		}
		if (veil_buf_append(&ps->body, in, len) != 0)
			too_large(wsi, ps);
		return 0;
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		if (ps != NULL && ps->state == ST_DRAIN) {
			respond(wsi, ps);
			return 0;
		}
		if (ps == NULL || ps->state != ST_BODY)
			return 0;
		if (ps->sops != NULL) {
			ps->sops->end(ps->sctx, &ps->resp);
			ps->sctx_complete = 1;
			respond(wsi, ps);
			return 0;
		}
		dispatch(h, wsi, ps);
		return 0;
	case LWS_CALLBACK_HTTP_WRITEABLE:
		if (ps == NULL || ps->state != ST_SEND)
			return 0;
		return send_some(wsi, pss);
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
	case LWS_CALLBACK_CLOSED_HTTP:
		if (pss != NULL)
			pss_end_request(pss);
		return 0;
	default: break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static void lws_log_emit(int level, const char *line)
{
	(void)level;
	char msg[256];
	snprintf(msg, sizeof msg, "%s", line);
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	veil_log_error("http: %s", msg);
}

/* AF_INET or AF_INET6 for a numeric address, 0 for anything else. */
static int listen_family(const char *addr)
{
	unsigned char a[sizeof(struct in6_addr)];
	if (inet_pton(AF_INET, addr, a) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, addr, a) == 1)
		return AF_INET6;
	return 0;
}

int veil_http_probe(const char *addr, uint16_t port, char *err, size_t errcap)
{
	struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(port)};
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
	struct sockaddr *sa = (struct sockaddr *)&a4;
	socklen_t len = sizeof a4;
	if (inet_pton(AF_INET6, addr, &a6.sin6_addr) == 1) {
		sa = (struct sockaddr *)&a6;
		len = sizeof a6;
	} else if (inet_pton(AF_INET, addr, &a4.sin_addr) != 1) {
		snprintf(err, errcap, "--listen %s is not an IPv4 or IPv6 address", addr);
		return -1;
	}
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	if (fd < 0) {
		snprintf(err, errcap, "cannot make a socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	int rc = bind(fd, sa, len) == 0 && listen(fd, 1) == 0 ? 0 : errno;
	close(fd);
	if (rc == 0)
		return 0;
	const char *hint =
	    rc == EADDRINUSE      ? " (another program, perhaps another veild, listens there)"
	    : rc == EADDRNOTAVAIL ? " (no network interface of this machine has that address)"
	    : rc == EACCES        ? " (ports below 1024 need privileges)"
	                          : "";
	snprintf(err, errcap, "cannot listen on %s:%u for HTTP: %s%s", addr, port, strerror(rc),
	         hint);
	return -1;
}

int veil_http_new(struct veil_http **out, const struct veil_server *srv)
{
	*out = NULL;
	struct veil_http *h = calloc(1, sizeof *h);
	if (h == NULL)
		return VEIL_ENOMEM;
	pthread_mutex_init(&h->rlock, NULL);
	h->resumed_tail = &h->resumed;
	h->max_body = srv->cfg.http_max_body ? srv->cfg.http_max_body : VEIL_HTTP_DEFAULT_MAX_BODY;
	h->ws_sweep_ms = VEIL_HTTP_WS_SWEEP_MS;
	h->ntrusted = srv->cfg.n_trusted_proxies;
	memcpy(h->trusted, srv->cfg.trusted_proxies, sizeof h->trusted);
	int rc = veil_connlimit_new(&h->conns, srv->cfg.http_conn_per_addr,
	                            srv->cfg.http_conn_rate_per_min, VEIL_HTTP_MAX_FDS);
	if (rc != 0) {
		free(h);
		return rc;
	}
	h->protocols[0] = (struct lws_protocols){
	    .name = "http",
	    .callback = http_cb,
	    .per_session_data_size = sizeof(struct http_pss),
	};
	atomic_init(&h->stop, 0);

	http_lwsmem_install();
	/* lws logs errors only; its notices would carry client addresses. */
	lws_set_log_level(LLL_ERR, lws_log_emit);

	struct lws_context_creation_info info;
	memset(&info, 0, sizeof info);
	info.port = srv->cfg.http_port;
	/*
	 * lws takes iface as an interface name or a numeric address. With IPv6
	 * compiled in (Debian's build) it binds an AF_INET6 socket and copies
	 * the parsed address into a sockaddr_in6 whatever its family: an IPv4
	 * literal lands in sin6_flowinfo and the socket binds [::], every
	 * address of the machine. So only literals are accepted, an IPv4 one
	 * with IPv6 off for this vhost, an IPv6 one v6-only; and a bind that
	 * fails (an address the machine does not have) fails the context
	 * instead of lws waiting for the interface to appear.
	 */
	int family = listen_family(srv->cfg.listen);
	if (family == 0) {
		veil_log_error("http: listen address %s is not an IPv4 or IPv6 address",
		               srv->cfg.listen);
		veil_connlimit_free(h->conns);
		free(h);
		return VEIL_EINVAL;
	}
	/* lws leaks a little and logs several lines when it cannot bind: find out first. */
	char why[256];
	if (veil_http_probe(srv->cfg.listen, srv->cfg.http_port, why, sizeof why) != 0) {
		veil_log_error("http: %s", why);
		veil_connlimit_free(h->conns);
		free(h);
		return VEIL_EIO;
	}
	info.iface = srv->cfg.listen;
	info.options |= LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
	if (family == AF_INET)
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	else
		info.options |=
		    LWS_SERVER_OPTION_IPV6_V6ONLY_MODIFY | LWS_SERVER_OPTION_IPV6_V6ONLY_VALUE;
	info.protocols = h->protocols;
	info.user = h;
	info.max_http_header_data = 4096;
	/* lws reads and writes through this per-thread buffer; 4 KiB (its default) caps blob speed. */
	info.pt_serv_buf_size = VEIL_HTTP_FILE_CHUNK;
	info.timeout_secs = 10;
	info.keepalive_timeout = 30;
	info.fd_limit_per_thread = VEIL_HTTP_MAX_FDS;
	info.count_threads = 1;
	info.server_string = "veild";
	h->ctx = lws_create_context(&info);
	if (h->ctx == NULL) {
		veil_connlimit_free(h->conns);
		free(h);
		return VEIL_EIO;
	}
	struct lws_vhost *vh = lws_get_vhost_by_name(h->ctx, "default");
	int port = vh != NULL ? lws_get_vhost_listen_port(vh) : -1;
	if (port <= 0 || port > 65535) {
		lws_context_destroy(h->ctx);
		veil_connlimit_free(h->conns);
		free(h);
		return VEIL_EIO;
	}
	h->port = (uint16_t)port;
	*out = h;
	return 0;
}

int veil_http_route(struct veil_http *h, const char *method, const char *prefix,
                    veil_http_handler fn, void *arg)
{
	if (h->running || fn == NULL || prefix == NULL || prefix[0] != '/')
		return VEIL_EINVAL;
	if (h->nroutes >= VEIL_HTTP_MAX_ROUTES)
		return VEIL_ELIMIT;
	struct http_route *r = &h->routes[h->nroutes];
	size_t pl = strlen(prefix);
	if (pl >= sizeof r->prefix || (method != NULL && strlen(method) >= sizeof r->method))
		return VEIL_ELIMIT;
	memcpy(r->prefix, prefix, pl + 1);
	r->plen = pl;
	snprintf(r->method, sizeof r->method, "%s", method != NULL ? method : "");
	r->fn = fn;
	r->arg = arg;
	h->nroutes++;
	return 0;
}

/* The buffered handler slot of a streaming route; never called. */
static void stream_unused(void *arg, const struct veil_http_req *req, struct veil_http_resp *resp)
{
	(void)arg;
	(void)req;
	veil_http_resp_error(resp, 500, "internal error", NULL);
}

int veil_http_route_stream(struct veil_http *h, const char *method, const char *prefix,
                           const struct veil_http_stream_ops *ops, void *arg)
{
	if (ops == NULL || ops->begin == NULL || ops->body == NULL || ops->end == NULL ||
	    ops->release == NULL)
		return VEIL_EINVAL;
	int rc = veil_http_route(h, method, prefix, stream_unused, arg);
	if (rc == 0)
		h->routes[h->nroutes - 1].sops = ops;
	return rc;
}

int veil_http_limit_set(struct veil_http *h, const char *prefix, uint32_t per_min)
{
	int rc = VEIL_ENOTFOUND;
	/* nlimits is fixed once the listener runs. */
	for (size_t i = 0; h != NULL && i < h->nlimits; i++)
		if (strcmp(h->limits[i].prefix, prefix) == 0)
			rc = veil_ratelimit_set_rate(h->limits[i].rl, per_min);
	return rc;
}

int veil_http_limit(struct veil_http *h, const char *prefix, uint32_t per_min)
{
	if (h->running || prefix == NULL || prefix[0] != '/')
		return VEIL_EINVAL;
	if (per_min == 0)
		return 0;
	struct http_limit *l = &h->limits[h->nlimits];
	size_t pl = strlen(prefix);
	if (h->nlimits >= VEIL_HTTP_MAX_LIMITS || pl >= sizeof l->prefix)
		return VEIL_ELIMIT;
	int rc = veil_ratelimit_new(&l->rl, per_min);
	if (rc != 0)
		return rc;
	memcpy(l->prefix, prefix, pl + 1);
	l->plen = pl;
	h->nlimits++;
	return 0;
}

int veil_http_ws_route(struct veil_http *h, const char *prefix, size_t max_message,
                       const struct veil_http_ws_ops *ops, void *arg)
{
	if (h->running || prefix == NULL || prefix[0] != '/' || ops == NULL || ops->open == NULL ||
	    ops->message == NULL || ops->closed == NULL || max_message == 0)
		return VEIL_EINVAL;
	struct http_ws_route *r = &h->ws.r[h->ws.n];
	size_t pl = strlen(prefix);
	if (h->ws.n >= VEIL_HTTP_MAX_WS_ROUTES || pl >= sizeof r->prefix)
		return VEIL_ELIMIT;
	memcpy(r->prefix, prefix, pl + 1);
	r->plen = pl;
	r->max_message = max_message;
	r->ops = ops;
	r->arg = arg;
	h->ws.n++;
	return 0;
}

int veil_http_on_stop(struct veil_http *h, void (*fn)(void *arg), void *arg)
{
	if (h->ncleanups >= VEIL_HTTP_MAX_CLEANUPS)
		return VEIL_ELIMIT;
	h->cleanups[h->ncleanups].fn = fn;
	h->cleanups[h->ncleanups].arg = arg;
	h->ncleanups++;
	return 0;
}

int veil_http_on_pass(struct veil_http *h, void (*fn)(void *arg), void *arg)
{
	if (h->on_pass.fn != NULL)
		return VEIL_ELIMIT;
	h->on_pass.fn = fn;
	h->on_pass.arg = arg;
	return 0;
}

int veil_http_on_wake(struct veil_http *h, void (*fn)(void *arg), void *arg)
{
	if (h->nwakers >= VEIL_HTTP_MAX_CLEANUPS)
		return VEIL_ELIMIT;
	h->wakers[h->nwakers].fn = fn;
	h->wakers[h->nwakers].arg = arg;
	h->nwakers++;
	return 0;
}

void veil_http_wake(struct veil_http *h)
{
	/* Not once veil_http_stop has begun: the context may be gone. */
	pthread_mutex_lock(&h->rlock);
	if (!h->resume_closed)
		lws_cancel_service(h->ctx);
	pthread_mutex_unlock(&h->rlock);
}

void veil_http_ws_sweep_ms(struct veil_http *h, uint32_t ms)
{
	if (!h->running && ms > 0)
		h->ws_sweep_ms = ms;
}

unsigned http_sweeps(struct veil_http *h)
{
	return atomic_load(&h->sweeps);
}

/* Visits every connection: the idle WebSockets give back memory (http_ws_sweep). */
static void sweep_cb(lws_sorted_usec_list_t *sul)
{
	struct veil_http *h = lws_container_of(sul, struct veil_http, sweep);
	struct lws_vhost *vh = lws_get_vhost_by_name(h->ctx, "default");
	const struct lws_protocols *p = vh != NULL ? lws_vhost_name_to_protocol(vh, "http") : NULL;
	if (p != NULL)
		lws_callback_all_protocol_vhost_args(vh, p, HTTP_CB_SWEEP, NULL, 0);
	atomic_fetch_add(&h->sweeps, 1);
	lws_sul_schedule(h->ctx, 0, &h->sweep, sweep_cb, (lws_usec_t)h->ws_sweep_ms * 1000);
}

static void *http_thread(void *arg)
{
	struct veil_http *h = arg;
	if (h->ws.n > 0)
		lws_sul_schedule(h->ctx, 0, &h->sweep, sweep_cb, (lws_usec_t)h->ws_sweep_ms * 1000);
	while (!atomic_load(&h->stop)) {
		if (lws_service(h->ctx, 0) < 0)
			break;
		if (h->on_pass.fn != NULL)
			h->on_pass.fn(h->on_pass.arg);
	}
	return NULL;
}

int veil_http_run(struct veil_http *h)
{
	if (h->running)
		return VEIL_EINVAL;
	if (pthread_create(&h->thread, NULL, http_thread, h) != 0)
		return VEIL_EIO;
	h->running = 1;
	return 0;
}

int veil_http_stopping(const struct veil_http *h)
{
	return h->stopping;
}

uint16_t veil_http_port(const struct veil_http *h)
{
	return h->port;
}

void veil_http_stop(struct veil_http *h)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&h->rlock);
	h->resume_closed = 1;
	pthread_mutex_unlock(&h->rlock);
	if (h->running) {
		atomic_store(&h->stop, 1);
		lws_cancel_service(h->ctx);
		pthread_join(h->thread, NULL);
		h->running = 0;
	}
	lws_sul_cancel(&h->sweep);
	/* Destroying the context closes every connection and frees their state. */
	h->stopping = 1;
	lws_context_destroy(h->ctx);
	veil_connlimit_free(h->conns);
	for (size_t i = 0; i < h->nlimits; i++)
		veil_ratelimit_free(h->limits[i].rl);
	for (size_t i = h->ncleanups; i > 0; i--)
		h->cleanups[i - 1].fn(h->cleanups[i - 1].arg);
	for (struct http_resumed *r = h->resumed, *next; r != NULL; r = next) {
		next = r->next;
		free(r);
	}
	pthread_mutex_destroy(&h->rlock);
	free(h);
}

int veil_http_start(struct veil_http **out, struct veil_server *srv)
{
	struct veil_http *h = NULL;
	int rc = veil_http_new(&h, srv);
	if (rc != 0)
		goto out;
	/* The blob service first: its /directory/identity/blob_cred is more specific. */
	rc = veil_blobsvc_register(h, srv);
	if (rc != 0)
		goto out;
	rc = veil_dirsvc_register(h, srv);
	if (rc != 0)
		goto out;
	rc = veil_http_run(h);
out:
	if (rc != 0) {
		veil_http_stop(h);
		h = NULL;
	}
	*out = h;
	return rc;
}
