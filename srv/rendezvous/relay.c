/*
 * The rendezvous relay: paths keyed by their 32 random bytes, each with at
 * most two connections, on the HTTP thread. See relay.h.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil/err.h"
#include "veil/rendezvous.h"
#include "relay.h"

#define RDV_BUCKETS 1024
/*
 * Bytes an unpaired connection may send before its peer arrives (kept, then
 * forwarded): a handshake frame's worth, since only RRD's Hello could come
 * that early.
 */
#define RDV_PENDING_MAX (VEIL_RDV_HS_FRAME_MAX + 64u)
/*
 * Stop reading a sender while its peer has this much queued; resume once
 * drained. With the 64 KiB message limit a pair holds at most about
 * 2 * (256 + 64) KiB, so --rendezvous-max-paths bounds the relay's memory.
 */
#define RDV_PAUSE_AT (256u * 1024u)

struct rdv_addr {
	struct rdv_addr *next;
	char client[VEIL_HTTP_CLIENT_LEN];
	uint32_t paths;
};

struct rdv_conn;

struct rdv_path {
	struct rdv_path *next;
	uint8_t id[VEIL_RDV_PATH_LEN];
	struct rdv_conn *c[2];
	struct rdv_addr *addr;
	int paired; /* both sides came once: nobody else may join */
};

struct rdv_svc {
	struct veil_http *h;
	uint32_t wait_ms, max_paths, per_addr;
	size_t n_paths;
	uint8_t hkey[crypto_shorthash_KEYBYTES];
	struct rdv_path *paths[RDV_BUCKETS];
	struct rdv_addr *addrs[RDV_BUCKETS];
};

struct rdv_conn {
	struct rdv_svc *s;
	struct veil_http_ws *ws;
	struct rdv_path *path; /* NULL once refused or detached */
	int established, paused;
	struct veil_buf pending; /* u32-le length || message, while unpaired */
};

static size_t bucket(const struct rdv_svc *s, const void *p, size_t n)
{
	uint8_t h[crypto_shorthash_BYTES];
	crypto_shorthash(h, p, n, s->hkey);
	return ((size_t)h[0] | (size_t)h[1] << 8) % RDV_BUCKETS;
}

static struct rdv_path *path_find(struct rdv_svc *s, const uint8_t id[static VEIL_RDV_PATH_LEN])
{
	for (struct rdv_path *p = s->paths[bucket(s, id, VEIL_RDV_PATH_LEN)]; p != NULL;
	     p = p->next)
		if (memcmp(p->id, id, VEIL_RDV_PATH_LEN) == 0)
			return p;
	return NULL;
}

static struct rdv_addr *addr_get(struct rdv_svc *s, const char *client, int create)
{
	size_t b = bucket(s, client, strlen(client));
	for (struct rdv_addr *a = s->addrs[b]; a != NULL; a = a->next)
		if (strcmp(a->client, client) == 0)
			return a;
	if (!create)
		return NULL;
	struct rdv_addr *a = calloc(1, sizeof *a);
	if (a == NULL)
		return NULL;
	snprintf(a->client, sizeof a->client, "%s", client);
	a->next = s->addrs[b];
	s->addrs[b] = a;
	return a;
}

static void addr_put(struct rdv_svc *s, struct rdv_addr *a)
{
	if (--a->paths > 0)
		return;
	struct rdv_addr **pp = &s->addrs[bucket(s, a->client, strlen(a->client))];
	while (*pp != a)
		pp = &(*pp)->next;
	*pp = a->next;
	free(a);
}

static void path_free(struct rdv_svc *s, struct rdv_path *p)
{
	struct rdv_path **pp = &s->paths[bucket(s, p->id, VEIL_RDV_PATH_LEN)];
	while (*pp != p)
		pp = &(*pp)->next;
	*pp = p->next;
	addr_put(s, p->addr);
	s->n_paths--;
	free(p);
}

static struct rdv_conn *peer_of(const struct rdv_conn *c)
{
	if (c->path == NULL)
		return NULL;
	return c->path->c[0] == c ? c->path->c[1] : c->path->c[0];
}

/* Forwards one message to the peer; pauses c while the peer lags behind. */
static int forward(struct rdv_conn *c, struct rdv_conn *peer, const uint8_t *p, size_t n)
{
	int rc = veil_http_ws_send(peer->ws, p, n);
	if (rc == VEIL_ECLOSED)
		return 0; /* the peer is going; its closed callback closes c */
	if (rc != 0)
		return rc;
	if (!c->paused && veil_http_ws_queued(peer->ws) > RDV_PAUSE_AT) {
		c->paused = 1;
		veil_http_ws_rx_pause(c->ws, 1);
	}
	return 0;
}

