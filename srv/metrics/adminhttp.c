/* The admin HTTP listener: /healthz, /readyz, /metrics (see adminhttp.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adminhttp.h"
#include "veil/err.h"

struct ah_conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	struct veil_adminhttp *a;
	struct ah_conn *next;
	int handles; /* of tcp and timer, not yet closed */
	int busy;    /* a query runs on the thread pool */
	int closing;
	uint8_t in[VEIL_ADMINHTTP_MAX_HEAD];
	size_t len;
	int what; /* ROUTE_* */
	struct veil_metrics_input mi;
	struct veil_buf out; /* the whole response */
	uv_work_t work;
	uv_write_t wr;
};

struct veil_adminhttp {
	uv_loop_t *loop;
	struct veil_server *srv;
	uv_tcp_t server;
	int server_open;
	uint16_t port;
	veil_adminhttp_collect collect;
	void *arg;
	struct ah_conn *conns;
	size_t nconns;
	int stopping;
};

enum { ROUTE_READY = 1, ROUTE_METRICS = 2 };

int veil_adminhttp_parse(const uint8_t *p, size_t n, char method[static 8],
                         char path[static VEIL_ADMINHTTP_MAX_PATH + 1], int *ready)
{
	method[0] = '\0';
	path[0] = '\0';
	*ready = 0;
	/* The head ends with an empty line. */
	size_t end = 0;
	for (size_t i = 0; i + 3 < n && end == 0; i++)
		if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n')
			end = i + 4;
	for (size_t i = 0; i + 1 < n && end == 0; i++)
		if (p[i] == '\n' && p[i + 1] == '\n')
			end = i + 2;
	if (end == 0)
		return n >= VEIL_ADMINHTTP_MAX_HEAD ? VEIL_ELIMIT : VEIL_EAGAIN;
	if (end > VEIL_ADMINHTTP_MAX_HEAD)
		return VEIL_ELIMIT;
	size_t i = 0, m = 0;
	while (i < end && p[i] >= 'A' && p[i] <= 'Z' && m < 7)
		method[m++] = (char)p[i++];
	method[m] = '\0';
	if (m == 0 || i >= end || p[i] != ' ')
		return VEIL_EPROTO;
	i++;
	if (i >= end || p[i] != '/')
		return VEIL_EPROTO;
	size_t start = i;
	while (i < end && p[i] > ' ' && p[i] < 0x7f && p[i] != '?')
		i++;
	size_t plen = i - start;
	if (plen > VEIL_ADMINHTTP_MAX_PATH)
		return VEIL_EPROTO;
	memcpy(path, p + start, plen);
	path[plen] = '\0';
	if (i < end && p[i] == '?') {
		size_t q = ++i;
		while (i < end && p[i] > ' ' && p[i] < 0x7f)
			i++;
		*ready = i - q == 5 && memcmp(p + q, "ready", 5) == 0;
	}
	static const char ver[] = " HTTP/1.";
	if (end - i < sizeof ver - 1 + 1 || memcmp(p + i, ver, sizeof ver - 1) != 0)
		return VEIL_EPROTO;
	i += sizeof ver - 1;
	if (p[i] != '0' && p[i] != '1')
		return VEIL_EPROTO;
	i++;
	if (i + 1 >= end || !((p[i] == '\r' && p[i + 1] == '\n') || p[i] == '\n'))
		return VEIL_EPROTO;
	return 0;
}

static void conn_freed(uv_handle_t *h)
{
	struct ah_conn *c = h->data;
	if (--c->handles > 0)
		return;
	struct veil_adminhttp *a = c->a;
	for (struct ah_conn **pp = &a->conns; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	a->nconns--;
	veil_buf_release(&c->out);
	free(c);
	if (a->stopping && a->nconns == 0 && !a->server_open)
		free(a);
}

static void conn_close(struct ah_conn *c)
{
	if (c->closing || c->busy)
		return;
	c->closing = 1;
	uv_close((uv_handle_t *)&c->timer, conn_freed);
	uv_close((uv_handle_t *)&c->tcp, conn_freed);
}

static void on_written(uv_write_t *w, int status)
{
	(void)status;
	conn_close(w->data);
}

/* Sends a response with a body already in c->out after a placeholder head. */
static void send_resp(struct ah_conn *c, int status, const char *ctype, const char *body,
                      size_t blen)
{
	char head[256];
	const char *reason = status == 200   ? "OK"
	                     : status == 404 ? "Not Found"
	                     : status == 405 ? "Method Not Allowed"
	                     : status == 503 ? "Service Unavailable"
	                                     : "Bad Request";
	int hn = snprintf(head, sizeof head,
	                  "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	                  "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
	                  status, reason, ctype, blen);
	struct veil_buf b;
	veil_buf_init(&b, (size_t)hn + blen + 1);
	if (hn < 0 || veil_buf_append(&b, head, (size_t)hn) != 0 ||
	    veil_buf_append(&b, body, blen) != 0) {
		veil_buf_release(&b);
		conn_close(c);
		return;
	}
	veil_buf_release(&c->out);
	c->out = b;
	uv_buf_t ub = uv_buf_init((char *)c->out.p, (unsigned)c->out.len);
	c->wr.data = c;
	uv_read_stop((uv_stream_t *)&c->tcp);
	if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &ub, 1, on_written) != 0)
		conn_close(c);
}