static int rdv_open(void *arg, struct veil_http_ws *ws, const char *path, const char *client,
                    void **ctx)
{
	struct rdv_svc *s = arg;
	uint8_t id[VEIL_RDV_PATH_LEN];
	struct rdv_conn *c = calloc(1, sizeof *c);
	if (c == NULL)
		return -1;
	c->s = s;
	c->ws = ws;
	veil_buf_init(&c->pending, RDV_PENDING_MAX);
	*ctx = c;
	const char *tail = path + strlen(VEIL_RDV_PREFIX);
	if (strlen(tail) != VEIL_RDV_PATH_HEX_LEN ||
	    veil_hex_decode(id, sizeof id, tail, VEIL_RDV_PATH_HEX_LEN) != 0) {
		veil_http_ws_close(ws, VEIL_RDV_CLOSE_PROTOCOL); /* invalid path */
		return 0;
	}
	struct rdv_path *p = path_find(s, id);
	if (p != NULL) {
		if (p->paired || p->c[0] == NULL) {
			veil_http_ws_close(ws, VEIL_RDV_CLOSE_PROTOCOL); /* path full */
			return 0;
		}
		p->c[1] = c;
		p->paired = 1;
		c->path = p;
		struct rdv_conn *first = p->c[0];
		if (first->established)
			veil_http_ws_timer(first->ws, 0);
		/* What the first side sent while alone goes out after the 101. */
		size_t off = 0;
		while (off + 4 <= first->pending.len) {
			const uint8_t *b = first->pending.p + off;
			size_t n = (size_t)b[0] | (size_t)b[1] << 8 | (size_t)b[2] << 16 |
			           (size_t)b[3] << 24;
			if (forward(first, c, b + 4, n) != 0) {
				veil_http_ws_close(ws, VEIL_RDV_CLOSE_PROTOCOL);
				break;
			}
			off += 4 + n;
		}
		veil_buf_release(&first->pending);
		return 0;
	}
	struct rdv_addr *a = addr_get(s, client, 0);
	if (s->n_paths >= s->max_paths || (a != NULL && a->paths >= s->per_addr) ||
	    (a == NULL && (a = addr_get(s, client, 1)) == NULL) ||
	    (p = calloc(1, sizeof *p)) == NULL) {
		veil_http_ws_close(ws, VEIL_RDV_CLOSE_PROTOCOL); /* over a limit */
		return 0;
	}
	a->paths++;
	memcpy(p->id, id, sizeof id);
	p->addr = a;
	p->c[0] = c;
	size_t b = bucket(s, id, sizeof id);
	p->next = s->paths[b];
	s->paths[b] = p;
	s->n_paths++;
	c->path = p;
	return 0;
}

static void rdv_established(void *ctx)
{
	struct rdv_conn *c = ctx;
	c->established = 1;
	if (c->path != NULL && !c->path->paired)
		veil_http_ws_timer(c->ws, c->s->wait_ms);
}

static void rdv_timer(void *ctx)
{
	struct rdv_conn *c = ctx;
	if (c->path != NULL && !c->path->paired)
		veil_http_ws_close(c->ws, VEIL_RDV_CLOSE_INIT_TIMEOUT);
}

static void rdv_message(void *ctx, const uint8_t *p, size_t n)
{
	struct rdv_conn *c = ctx;
	if (c->path == NULL)
		return;
	struct rdv_conn *peer = peer_of(c);
	if (peer == NULL) {
		if (c->path->paired)
			return; /* the peer went; this side is being closed */
		if (veil_buf_append_u32le(&c->pending, (uint32_t)n) != 0 ||
		    veil_buf_append(&c->pending, p, n) != 0)
			veil_http_ws_close(c->ws, VEIL_RDV_CLOSE_PROTOCOL);
		return;
	}
	if (forward(c, peer, p, n) != 0) {
		veil_http_ws_close(c->ws, VEIL_RDV_CLOSE_PROTOCOL);
		veil_http_ws_close(peer->ws, VEIL_RDV_CLOSE_PROTOCOL);
	}
}

static void rdv_drained(void *ctx)
{
	struct rdv_conn *peer = peer_of(ctx);
	if (peer != NULL && peer->paused) {
		peer->paused = 0;
		veil_http_ws_rx_pause(peer->ws, 0);
	}
}

static void rdv_closed(void *ctx)
{
	struct rdv_conn *c = ctx;
	struct rdv_svc *s = c->s;
	struct rdv_path *p = c->path;
	if (p != NULL) {
		struct rdv_conn *peer = peer_of(c);
		p->c[p->c[0] == c ? 0 : 1] = NULL;
		if (peer != NULL) {
			int code = veil_http_ws_peer_close_code(c->ws);
			if (!(code == VEIL_RDV_CLOSE_NORMAL || (code >= 4100 && code <= 4199)))
				code = VEIL_RDV_CLOSE_OTHER_GONE;
			if (!veil_http_stopping(s->h))
				veil_http_ws_close(peer->ws, code);
		} else {
			path_free(s, p);
		}
	}
	veil_buf_release(&c->pending);
	free(c);
}

static const struct veil_http_ws_ops rdv_ops = {
    .open = rdv_open,
    .message = rdv_message,
    .drained = rdv_drained,
    .closed = rdv_closed,
    .timer = rdv_timer,
    .established = rdv_established,
};

static void rdv_free(void *arg)
{
	struct rdv_svc *s = arg;
	for (size_t i = 0; i < RDV_BUCKETS; i++) {
		while (s->paths[i] != NULL) {
			struct rdv_path *p = s->paths[i];
			s->paths[i] = p->next;
			free(p);
		}
		while (s->addrs[i] != NULL) {
			struct rdv_addr *a = s->addrs[i];
			s->addrs[i] = a->next;
			free(a);
		}
	}
	free(s);
}

int veil_rdvsvc_register(struct veil_http *h, const struct veil_server *srv)
{
	struct rdv_svc *s = calloc(1, sizeof *s);
	if (s == NULL)
		return VEIL_ENOMEM;
	s->h = h;
	s->wait_ms = srv->cfg.rdv_wait_s * 1000u;
	s->max_paths = srv->cfg.rdv_max_paths;
	s->per_addr = srv->cfg.rdv_paths_per_addr;
	crypto_shorthash_keygen(s->hkey);
	int rc = veil_http_ws_route(h, VEIL_RDV_PREFIX, VEIL_RDV_WS_MESSAGE_MAX, &rdv_ops, s);
	if (rc == 0)
		rc = veil_http_on_stop(h, rdv_free, s);
	if (rc != 0)
		free(s);
	return rc;
}