static void send_text(struct ah_conn *c, int status, const char *text)
{
	send_resp(c, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* Thread pool: the store's part of /readyz and /metrics. */
static void work_run(uv_work_t *w)
{
	struct ah_conn *c = w->data;
	struct veil_store *s = c->a->srv->store;
	c->mi.store_up = veil_store_ping(s) == 0;
	c->mi.store_backend = veil_store_backend(s);
	if (c->what != ROUTE_METRICS)
		return;
	struct veil_queue_stats q;
	if (c->mi.store_up && veil_store_queue_stats(s, &q) == 0) {
		c->mi.have_queue = 1;
		c->mi.queue_messages = q.messages;
		c->mi.queue_bytes = q.bytes;
		c->mi.queue_recipients = q.recipients;
		c->mi.queue_expired = q.expired;
		c->mi.queue_max = q.max_queue;
	}
	veil_buf_release(&c->out);
	veil_buf_init(&c->out, 1u << 20);
	if (veil_metrics_render(&c->out, &c->mi) != 0)
		veil_buf_release(&c->out);
}

static void work_done(uv_work_t *w, int status)
{
	struct ah_conn *c = w->data;
	c->busy = 0;
	if (status != 0 || c->a->stopping) {
		conn_close(c);
		return;
	}
	if (c->what == ROUTE_READY) {
		if (c->mi.store_up)
			send_text(c, 200, "ready\n");
		else
			send_text(c, 503, "not ready: the store does not answer\n");
		return;
	}
	if (c->out.len == 0) {
		send_text(c, 503, "cannot render the metrics\n");
		return;
	}
	struct veil_buf body = c->out;
	veil_buf_init(&c->out, 0);
	send_resp(c, 200, "text/plain; version=0.0.4; charset=utf-8", (const char *)body.p,
	          body.len);
	veil_buf_release(&body);
}

static void handle(struct ah_conn *c)
{
	char method[8], path[VEIL_ADMINHTTP_MAX_PATH + 1];
	int ready;
	int rc = veil_adminhttp_parse(c->in, c->len, method, path, &ready);
	if (rc == VEIL_EAGAIN)
		return;
	if (rc != 0) {
		send_text(c, 400, "bad request\n");
		return;
	}
	int known = strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0 ||
	            strcmp(path, "/metrics") == 0;
	if (!known) {
		send_text(c, 404, "not found: /healthz, /readyz, /metrics\n");
		return;
	}
	if (strcmp(method, "GET") != 0) {
		send_text(c, 405, "GET only\n");
		return;
	}
	if (strcmp(path, "/healthz") == 0 && !ready) {
		send_text(c, 200, "ok\n");
		return;
	}
	c->what = strcmp(path, "/metrics") == 0 ? ROUTE_METRICS : ROUTE_READY;
	uv_read_stop((uv_stream_t *)&c->tcp);
	if (c->what == ROUTE_METRICS && c->a->collect != NULL)
		c->a->collect(c->a->arg, &c->mi);
	c->work.data = c;
	c->busy = 1;
	if (uv_queue_work(c->a->loop, &c->work, work_run, work_done) != 0) {
		c->busy = 0;
		send_text(c, 503, "busy\n");
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct ah_conn *c = h->data;
	*buf = uv_buf_init((char *)c->in + c->len, (unsigned)(sizeof c->in - c->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	(void)buf;
	struct ah_conn *c = s->data;
	if (nread < 0) {
		conn_close(c);
		return;
	}
	c->len += (size_t)nread;
	handle(c);
}

static void on_timeout(uv_timer_t *t)
{
	struct ah_conn *c = t->data;
	conn_close(c);
}

static void on_connection(uv_stream_t *server, int status)
{
	struct veil_adminhttp *a = server->data;
	if (status != 0 || a->stopping)
		return;
	struct ah_conn *c = calloc(1, sizeof *c);
	if (c == NULL)
		return;
	c->a = a;
	veil_buf_init(&c->out, 0);
	uv_tcp_init(a->loop, &c->tcp);
	uv_timer_init(a->loop, &c->timer);
	c->tcp.data = c->timer.data = c;
	c->handles = 2;
	c->next = a->conns;
	a->conns = c;
	a->nconns++;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
	    a->nconns > VEIL_ADMINHTTP_MAX_CONNS ||
	    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
		conn_close(c);
		return;
	}
	uv_timer_start(&c->timer, on_timeout, VEIL_ADMINHTTP_TIMEOUT_MS, 0);
}

static void server_closed(uv_handle_t *h)
{
	struct veil_adminhttp *a = h->data;
	a->server_open = 0;
	if (a->nconns == 0)
		free(a);
}

int veil_adminhttp_start(struct veil_adminhttp **out, uv_loop_t *loop, struct veil_server *srv,
                         const char *addr, uint16_t port, veil_adminhttp_collect collect, void *arg,
                         char *err, size_t errcap)
{
	struct sockaddr_storage sa;
	*out = NULL;
	if (uv_ip4_addr(addr, port, (struct sockaddr_in *)&sa) != 0 &&
	    uv_ip6_addr(addr, port, (struct sockaddr_in6 *)&sa) != 0) {
		snprintf(err, errcap, "--admin-listen %s is not an IPv4 or IPv6 address", addr);
		return VEIL_EINVAL;
	}
	struct veil_adminhttp *a = calloc(1, sizeof *a);
	if (a == NULL) {
		snprintf(err, errcap, "out of memory");
		return VEIL_ENOMEM;
	}
	a->loop = loop;
	a->srv = srv;
	a->collect = collect;
	a->arg = arg;
	uv_tcp_init(loop, &a->server);
	a->server.data = a;
	a->server_open = 1;
	int rc = uv_tcp_bind(&a->server, (struct sockaddr *)&sa, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&a->server, 64, on_connection);
	if (rc != 0) {
		snprintf(err, errcap, "cannot listen on %s:%u for the admin listener: %s", addr,
		         (unsigned)port, uv_strerror(rc));
		a->stopping = 1;
		uv_close((uv_handle_t *)&a->server, server_closed);
		return VEIL_EIO;
	}
	struct sockaddr_storage bound;
	int blen = sizeof bound;
	a->port = port;
	if (uv_tcp_getsockname(&a->server, (struct sockaddr *)&bound, &blen) == 0)
		a->port =
		    ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
		                                      : ((struct sockaddr_in *)&bound)->sin_port);
	*out = a;
	return 0;
}

uint16_t veil_adminhttp_port(const struct veil_adminhttp *a)
{
	return a != NULL ? a->port : 0;
}

void veil_adminhttp_stop(struct veil_adminhttp *a)
{
	if (a == NULL || a->stopping)
		return;
	a->stopping = 1;
	for (struct ah_conn *c = a->conns; c != NULL; c = c->next)
		conn_close(c);
	uv_close((uv_handle_t *)&a->server, server_closed);
}
