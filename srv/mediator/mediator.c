/*
 * The mediator service: the D2M handshake, device slots, durable
 * reflection queues (with a limit, 4114), leader election, every device's
 * CSP proxy, device management (0x30..0x34), transactions (0x40..0x45),
 * the handshake timeout and the expiry of VOLATILE slots.
 *
 * Everything runs on the HTTP listener's thread, one callback at a time, so
 * the in-memory state (connected devices per group, the leader) needs no
 * locks. Per connection:
 *
 *   HELLO  ServerHello sent; proxy containers (the client's early CSP
 *          client-hello) are buffered (at most MD_EARLY_MAX bytes, then
 *          4010); ClientHello is verified against the group ID of the
 *          URL, the slot rules applied, ServerInfo sent. Then the device's
 *          own CSP session opens: a loopback TCP connection to the chat
 *          service, which gets the buffered proxy bytes first.
 *   READY  proxy containers go straight to the device's chat connection;
 *          the chat service's bytes come back cut at CSP message
 *          boundaries, one message per proxy container. The chat
 *          connection ending closes the device (4000). The device's
 *          reflection queue is pumped from the store (a batch at a time,
 *          as the socket drains; once caught up, new reflects come from
 *          memory after their commit); once it is empty the device gets
 *          ReflectionQueueDry, and if its group has no leader it is
 *          promoted (RolePromotedToLeader).
 *   CLOSING  closed with a code; nothing more is read.
 *
 * Every device may send through its CSP session (it logs in with its
 * csp-device-id); only the leader receives: on its promotion it sends
 * unblock-incoming-messages, which makes its session the identity's
 * receiving connection in the chat service (srv/chat/chat.c). When the
 * leader goes, the next device promoted unblocks in turn. A device's CSP
 * session is an in-process session of this veild's chat service (a pipe,
 * srv/chat/chat.h): its bytes pass in memory, with no socket and no address
 * for the chat service to see.
 *
 * Transactions: a group has at most one lock holder. BeginTransaction from
 * another device while it is held gets TransactionRejected (the holder and
 * its encrypted scope). The holder's reflects are acked at once (the ack
 * carries the timestamp they are later stored with) but held in memory and
 * stored and delivered only at CommitTransaction; if the transaction ends
 * any other way (TTL, 4011; disconnect; any close) it is aborted and they
 * are dropped, as the specification says the mediator aborts the
 * transaction: the client, without a CommitTransactionAck, redoes it. Every
 * end sends TransactionEnded to the group's other connected devices.
 *
 * Several nodes on one PostgreSQL store: see mstore.h; what no event
 * announces (a node that died, a lost listener) is made up for by md_check.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "mediator.h"
#include "cspcut.h"
#include "chat/chat.h"
#include "mstore.h"

#define MD_BUCKETS 256
#define MD_EARLY_MAX (16u * 1024u)  /* proxy bytes held until the chat connection is open */
#define MD_PUMP_BATCH 16            /* queued messages read from the store at a time */
#define MD_PUMP_HIGH (256u * 1024u) /* bytes waiting on a socket before the pump pauses */
#define MD_EPH_MAX 64               /* ephemeral reflected IDs awaiting an ack, per device */
#define MD_MAX_DEVICES 64           /* hard cap of max-slots */
#define MD_TX_HELD_MAX (2u * 1024u * 1024u) /* reflect bytes held in one transaction */
#define MD_BATCH_MAX 65536                  /* reflects in one commit at most */
#define MD_BATCH_BYTES (8u * 1024u * 1024u) /* envelope bytes kept for one commit at most */

struct md_conn;

struct md_group {
	uint8_t gid[32];
	struct md_conn *conns; /* connected devices past the handshake */
	struct md_conn *leader;
	struct md_conn *tx;      /* the transaction's lock holder */
	uint64_t tx_deadline_ms; /* when its TTL runs out */
	size_t batch_bytes; /* bytes of its reflected messages in the batch of round bytes_round */
	uint64_t bytes_round; /* the batch_done round (see rounds) batch_bytes counts for */
	uint64_t fed;         /* the batch_done round that last fed it */
	/* The lock holder's encrypted scope, allocated while a transaction runs (memory per group). */
	uint8_t *tx_scope;
	int lead_held; /* this node holds the group's leadership in the store */
	uint32_t tx_scope_len;
	/* A device here was rejected for another node's transaction: that holder (see md_check). */
	struct md_txwait *txw;
	struct md_group *next;
};

struct md_txwait {
	uint64_t did;
	size_t scope_len;
	uint8_t scope[];
};

enum { C_HELLO, C_READY, C_CLOSING };

struct md_conn {
	struct veil_medsvc *m;
	struct veil_http_ws *ws;
	int state;
	uint32_t neph; /* IDs in eph */
	uint8_t gid[32];
	struct veil_md_server_hs *hs; /* until the ClientHello (memory per idle device) */
	uint64_t did;
	struct md_group *g;
	struct md_conn *gnext;
	int64_t sent_seq; /* last queue row sent */
	unsigned dry_sent : 1, leader : 1, pumping : 1;
	unsigned pump_blocked : 1; /* the pump stopped at a reflect not yet committed */
	unsigned
	    live : 1; /* every committed row of its queue was sent: new ones may come from memory */
	struct veil_buf *early;    /* proxy payloads before up opens: u32le length || payload */
	struct veil_chat_pipe *up; /* its CSP session */
	struct md_cspcut cut;
	uint32_t *eph; /* ephemeral reflected IDs sent, not acked: MD_EPH_MAX, while any */
	/* Reflects held in its transaction: flags u16le || ts u64le || len u32le || envelope. */
	struct veil_buf *held;
};

struct veil_medsvc {
	struct veil_http *h;
	struct md_store *st;
	uint32_t max_slots;
	uint32_t tx_ttl_s;
	uint32_t hs_timeout_ms;   /* to complete the D2M handshake */
	uint32_t queue_limit;     /* reflected messages queued per device */
	uint32_t volatile_ttl_ms; /* a VOLATILE slot is kept this long offline */
	struct veil_chat *chat;   /* this veild's chat service: the devices' CSP sessions */
	struct md_group *buckets[MD_BUCKETS];
	/* Reflects stored in batches not yet durable, in order: acked once their batch is. */
	struct md_pending *pend;
	size_t npend, pend_cap;
	struct veil_buf penv; /* their envelopes, for the live deliveries */
	uint64_t rounds;      /* batch_done calls so far */
	int check_due;        /* a tick or a resync came from the store: md_check */
};

/* A reflect waiting for its batch to be durable. */
struct md_pending {
	struct md_conn *c; /* the sender; NULL once it is gone (md_closed) */
	uint64_t gen;      /* its batch (md_store_batch_gen) */
	uint64_t did;      /* the sender's device ID */
	uint8_t gid[32];   /* and group */
	uint32_t id;       /* the sender's reflect ID */
	uint32_t rid;      /* the group's reflected ID */
	uint16_t flags;
	int nomem; /* its envelope is not in penv: its group is fed from the store */
	uint64_t ts;
	size_t env_off, env_len; /* in penv */
};

static void conn_close(struct md_conn *c, int code);
static void pump(struct md_conn *c);
static void batch_flush(struct veil_medsvc *m);
static void batch_sync(struct veil_medsvc *m);
static int expire_volatile(struct veil_medsvc *m, const uint8_t gid[static 32]);
static int queue_limit_check(struct md_conn *c, int self);

/* --- groups --- */

static struct md_group *group_find(struct veil_medsvc *m, const uint8_t gid[static 32], int add)
{
	struct md_group **b = &m->buckets[gid[0]];
	for (struct md_group *g = *b; g != NULL; g = g->next)
		if (memcmp(g->gid, gid, 32) == 0)
			return g;
	if (!add)
		return NULL;
	struct md_group *g = calloc(1, sizeof *g);
	if (g == NULL)
		return NULL;
	memcpy(g->gid, gid, 32);
	g->next = *b;
	*b = g;
	return g;
}

static void group_free_if_empty(struct veil_medsvc *m, struct md_group *g)
{
	if (g->conns != NULL)
		return;
	for (struct md_group **p = &m->buckets[g->gid[0]]; *p != NULL; p = &(*p)->next)
		if (*p == g) {
			*p = g->next;
			free(g->txw);
			free(g);
			return;
		}
}

static struct md_conn *group_device(struct md_group *g, uint64_t did)
{
	for (struct md_conn *c = g != NULL ? g->conns : NULL; c != NULL; c = c->gnext)
		if (c->did == did)
			return c;
	return NULL;
}

/* --- sending --- */

static int send_raw_container(struct md_conn *c, struct veil_buf *b)
{
	int rc = veil_http_ws_send(c->ws, b->p, b->len);
	veil_buf_release(b);
	if (rc == VEIL_ELIMIT || rc == VEIL_ENOMEM) {
		veil_log_warn("mediator: a device does not read its messages; closing it");
		conn_close(c, VEIL_MD_CLOSE_INTERNAL);
	}
	return rc;
}

static int send_container(struct md_conn *c, uint8_t type, const uint8_t *p, size_t n)
{
	struct veil_buf b;
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	if (veil_md_container_encode(&b, type, p, n) != 0) {
		veil_buf_release(&b);
		return VEIL_ELIMIT;
	}
	return send_raw_container(c, &b);
}

static int send_reflected(struct md_conn *c, uint16_t flags, uint32_t rid, uint64_t ts,
                          const uint8_t *env, size_t len)
{
	struct veil_buf b;
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	/* One allocation of the right size, not a few as the buffer grows. */
	if (len > VEIL_MD_ENVELOPE_MAX ||
	    veil_buf_reserve(&b, VEIL_MD_HDR_LEN + VEIL_MD_REFLECTED_HDR_LEN + len) != 0 ||
	    veil_md_reflected_encode(&b, flags, rid, ts, env != NULL ? env : (const uint8_t *)"",
	                             len) != 0) {
		veil_buf_release(&b);
		return VEIL_ELIMIT;
	}
	return send_raw_container(c, &b);
}

/* --- the CSP proxy --- */

static int up_emit(void *arg, const uint8_t *msg, size_t len)
{
	struct md_conn *c = arg;
	return send_container(c, VEIL_MD_PROXY, msg, len) == 0 ? 0 : -1;
}

static void up_data(void *ctx, const uint8_t *p, size_t n)
{
	struct md_conn *c = ctx;
	if (c->state == C_CLOSING)
		return;
	int rc = md_cspcut_feed(&c->cut, p, n, up_emit, c);
	if (rc == VEIL_EPROTO || rc == VEIL_ELIMIT) {
		veil_log_error("mediator: the chat service sent a stream that is not CSP");
		conn_close(c, VEIL_MD_CLOSE_CSP_INTERNAL);
	}
}

/* Ends the device's CSP session (if it has not ended). */
static void up_close(struct md_conn *c)
{
	if (c->up == NULL)
		return;
	veil_chat_pipe_close(c->up);
	c->up = NULL;
	md_cspcut_release(&c->cut);
}

static void up_ended(void *ctx)
{
	struct md_conn *c = ctx;
	up_close(c);
	/* The CSP session ended: the device reconnects (4000 allows it). */
	conn_close(c, VEIL_MD_CLOSE_CSP_CLOSED);
}

/* Sends the proxy payloads that came before the chat connection was open. */
static int flush_early(struct md_conn *c)
{
	size_t o = 0;
	int rc = 0;
	while (c->early != NULL && o + 4 <= c->early->len && rc == 0) {
		size_t n = veil_load_u32le(c->early->p + o);
		rc = veil_chat_pipe_send(c->up, c->early->p + o + 4, n) != 0 ? -1 : 0;
		o += 4 + n;
	}
	veil_buf_drop(&c->early);
	return rc;
}

static void proxy_in(struct md_conn *c, const uint8_t *p, size_t n)
{
	if (c->up != NULL) {
		if (veil_chat_pipe_send(c->up, p, n) != 0)
			conn_close(c, VEIL_MD_CLOSE_CSP_INTERNAL);
		return;
	}
	if (veil_buf_lazy(&c->early, MD_EARLY_MAX) == NULL ||
	    veil_buf_append_u32le(c->early, (uint32_t)n) != 0 ||
	    veil_buf_append(c->early, p, n) != 0) {
		veil_log_debug("mediator: a device sent too much CSP before its handshake ended");
		conn_close(c, VEIL_MD_CLOSE_PROTOCOL);
	}
}

/*
 * Opens the device's own CSP session in the chat service, with the proxy
 * payloads the device sent during the D2M handshake. Every device has one
 * (it may send); only the leader asks to receive (0x03).
 */
static void up_open(struct md_conn *c)
{
	struct veil_medsvc *m = c->m;
	c->up = m->chat != NULL ? veil_chat_pipe_open(m->chat, c) : NULL;
	if (c->up == NULL) {
		veil_log_error("mediator: cannot open a CSP session in the chat service%s",
		               m->chat != NULL ? " (out of memory)" : " (none runs)");
		conn_close(c, VEIL_MD_CLOSE_CSP_UNREACHABLE);
		return;
	}
	md_cspcut_init(&c->cut);
	if (flush_early(c) != 0)
		conn_close(c, VEIL_MD_CLOSE_CSP_INTERNAL);
}

/* --- leader --- */

static void promote(struct md_conn *c)
{
	struct md_group *g = c->g;
	if (send_container(c, VEIL_MD_ROLE_PROMOTED_TO_LEADER, NULL, 0) != 0)
		return;
	c->leader = 1;
	g->leader = c;
}

/* Promotes one connected device whose queue is dry if the group has no leader. */
static void elect(struct md_group *g)
{
	if (g->leader != NULL || g->conns == NULL || veil_http_stopping(g->conns->m->h))
		return;
	for (struct md_conn *c = g->conns; c != NULL; c = c->gnext)
		if (c->state == C_READY && c->dry_sent) {
			/* With several nodes, only the node holding the group's leadership elects. */
			if (!g->lead_held) {
				if (md_store_leader_take(c->m->st, g->gid) != 1)
					return;
				g->lead_held = 1;
			}
			promote(c);
			return;
		}
}

/* --- transactions --- */

/*
 * Releases the group's lock held by c: the held reflects are dropped (an
 * abort, unless the commit stored them already); TransactionEnded goes to
 * every other connected device of the group.
 */
static void tx_end(struct md_group *g, struct md_conn *c)
{
	g->tx = NULL;
	/* The other nodes tell their devices (MD_EV_TX_ENDED). */
	if (md_store_tx_release(c->m->st, g->gid, c->did, g->tx_scope, g->tx_scope_len) != 0)
		veil_log_warn("mediator: cannot release a transaction lock in the store");
	if (c->state != C_CLOSING)
		veil_http_ws_timer(c->ws, 0);
	veil_buf_drop(&c->held);
	struct veil_buf b;
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	if (veil_md_tx_info_encode(&b, VEIL_MD_TRANSACTION_ENDED, c->did, g->tx_scope,
	                           g->tx_scope_len) != 0) {
		veil_buf_release(&b);
		free(g->tx_scope);
		g->tx_scope = NULL;
		g->tx_scope_len = 0;
		return;
	}
	for (struct md_conn *o = g->conns, *next; o != NULL; o = next) {
		next = o->gnext;
		if (o == c || o->state != C_READY)
			continue;
		struct veil_buf copy;
		veil_buf_init(&copy, VEIL_MD_MAX_MESSAGE);
		if (veil_buf_append(&copy, b.p, b.len) != 0) {
			veil_buf_release(&copy);
			continue;
		}
		send_raw_container(o, &copy);
	}
	veil_buf_release(&b);
	free(g->tx_scope);
	g->tx_scope = NULL;
	g->tx_scope_len = 0;
}

/*
 * Remembers the other node's holder a device here was rejected for: if
 * its end is never announced (that node died, or the event was lost),
 * md_check tells the devices here in its place.
 */
static void txwait_set(struct md_group *g, uint64_t did, const uint8_t *scope, size_t len)
{
	struct md_txwait *w = realloc(g->txw, sizeof *w + len);
	if (w == NULL)
		return; /* the old one (if any) is kept: an end is still sent */
	w->did = did;
	w->scope_len = len;
	if (len > 0)
		memcpy(w->scope, scope, len);
	g->txw = w;
}

/* Sends TransactionEnded (device did, its scope) to the group's connected devices. */
static void tx_ended_send(struct md_group *g, uint64_t did, const uint8_t *scope, size_t len)
{
	struct veil_buf b;
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	if (veil_md_tx_info_encode(&b, VEIL_MD_TRANSACTION_ENDED, did, scope, len) != 0) {
		veil_buf_release(&b);
		return;
	}
	for (struct md_conn *o = g->conns, *next; o != NULL; o = next) {
		next = o->gnext;
		struct veil_buf copy;
		veil_buf_init(&copy, VEIL_MD_MAX_MESSAGE);
		if (o->state != C_READY || veil_buf_append(&copy, b.p, b.len) != 0) {
			veil_buf_release(&copy);
			continue;
		}
		send_raw_container(o, &copy);
	}
	veil_buf_release(&b);
}

static void on_begin_tx(struct md_conn *c, const uint8_t *p, size_t n)
{
	struct md_group *g = c->g;
	struct veil_md_tx *t = malloc(sizeof *t);
	struct veil_buf b;
	if (t == NULL) {
		conn_close(c, VEIL_MD_CLOSE_INTERNAL);
		return;
	}
	/* A second BeginTransaction from the holder is a protocol error. */
	if (veil_md_begin_tx_parse(t, p, n) != 0 || g->tx == c) {
		free(t);
		conn_close(c, VEIL_MD_CLOSE_PROTOCOL);
		return;
	}
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	if (g->tx != NULL) {
		if (veil_md_tx_info_encode(&b, VEIL_MD_TRANSACTION_REJECTED, g->tx->did,
		                           g->tx_scope, g->tx_scope_len) != 0) {
			veil_buf_release(&b);
			conn_close(c, VEIL_MD_CLOSE_INTERNAL);
		} else {
			send_raw_container(c, &b);
		}
		free(t);
		return;
	}
	/* Held on another node: rejected with that holder. */
	uint64_t holder;
	uint8_t held_scope[VEIL_MD_SCOPE_MAX];
	size_t held_len = 0;
	int got = md_store_tx_take(c->m->st, g->gid, c->did, t->scope, t->scope_len, &holder,
	                           held_scope, sizeof held_scope, &held_len);
	if (got != 1) {
		if (got < 0 || veil_md_tx_info_encode(&b, VEIL_MD_TRANSACTION_REJECTED, holder,
		                                      held_scope, held_len) != 0) {
			veil_buf_release(&b);
			conn_close(c, VEIL_MD_CLOSE_INTERNAL);
		} else {
			txwait_set(g, holder, held_scope, held_len);
			send_raw_container(c, &b);
		}
		free(t);
		return;
	}
	/* Taken here: whatever held it elsewhere has ended. */
	free(g->txw);
	g->txw = NULL;
	uint32_t ttl = t->ttl == 0 || t->ttl > c->m->tx_ttl_s ? c->m->tx_ttl_s : t->ttl;
	g->tx_scope = malloc(t->scope_len > 0 ? t->scope_len : 1);
	if (g->tx_scope == NULL) {
		free(t);
		veil_buf_release(&b);
		conn_close(c, VEIL_MD_CLOSE_INTERNAL);
		return;
	}
	if (t->scope_len > 0)
		memcpy(g->tx_scope, t->scope, t->scope_len);
	g->tx_scope_len = t->scope_len;
	free(t);
	if (veil_md_container_encode(&b, VEIL_MD_BEGIN_TRANSACTION_ACK, NULL, 0) != 0) {
		veil_buf_release(&b);
		/* Not the holder after all: the lock taken in the store goes back. */
		(void)md_store_tx_release(c->m->st, g->gid, c->did, g->tx_scope, g->tx_scope_len);
		free(g->tx_scope);
		g->tx_scope = NULL;
		conn_close(c, VEIL_MD_CLOSE_INTERNAL);
		return;
	}
	g->tx = c;
	veil_buf_drop(&c->held);
	g->tx_deadline_ms = veil_mono_ms() + ttl * 1000u;
	veil_http_ws_timer(c->ws, ttl * 1000u);
	send_raw_container(c, &b);
}

/* Holds a reflect of the transaction's holder until the commit. */
static int tx_hold(struct md_conn *c, const struct veil_md_reflect *r, uint64_t ts)
{
	uint8_t h[14];
	veil_store_u16le(h, r->flags);
	veil_store_u64le(h + 2, ts);
	veil_store_u32le(h + 10, (uint32_t)r->envelope_len);
	struct veil_buf *held = veil_buf_lazy(&c->held, MD_TX_HELD_MAX);
	if (held == NULL)
		return VEIL_ENOMEM;
	if (held->len + sizeof h + r->envelope_len > MD_TX_HELD_MAX)
		return VEIL_ELIMIT;
	if (veil_buf_append(held, h, sizeof h) != 0 ||
	    (r->envelope_len > 0 && veil_buf_append(held, r->envelope, r->envelope_len) != 0))
		return VEIL_ELIMIT;
	return 0;
}

static void forward_ephemeral(struct md_conn *c, uint16_t flags, uint32_t rid, uint64_t ts,
                              const uint8_t *env, size_t len);

static void on_commit_tx(struct md_conn *c, const uint8_t *p, size_t n)
{
	struct md_group *g = c->g;
	if (g->tx != c || veil_md_empty_parse(p, n) != 0) {
		conn_close(c, VEIL_MD_CLOSE_PROTOCOL);
		return;
	}
	/* The held reflects, in order: stored (durable) or, if ephemeral, forwarded. */
	for (size_t o = 0; c->held != NULL && o + 14 <= c->held->len;) {
		uint16_t flags = veil_load_u16le(c->held->p + o);
		uint64_t ts = veil_load_u64le(c->held->p + o + 2);
		size_t len = veil_load_u32le(c->held->p + o + 10);
		const uint8_t *env = c->held->p + o + 14;
		uint32_t rid;
		o += 14 + len;
		if (flags & VEIL_MD_FLAG_EPHEMERAL) {
			if (md_store_next_rid(c->m->st, c->gid, &rid) != 0) {
				conn_close(c, VEIL_MD_CLOSE_INTERNAL);
				return;
			}
			forward_ephemeral(c, flags, rid, ts, env, len);
			if (c->state != C_READY)
				return;
		} else if (md_store_reflect(c->m->st, c->gid, c->did, flags, ts, env, len, &rid) !=
		           0) {
			veil_log_error("mediator: cannot store a transaction's reflected message");
			conn_close(c, VEIL_MD_CLOSE_INTERNAL);
			return;
		}
	}
	if (queue_limit_check(c, 0) != 0) {
		conn_close(c, VEIL_MD_CLOSE_INTERNAL);
		return;
	}
	struct veil_buf b;
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	if (veil_md_container_encode(&b, VEIL_MD_COMMIT_TRANSACTION_ACK, NULL, 0) != 0) {
		veil_buf_release(&b);
		conn_close(c, VEIL_MD_CLOSE_INTERNAL);
		return;
	}
	/* The others get the reflected messages, then TransactionEnded; c its ack. */
	for (struct md_conn *o = g->conns, *next; o != NULL; o = next) {
		next = o->gnext;
		if (o != c)
			pump(o);
	}
	tx_end(g, c);
	send_raw_container(c, &b);
}

static void md_timer(void *ctx)
{
	struct md_conn *c = ctx;
	batch_flush(c->m);
	if (c->state == C_HELLO) {
		/* The specification has no code for a handshake that never ends: 4013 (idle). */
		veil_log_debug("mediator: a device did not complete the handshake in time");
		conn_close(c, VEIL_MD_CLOSE_IDLE);
		return;
	}
	if (c->state == C_READY && c->g != NULL && c->g->tx == c) {
		/* The one timer also serves the batch: not yet the TTL, wait on for it. */
		uint64_t now = veil_mono_ms();
		if (now < c->g->tx_deadline_ms) {
			veil_http_ws_timer(c->ws, (uint32_t)(c->g->tx_deadline_ms - now));
			return;
		}
		veil_log_debug("mediator: a transaction ran out of time");
		conn_close(c, VEIL_MD_CLOSE_TRANSACTION_TTL);
	}
}

/* Takes c out of its group; if it led, the chat session ends and another device leads. */
static void group_leave(struct md_conn *c)
{
	struct md_group *g = c->g;
	if (g == NULL)
		return;
	for (struct md_conn **p = &g->conns; *p != NULL; p = &(*p)->gnext)
		if (*p == c) {
			*p = c->gnext;
			break;
		}
	c->g = NULL;
	c->gnext = NULL;
	if (g->tx == c)
		tx_end(g, c);
	if (md_store_device_seen(c->m->st, c->gid, c->did, veil_now_ms()) != 0)
		veil_log_warn("mediator: cannot record a device's last-seen time");
	up_close(c);
	if (g->leader == c) {
		g->leader = NULL;
		c->leader = 0;
		elect(g);
	}
	/* No device here leads it: another node's may (it is told). */
	if (g->lead_held && g->leader == NULL &&
	    (g->conns == NULL || veil_http_stopping(c->m->h))) {
		g->lead_held = 0;
		if (md_store_leader_release(c->m->st, g->gid) != 0)
			veil_log_warn("mediator: cannot release a group's leadership in the store");
	}
	group_free_if_empty(c->m, g);
}

/* 1 if a reflect of c waits for its batch to be durable. */
static int has_pending(const struct md_conn *c)
{
	for (size_t i = 0; i < c->m->npend; i++)
		if (c->m->pend[i].c == c)
			return 1;
	return 0;
}

static void conn_close(struct md_conn *c, int code)
{
	if (c->state == C_CLOSING)
		return;
	/* Its reflects are made durable and acked before the close (the others' too). */
	if (has_pending(c))
		batch_sync(c->m);
	c->state = C_CLOSING;
	group_leave(c);
	veil_http_ws_close(c->ws, code);
}

/* --- reflection queue --- */

static int pump_one(void *arg, const struct md_queued *q)
{
	struct md_conn *c = arg;
	if (q->seq > md_store_committed_seq(c->m->st)) {
		/* Not durable yet: it goes out after the batch commits. */
		c->pump_blocked = 1;
		return -1;
	}
	c->sent_seq = q->seq;
	if (send_reflected(c, q->flags, q->rid, q->ts, q->envelope, q->envelope_len) != 0)
		return -1;
	return c->state == C_READY ? 0 : -1;
}

/*
 * Sends the device's queued messages it has not been sent yet, while the
 * socket keeps up; the first time the queue runs dry, ReflectionQueueDry
 * and, if the group has no leader, the promotion.
 */
static void pump(struct md_conn *c)
{
	if (c->state != C_READY || c->pumping)
		return;
	c->pumping = 1;
	c->pump_blocked = 0;
	c->live = 0;
	while (c->state == C_READY && !c->pump_blocked &&
	       veil_http_ws_queued(c->ws) < MD_PUMP_HIGH) {
		int n = md_store_queue_after(c->m->st, c->gid, c->did, c->sent_seq, MD_PUMP_BATCH,
		                             pump_one, c);
		if (n < 0) {
			veil_log_error("mediator: cannot read a reflection queue");
			conn_close(c, VEIL_MD_CLOSE_INTERNAL);
			break;
		}
		if (n < MD_PUMP_BATCH || c->pump_blocked)
			c->live = 1; /* all that is committed is sent */
		if (n < MD_PUMP_BATCH && !c->pump_blocked) {
			if (c->state == C_READY && !c->dry_sent) {
				if (send_container(c, VEIL_MD_REFLECTION_QUEUE_DRY, NULL, 0) != 0)
					break;
				c->dry_sent = 1;
				elect(c->g);
			}
			break;
		}
	}
	c->pumping = 0;
}

/*
 * A device that a reflect found with a full queue (--mediator-queue-limit)
 * has missed it: if it is connected it is dropped now, closed with 4114;
 * one offline is dropped so when it next connects (on_client_hello). Its
 * queue stays capped at the limit meanwhile.
 */
static int queue_limit_gid(struct veil_medsvc *m, const uint8_t group[static 32],
                           const struct md_conn *spare)
{
	uint64_t over[MD_MAX_DEVICES];
	uint8_t gid[32];
	memcpy(gid, group, sizeof gid);
	int k = md_store_over_limit(m->st, gid, over, VEIL_ARRAY_LEN(over));
	if (k < 0)
		return VEIL_EIO;
	for (int i = 0; i < k; i++) {
		/* Found again each time: closing the last device frees the group. */
		struct md_conn *victim = group_device(group_find(m, gid, 0), over[i]);
		if (victim == NULL || victim == spare)
			continue;
		veil_log_debug(
		    "mediator: a device's reflection queue is over the limit; dropping it");
		conn_close(victim, VEIL_MD_CLOSE_QUEUE_LIMIT);
		if (md_store_device_drop(m->st, gid, over[i]) != 0)
			return VEIL_EIO;
	}
	return 0;
}

static int queue_limit_check(struct md_conn *c, int self)
{
	return queue_limit_gid(c->m, c->gid, self ? NULL : c);
}

/* Sends an ephemeral reflect to the devices of c's group online now (not c). */
static void forward_ephemeral(struct md_conn *c, uint16_t flags, uint32_t rid, uint64_t ts,
                              const uint8_t *env, size_t len)
{
	for (struct md_conn *o = c->g->conns, *next; o != NULL; o = next) {
		next = o->gnext;
		if (o == c || o->state != C_READY)
			continue;
		if (o->eph == NULL && (o->eph = malloc(MD_EPH_MAX * sizeof *o->eph)) == NULL)
			continue;            /* ephemeral: it may be lost */
		if (o->neph == MD_EPH_MAX) { /* the oldest is taken as lost */
			memmove(o->eph, o->eph + 1, (MD_EPH_MAX - 1) * sizeof o->eph[0]);
			o->neph--;
		}
		o->eph[o->neph++] = rid;
		send_reflected(o, flags, rid, ts, env, len);
	}
}

static void on_reflect(struct md_conn *c, const uint8_t *p, size_t n)
{
	struct veil_md_reflect r;
	if (veil_md_reflect_parse(&r, p, n) != 0) {
		conn_close(c, VEIL_MD_CLOSE_PROTOCOL);
		return;
	}
	uint64_t ts = veil_now_ms();
	uint32_t rid;
	struct md_group *g = c->g;
	struct veil_buf b;
	if (g->tx == c) {
		/* In the transaction: held until the commit, acked now unless ephemeral. */
		int hrc = tx_hold(c, &r, ts);
		if (hrc != 0) {
			veil_log_debug("mediator: a transaction holds too many reflects");
			conn_close(c, hrc == VEIL_ENOMEM ? VEIL_MD_CLOSE_INTERNAL
			                                 : VEIL_MD_CLOSE_PROTOCOL);
			return;
		}
		if (r.flags & VEIL_MD_FLAG_EPHEMERAL)
			return;
		veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
		if (veil_md_reflect_ack_encode(&b, r.id, ts) != 0) {
			veil_buf_release(&b);
			conn_close(c, VEIL_MD_CLOSE_INTERNAL);
			return;
		}
		send_raw_container(c, &b);
		return;
	}
	if (r.flags & VEIL_MD_FLAG_EPHEMERAL) {
		/* Only to the devices online now; not stored, not acked; after the reflects before it. */
		batch_sync(c->m);
		if (c->state != C_READY)
			return;
		if (md_store_next_rid(c->m->st, c->gid, &rid) != 0) {
			conn_close(c, VEIL_MD_CLOSE_INTERNAL);
			return;
		}
		forward_ephemeral(c, r.flags, rid, ts, r.envelope, r.envelope_len);
		return;
	}
	/*
	 * Into the batch, committed right after this pass of the HTTP loop
	 * (veil_http_on_pass): every reflect read in one pass shares one
	 * commit, and those committed while the store's thread syncs share
	 * the next fsync. The ack and the live deliveries follow once the
	 * batch is durable (batch_done).
	 */
	struct veil_medsvc *m = c->m;
	if (m->penv.len + r.envelope_len > MD_BATCH_BYTES)
		batch_sync(m); /* too much waiting: made durable now, on this thread */
	if (m->npend == m->pend_cap) {
		size_t cap = m->pend_cap ? m->pend_cap * 2 : 256;
		struct md_pending *np =
		    cap <= MD_BATCH_MAX ? realloc(m->pend, cap * sizeof *np) : NULL;
		if (np == NULL) {
			batch_sync(m); /* full: what is there goes, then go on */
		} else {
			m->pend = np;
			m->pend_cap = cap;
		}
	}
	if (c->state != C_READY)
		return; /* closed while the batch was made durable */
	if (md_store_batch_reflect(m->st, c->gid, c->did, r.flags, ts, r.envelope, r.envelope_len,
	                           &rid) != 0) {
		veil_log_error("mediator: cannot store a reflected message");
		conn_close(c, VEIL_MD_CLOSE_INTERNAL);
		return;
	}
	size_t off = m->penv.len;
	int nomem = veil_buf_append(&m->penv, r.envelope_len > 0 ? r.envelope : (const uint8_t *)"",
	                            r.envelope_len) != 0;
	/* Stored all the same: without its envelope here, it goes out from the store. */
	if (nomem)
		off = m->penv.len;
	struct md_pending *e = &m->pend[m->npend++];
	*e = (struct md_pending){.c = c,
	                         .gen = md_store_batch_gen(m->st),
	                         .did = c->did,
	                         .id = r.id,
	                         .rid = rid,
	                         .flags = r.flags,
	                         .nomem = nomem,
	                         .ts = ts,
	                         .env_off = off,
	                         .env_len = m->penv.len - off};
	memcpy(e->gid, c->gid, 32);
}

/*
 * Delivers the reported batches' reflects of group g to its device o from
 * memory, if o was sent every durable row of its queue before (live) and
 * its socket takes them; else the pump reads them from the store. Either
 * way they stay stored until o acks them.
 */
static void feed(struct veil_medsvc *m, struct md_group *g, struct md_conn *o, size_t n,
                 int64_t top)
{
	if (top < 0 || !o->live || o->pumping || o->state != C_READY ||
	    g->bytes_round != m->rounds ||
	    veil_http_ws_queued(o->ws) + g->batch_bytes > MD_PUMP_HIGH) {
		pump(o);
		return;
	}
	for (size_t i = 0; i < n && o->state == C_READY; i++) {
		const struct md_pending *e = &m->pend[i];
		/* By the sender's group ID: a sender that left its group is still there. */
		if (e->did == o->did || memcmp(e->gid, g->gid, 32) != 0)
			continue;
		send_reflected(o, e->flags, e->rid, e->ts, m->penv.p + e->env_off, e->env_len);
	}
	/* Its rows of the batch are all at or below top, those before it were sent. */
	if (o->state == C_READY && top > o->sent_seq)
		o->sent_seq = top;
}

/* The group of a pending reflect, if it has a device here. */
static struct md_group *pend_group(struct veil_medsvc *m, const struct md_pending *e)
{
	if (e->c != NULL && e->c->g != NULL)
		return e->c->g;
	return group_find(m, e->gid, 0);
}

/*
 * The batches up to gen upto are durable (rc 0) or failed: ack their
 * reflects (or close their devices: nothing was stored), then, for each
 * group, drop the devices whose queue a reflect found full (4114) and feed
 * the others. Their entries then leave pend and penv.
 */
static void batch_done(void *ctx, uint64_t upto, int rc)
{
	struct veil_medsvc *m = ctx;
	size_t n = 0;
	while (n < m->npend && m->pend[n].gen <= upto)
		n++;
	if (rc != 0)
		veil_log_error("mediator: cannot commit reflected messages: %s", veil_strerror(rc));
	for (size_t i = 0; i < n; i++) {
		struct md_conn *c = m->pend[i].c;
		struct veil_buf b;
		if (c == NULL || c->state != C_READY)
			continue;
		if (rc != 0) {
			conn_close(c, VEIL_MD_CLOSE_INTERNAL);
			continue;
		}
		veil_buf_init(&b, VEIL_MD_HDR_LEN + VEIL_MD_REFLECT_ACK_LEN);
		if (veil_md_reflect_ack_encode(&b, m->pend[i].id, m->pend[i].ts) != 0) {
			veil_buf_release(&b);
			conn_close(c, VEIL_MD_CLOSE_INTERNAL);
			continue;
		}
		send_raw_container(c, &b);
	}
	int64_t top = md_store_batch_top(m->st);
	m->rounds++;
	/* Each group's bytes in them: fed from memory only if its sockets take them all. */
	for (size_t i = 0; i < n; i++) {
		const struct md_pending *e = &m->pend[i];
		struct md_group *g = pend_group(m, e);
		if (g == NULL)
			continue;
		if (g->bytes_round != m->rounds) {
			g->bytes_round = m->rounds;
			g->batch_bytes = 0;
		}
		if (e->nomem)
			g->batch_bytes = SIZE_MAX / 2;
		else if (g->batch_bytes < SIZE_MAX / 2)
			g->batch_bytes +=
			    e->env_len + VEIL_MD_HDR_LEN + VEIL_MD_REFLECTED_HDR_LEN + 16;
	}
	for (size_t i = 0; i < n; i++) {
		struct md_pending *e = &m->pend[i];
		struct md_group *g = pend_group(m, e);
		if (g == NULL || g->fed == m->rounds)
			continue; /* gone, or its group fed already */
		g->fed = m->rounds;
		/*
		 * Every device a reflect found full is dropped (4114) before the
		 * group is fed, the senders too: what was not stored for them
		 * must not reach them from memory.
		 */
		if (rc == 0 && queue_limit_gid(m, e->gid, NULL) != 0 && e->c != NULL)
			conn_close(e->c, VEIL_MD_CLOSE_INTERNAL);
		if ((g = group_find(m, e->gid, 0)) == NULL)
			continue;
		for (struct md_conn *o = g->conns, *next; o != NULL; o = next) {
			next = o->gnext;
			if (rc == 0)
				feed(m, g, o, n, top);
			else
				pump(o);
		}
	}
	/* The later batches' entries move to the front. */
	size_t base = n < m->npend ? m->pend[n].env_off : m->penv.len;
	for (size_t i = n; i < m->npend; i++)
		m->pend[i].env_off -= base;
	if (n < m->npend) /* (m->pend may be NULL when nothing is pending) */
		memmove(m->pend, m->pend + n, (m->npend - n) * sizeof *m->pend);
	m->npend -= n;
	if (base == m->penv.len) {
		veil_buf_reset(&m->penv);
	} else {
		memmove(m->penv.p, m->penv.p + base, m->penv.len - base);
		m->penv.len -= base;
	}
}

/* Commits the open batch, if any (the store's thread makes it durable; batch_done follows). */
static void batch_flush(struct veil_medsvc *m)
{
	if (md_store_batch_open(m->st))
		(void)md_store_batch_commit(m->st);
}

/* Commits the open batch and makes every batch durable now, on this thread; batch_done follows. */
static void batch_sync(struct veil_medsvc *m)
{
	(void)md_store_batch_sync(m->st);
}

/*
 * After each pass of the HTTP loop: what is durable is reported; what the
 * pass wrote is committed, unless the store's thread is syncing: then the
 * batch grows until that sync ends (md_wake), as its reflects would wait
 * for the next fsync anyway (one commit for all of them).
 */
static void md_pass(void *arg)
{
	struct veil_medsvc *m = arg;
	md_store_batch_poll(m->st);
	if (md_store_batch_open(m->st) && !md_store_batch_syncing(m->st))
		batch_flush(m);
}

static void on_reflected_ack(struct md_conn *c, const uint8_t *p, size_t n)
{
	struct veil_md_reflect r;
	if (veil_md_reflected_ack_parse(&r, p, n) != 0) {
		conn_close(c, VEIL_MD_CLOSE_PROTOCOL);
		return;
	}
	for (uint32_t i = 0; i < c->neph; i++)
		if (c->eph[i] == r.id) {
			memmove(c->eph + i, c->eph + i + 1, (c->neph - i - 1) * sizeof c->eph[0]);
			if (--c->neph == 0) {
				free(c->eph);
				c->eph = NULL;
			}
			return;
		}
	/*
	 * Deleting an acked entry rides on the batch (committed after this
	 * pass of the loop): lost in a crash, it is only sent again.
	 */
	int rc = md_store_batch_ack(c->m->st, c->gid, c->did, r.id);
	if (rc < 0)
		conn_close(c, VEIL_MD_CLOSE_INTERNAL);
	else if (rc == 0)
		conn_close(c, VEIL_MD_CLOSE_UNKNOWN_ACK);
}

/* --- device management --- */

struct devlist {
	struct md_group *g;
	struct veil_md_device_entry e[MD_MAX_DEVICES];
	uint8_t info[MD_MAX_DEVICES][VEIL_MD_ENC_BLOB_MAX];
	size_t n;
};

static int devlist_add(void *arg, const struct md_device_row *row, const uint8_t *info, size_t len)
{
	struct devlist *l = arg;
	if (l->n == MD_MAX_DEVICES)
		return 1;
	struct veil_md_device_entry *e = &l->e[l->n];
	struct md_conn *on = group_device(l->g, row->device_id);
	e->device_id = row->device_id;
	e->expiration_policy = row->expiration_policy;
	/* last_seen is written at login and at disconnect: the last disconnect when offline. */
	e->connected = on != NULL;
	e->since = on != NULL ? row->connected_since : row->last_seen;
	if (len > VEIL_MD_ENC_BLOB_MAX)
		len = 0; /* cannot happen: ClientHello limits it */
	if (len > 0)
		memcpy(l->info[l->n], info, len);
	e->enc_info = l->info[l->n];
	e->enc_info_len = len;
	l->n++;
	return 0;
}

static void on_get_devices(struct md_conn *c, const uint8_t *p, size_t n)
{
	if (veil_md_empty_parse(p, n) != 0) {
		conn_close(c, VEIL_MD_CLOSE_PROTOCOL);
		return;
	}
	struct devlist *l = calloc(1, sizeof *l);
	struct veil_buf b;
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	if (l == NULL) {
		conn_close(c, VEIL_MD_CLOSE_INTERNAL);
		return;
	}
	l->g = c->g;
	if (expire_volatile(c->m, c->gid) != 0 ||
	    md_store_device_infos(c->m->st, c->gid, devlist_add, l) < 0 ||
	    veil_md_devices_info_encode(&b, l->e, l->n) != 0) {
		veil_buf_release(&b);
		conn_close(c, VEIL_MD_CLOSE_INTERNAL);
	} else {
		send_raw_container(c, &b);
	}
	free(l);
}

/*
 * Removes a device of the group with its queue: if it is connected it is
 * closed with 4113 (the requester itself too, after its ack). An unknown
 * device ID is acked all the same (dropping is idempotent).
 */
static void on_drop_device(struct md_conn *c, const uint8_t *p, size_t n)
{
	uint64_t did;
	struct veil_buf b;
	if (veil_md_drop_device_parse(&did, p, n) != 0) {
		conn_close(c, VEIL_MD_CLOSE_PROTOCOL);
		return;
	}
	struct md_conn *victim = group_device(c->g, did);
	if (victim != NULL && victim != c)
		conn_close(victim, VEIL_MD_CLOSE_DROPPED);
	if (md_store_device_drop(c->m->st, c->gid, did) != 0) {
		conn_close(c, VEIL_MD_CLOSE_INTERNAL);
		return;
	}
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	if (veil_md_drop_device_encode(&b, VEIL_MD_DROP_DEVICE_ACK, did) != 0) {
		veil_buf_release(&b);
		conn_close(c, VEIL_MD_CLOSE_INTERNAL);
		return;
	}
	if (send_raw_container(c, &b) == 0 && victim == c)
		conn_close(c, VEIL_MD_CLOSE_DROPPED);
}

static void on_set_shared_data(struct md_conn *c, const uint8_t *p, size_t n)
{
	uint8_t *box = malloc(VEIL_MD_ENC_BLOB_MAX);
	size_t len;
	if (box == NULL) {
		conn_close(c, VEIL_MD_CLOSE_INTERNAL);
		return;
	}
	if (veil_md_set_shared_data_parse(box, &len, p, n) != 0)
		conn_close(c, VEIL_MD_CLOSE_PROTOCOL);
	else if (md_store_set_shared_data(c->m->st, c->gid, box, len) != 0)
		conn_close(c, VEIL_MD_CLOSE_INTERNAL);
	free(box);
}

/* --- handshake --- */

/*
 * Forgets the group's VOLATILE slots whose device has been offline for
 * volatile_ttl_ms (the specification: removed shortly after the device
 * disconnected, late enough for an unintended disconnect to reconnect),
 * with their queues. Done when the group is looked at (a device's login,
 * GetDevicesInfo) rather than on a timer: until then nobody can tell. A
 * device that is connected is never expired, so a reconnect that replaces
 * its own older connection (4112) keeps its slot and queue.
 */
static int expire_volatile(struct veil_medsvc *m, const uint8_t gid[static 32])
{
	struct md_device_row rows[MD_MAX_DEVICES];
	struct md_group *g = group_find(m, gid, 0);
	uint64_t now = veil_now_ms();
	int k = md_store_devices(m->st, gid, rows, VEIL_ARRAY_LEN(rows));
	if (k < 0)
		return VEIL_EIO;
	for (int i = 0; i < k; i++) {
		if (rows[i].expiration_policy != VEIL_MD_SLOT_VOLATILE ||
		    group_device(g, rows[i].device_id) != NULL ||
		    rows[i].last_seen + m->volatile_ttl_ms > now)
			continue;
		if (md_store_device_drop(m->st, gid, rows[i].device_id) != 0)
			return VEIL_EIO;
	}
	return 0;
}

/*
 * Frees slots until a new device fits, under the DROP_LEAST_RECENT policy:
 * the least recently seen device that is offline goes first, a connected
 * one (closed with 4113) only if every device is online.
 */
static int drop_least_recent(struct md_conn *c, int count)
{
	struct veil_medsvc *m = c->m;
	struct md_device_row rows[MD_MAX_DEVICES];
	struct md_group *g = group_find(m, c->gid, 0);
	while ((uint32_t)count >= m->max_slots) {
		int k = md_store_devices(m->st, c->gid, rows, VEIL_ARRAY_LEN(rows));
		if (k <= 0)
			return VEIL_EIO;
		int pick = 0;
		for (int i = 0; i < k; i++)
			if (group_device(g, rows[i].device_id) == NULL) {
				pick = i;
				break;
			}
		struct md_conn *victim = group_device(g, rows[pick].device_id);
		if (victim != NULL)
			conn_close(victim, VEIL_MD_CLOSE_DROPPED);
		if (md_store_device_drop(m->st, c->gid, rows[pick].device_id) != 0)
			return VEIL_EIO;
		g = group_find(m, c->gid, 0);
		count--;
	}
	return 0;
}

/* The handshake's ephemeral key, wiped and freed once used (or the connection ends). */
static void hs_free(struct md_conn *c)
{
	if (c->hs == NULL)
		return;
	veil_md_server_hs_wipe(c->hs);
	free(c->hs);
	c->hs = NULL;
}

static void on_client_hello(struct md_conn *c, const uint8_t *p, size_t n)
{
	struct veil_medsvc *m = c->m;
	struct veil_md_client_hello ch;
	struct veil_md_server_info si;
	int code = 0;
	if (veil_md_client_hello_parse(&ch, p, n) != 0) {
		conn_close(c, VEIL_MD_CLOSE_PROTOCOL);
		return;
	}
	if (ch.version != VEIL_MD_D2M_VERSION) {
		conn_close(c, VEIL_MD_CLOSE_VERSION);
		return;
	}
	int vrc = c->hs != NULL ? veil_md_server_verify(c->hs, &ch, c->gid) : VEIL_EPROTO;
	hs_free(c);
	if (vrc != 0) {
		conn_close(c, VEIL_MD_CLOSE_PROTOCOL);
		return;
	}
	if (expire_volatile(m, c->gid) != 0) {
		conn_close(c, VEIL_MD_CLOSE_INTERNAL);
		return;
	}
	int exists = md_store_device_exists(m->st, c->gid, ch.device_id);
	if (exists < 0) {
		conn_close(c, VEIL_MD_CLOSE_INTERNAL);
		return;
	}
	int state = exists ? VEIL_MD_SLOT_EXISTING : VEIL_MD_SLOT_NEW;
	if (ch.expected_slot_state != state) {
		conn_close(c, VEIL_MD_CLOSE_SLOT_MISMATCH);
		return;
	}
	if (exists) {
		/* Its queue filled up while it was away: it missed reflects, so it is dropped. */
		uint64_t queued;
		if (md_store_queue_count(m->st, c->gid, ch.device_id, &queued) != 0) {
			conn_close(c, VEIL_MD_CLOSE_INTERNAL);
			return;
		}
		if (queued > m->queue_limit) {
			struct md_conn *old = group_device(group_find(m, c->gid, 0), ch.device_id);
			if (old != NULL)
				conn_close(old, VEIL_MD_CLOSE_QUEUE_LIMIT);
			code = md_store_device_drop(m->st, c->gid, ch.device_id) != 0
			           ? VEIL_MD_CLOSE_INTERNAL
			           : VEIL_MD_CLOSE_QUEUE_LIMIT;
			conn_close(c, code);
			return;
		}
	}
	if (!exists) {
		int count = md_store_device_count(m->st, c->gid);
		if (count < 0)
			code = VEIL_MD_CLOSE_INTERNAL;
		else if ((uint32_t)count >= m->max_slots &&
		         ch.slots_exhausted_policy != VEIL_MD_SLOTS_DROP_LEAST_RECENT)
			code = VEIL_MD_CLOSE_DEVICE_LIMIT;
		else if (drop_least_recent(c, count) != 0)
			code = VEIL_MD_CLOSE_INTERNAL;
		if (code != 0) {
			conn_close(c, code);
			return;
		}
	}
	/* The newer connection of a device wins; the older one is told why. */
	struct md_conn *old = group_device(group_find(m, c->gid, 0), ch.device_id);
	if (old != NULL)
		conn_close(old, VEIL_MD_CLOSE_DUPLICATE);

	memset(&si, 0, sizeof si);
	uint64_t now = veil_now_ms();
	if (md_store_device_login(m->st, c->gid, ch.device_id, ch.slot_expiration_policy,
	                          ch.enc_device_info, ch.enc_device_info_len, now) != 0 ||
	    md_store_shared_data(m->st, c->gid, si.enc_shared_data, sizeof si.enc_shared_data,
	                         &si.enc_shared_data_len) != 0) {
		conn_close(c, VEIL_MD_CLOSE_INTERNAL);
		return;
	}
	int qlen = md_store_queue_len(m->st, c->gid, ch.device_id);
	struct md_group *g = group_find(m, c->gid, 1);
	if (qlen < 0 || g == NULL) {
		conn_close(c, VEIL_MD_CLOSE_INTERNAL);
		return;
	}
	si.current_time = now;
	si.max_device_slots = m->max_slots;
	si.slot_state = state;
	si.reflection_queue_length = (uint32_t)qlen;
	struct veil_buf b;
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	if (veil_md_server_info_encode(&b, &si) != 0) {
		veil_buf_release(&b);
		conn_close(c, VEIL_MD_CLOSE_INTERNAL);
		group_free_if_empty(m, g);
		return;
	}
	c->did = ch.device_id;
	c->state = C_READY;
	veil_http_ws_timer(c->ws, 0);
	c->g = g;
	c->gnext = g->conns;
	g->conns = c;
	if (send_raw_container(c, &b) != 0)
		return;
	up_open(c);
	pump(c);
}

/* --- events from other nodes sharing a PostgreSQL store --- */

static int holds_lock(const struct md_group *g);
static uint8_t *groups_where(struct veil_medsvc *m, int (*want)(const struct md_group *g),
                             size_t *n);

/*
 * This node's connection to the store was lost and is back: the locks it
 * held are gone and another node may have taken them. Each is taken
 * again; one that is held elsewhere now is let go here: its leader is
 * closed (1011; it reconnects and another device leads), and so is a
 * transaction's holder (the transaction is aborted), so that no group has
 * two leaders or two transactions for longer than the loss went unnoticed.
 */
static void md_relock(struct veil_medsvc *m)
{
	size_t n;
	uint8_t *ids = groups_where(m, holds_lock, &n);
	for (size_t i = 0; ids != NULL && i < n; i++) {
		const uint8_t *gid = ids + 32 * i;
		struct md_group *g = group_find(m, gid, 0);
		if (g != NULL && g->lead_held) {
			g->lead_held = 0;
			if (md_store_leader_take(m->st, gid) == 1) {
				g->lead_held = 1;
			} else if (g->leader != NULL) {
				veil_log_warn("mediator: a group's leadership was lost with the "
				              "PostgreSQL connection; closing its leader here");
				conn_close(g->leader, VEIL_MD_CLOSE_INTERNAL);
			}
			g = group_find(m, gid, 0);
		}
		if (g != NULL && g->tx != NULL) {
			uint64_t h;
			uint8_t hs[VEIL_MD_SCOPE_MAX];
			size_t hl;
			if (md_store_tx_take(m->st, gid, g->tx->did, g->tx_scope, g->tx_scope_len,
			                     &h, hs, sizeof hs, &hl) != 1) {
				veil_log_warn("mediator: a transaction lock was lost with the "
				              "PostgreSQL connection; aborting the transaction");
				conn_close(g->tx, VEIL_MD_CLOSE_INTERNAL);
			}
		}
	}
	free(ids);
}

static void on_event(void *arg, const struct md_event *ev)
{
	struct veil_medsvc *m = arg;
	if (ev->kind == MD_EV_LOCKS_LOST) {
		/* At once: no lock was taken since the loss (see mstore.h). */
		md_relock(m);
		return;
	}
	if (ev->kind == MD_EV_TICK || ev->kind == MD_EV_RESYNC) {
		/* Handled once the events are in (md_wake): one check for all. */
		m->check_due |= ev->kind == MD_EV_TICK ? 1 : 2;
		return;
	}
	struct md_group *g = group_find(m, ev->gid, 0);
	if (g == NULL)
		return; /* no device of the group here */
	switch (ev->kind) {
	case MD_EV_REFLECTED:
		for (struct md_conn *o = g->conns, *next; o != NULL; o = next) {
			next = o->gnext;
			pump(o);
		}
		break;
	case MD_EV_CLOSE: {
		struct md_conn *c = group_device(g, ev->did);
		if (c != NULL)
			conn_close(c, ev->code);
		break;
	}
	case MD_EV_LEADER_FREE: elect(g); break;
	case MD_EV_TX_ENDED:
		free(g->txw);
		g->txw = NULL;
		tx_ended_send(g, ev->did, ev->scope, ev->scope_len);
		break;
	default: break;
	}
}

/* A group here that may take the leadership: none here, and a device ready for it. */
static int want_leader(const struct md_group *g)
{
	if (g->leader != NULL || g->lead_held)
		return 0;
	for (const struct md_conn *c = g->conns; c != NULL; c = c->gnext)
		if (c->state == C_READY && c->dry_sent)
			return 1;
	return 0;
}

static int want_txw(const struct md_group *g)
{
	return g->txw != NULL && g->tx == NULL;
}

static int holds_lock(const struct md_group *g)
{
	return g->lead_held || g->tx != NULL;
}

static int groups_any(const struct veil_medsvc *m, int (*want)(const struct md_group *g))
{
	for (size_t i = 0; i < MD_BUCKETS; i++)
		for (const struct md_group *g = m->buckets[i]; g != NULL; g = g->next)
			if (want(g))
				return 1;
	return 0;
}

/*
 * The IDs of the groups here that want (every group if want is NULL), 32
 * bytes each, in an allocated array (NULL if none or no memory). By ID: a
 * store call may run batch_done, which may close devices and free groups.
 */
static uint8_t *groups_where(struct veil_medsvc *m, int (*want)(const struct md_group *g),
                             size_t *n)
{
	size_t k = 0;
	*n = 0;
	for (size_t i = 0; i < MD_BUCKETS; i++)
		for (const struct md_group *g = m->buckets[i]; g != NULL; g = g->next)
			k += want == NULL || want(g);
	uint8_t *ids = k > 0 ? malloc(k * 32) : NULL;
	if (ids == NULL)
		return NULL;
	for (size_t i = 0; i < MD_BUCKETS; i++)
		for (const struct md_group *g = m->buckets[i]; g != NULL; g = g->next)
			if (want == NULL || want(g))
				memcpy(ids + 32 * (*n)++, g->gid, 32);
	return ids;
}

/*
 * What no event announces, on a tick (MD_STORE_TICK_MS) with several
 * nodes: a node that died freed its advisory locks without a word. So the
 * groups here without a leader but with a device ready to lead try the
 * leadership (one statement for all of them: nothing is asked about
 * groups led here), and the groups whose devices were rejected for
 * another node's transaction check that its holder still holds the lock.
 * After a resync (the listener was lost, or dropped events) every device
 * here is pumped from the store first: the reflects announced meanwhile.
 * If this node holds a lock, the connection holding it is checked.
 */
static void md_check(struct veil_medsvc *m, int resync)
{
	size_t n;
	uint8_t *ids;
	if (veil_http_stopping(m->h))
		return;
	batch_flush(m);
	/* A lost connection takes this node's locks along: noticed here, not at the next write. */
	if (groups_any(m, holds_lock))
		(void)md_store_ping(m->st);
	if (resync && (ids = groups_where(m, NULL, &n)) != NULL) {
		for (size_t i = 0; i < n; i++) {
			struct md_event ev = {.kind = MD_EV_REFLECTED};
			memcpy(ev.gid, ids + 32 * i, 32);
			on_event(m, &ev);
		}
		free(ids);
		batch_flush(m);
	}
	uint8_t *taken;
	if ((ids = groups_where(m, want_leader, &n)) != NULL && (taken = malloc(n)) != NULL) {
		if (md_store_leader_try(m->st, (const uint8_t(*)[32])ids, n, taken) > 0)
			for (size_t i = 0; i < n; i++) {
				if (!taken[i])
					continue;
				struct md_group *g = group_find(m, ids + 32 * i, 0);
				if (g != NULL && !g->lead_held) {
					g->lead_held = 1;
					elect(g);
					g = group_find(m, ids + 32 * i, 0);
				}
				/* Nobody here to lead after all: it goes back at once. */
				if (g == NULL || (g->leader == NULL && g->lead_held)) {
					if (g != NULL)
						g->lead_held = 0;
					if (md_store_leader_release(m->st, ids + 32 * i) != 0)
						veil_log_warn("mediator: cannot release a group's "
						              "leadership in the store");
				}
			}
		free(taken);
	}
	free(ids);
	if ((ids = groups_where(m, want_txw, &n)) == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		uint64_t holder;
		uint8_t scope[VEIL_MD_SCOPE_MAX];
		size_t len;
		if (md_store_tx_reap(m->st, ids + 32 * i, &holder, scope, sizeof scope, &len) != 1)
			continue;
		struct md_group *g = group_find(m, ids + 32 * i, 0);
		if (g == NULL || g->txw == NULL)
			continue;
		veil_log_debug("mediator: a transaction's holder is gone; its end is sent here");
		struct md_txwait *w = g->txw;
		g->txw = NULL;
		/* No holder left behind: its end's event was lost; the one rejected for is named. */
		if (holder == 0 && len == 0)
			tx_ended_send(g, w->did, w->scope, w->scope_len);
		else
			tx_ended_send(g, holder, scope, len);
		free(w);
	}
	free(ids);
}

/* On the HTTP thread, after the store's sync thread or listener woke it. */
static void md_wake(void *arg)
{
	struct veil_medsvc *m = arg;
	if (m->chat != NULL)
		veil_chat_pipe_run(m->chat, up_data, up_ended);
	if (m->st != NULL && md_store_batch_open(m->st) && !md_store_batch_syncing(m->st))
		batch_flush(m); /* the next batch goes to the disk at once */
	if (m->st != NULL)
		md_store_batch_poll(m->st);
	if (m->st != NULL && md_store_events(m->st, on_event, m) > 0)
		batch_flush(m);
	if (m->check_due) {
		int resync = m->check_due & 2;
		m->check_due = 0;
		md_check(m, resync);
	}
}

static void md_store_woke(void *arg)
{
	struct veil_medsvc *m = arg;
	veil_http_wake(m->h);
}

/* The chat service has output or an end for the devices' sessions (any thread, under its lock). */
static void md_pipes_woke(void *arg)
{
	struct veil_medsvc *m = arg;
	veil_http_wake(m->h);
}

/* --- WebSocket callbacks --- */

static int md_open(void *arg, struct veil_http_ws *ws, const char *path, const char *client,
                   void **ctx)
{
	(void)client;
	struct veil_medsvc *m = arg;
	struct md_conn *c = calloc(1, sizeof *c);
	if (c == NULL)
		return -1;
	c->m = m;
	c->ws = ws;
	*ctx = c;
	char sg[VEIL_MD_SERVER_GROUP_MAX + 1];
	const char *tail = path + strlen(VEIL_MEDIATOR_PREFIX);
	if (strchr(tail, '/') != NULL ||
	    veil_md_url_path_parse(tail, strlen(tail), c->gid, sg) != 0) {
		/* The specification names no code for a bad URL; 4010 as for bad input. */
		conn_close(c, VEIL_MD_CLOSE_PROTOCOL);
		return 0;
	}
	struct veil_buf b;
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	if ((c->hs = calloc(1, sizeof *c->hs)) == NULL ||
	    veil_md_server_hello_make(c->hs, &b) != 0) {
		veil_buf_release(&b);
		conn_close(c, VEIL_MD_CLOSE_INTERNAL);
		return 0;
	}
	send_raw_container(c, &b);
	return 0;
}

static void md_message(void *ctx, const uint8_t *p, size_t n)
{
	struct md_conn *c = ctx;
	uint8_t type;
	const uint8_t *pl;
	size_t pn;
	if (c->state == C_CLOSING)
		return;
	if (veil_md_container_parse(p, n, &type, &pl, &pn) != 0) {
		conn_close(c, VEIL_MD_CLOSE_PROTOCOL);
		return;
	}
	if (type == VEIL_MD_PROXY) {
		proxy_in(c, pl, pn);
		return;
	}
	/* Everything but the reflection itself sees the batches durable (and their acks sent). */
	if (type != VEIL_MD_REFLECT && type != VEIL_MD_REFLECTED_ACK)
		batch_sync(c->m);
	if (c->state == C_HELLO) {
		if (type == VEIL_MD_CLIENT_HELLO)
			on_client_hello(c, pl, pn);
		else
			conn_close(c, VEIL_MD_CLOSE_PROTOCOL);
		return;
	}
	switch (type) {
	case VEIL_MD_REFLECT: on_reflect(c, pl, pn); break;
	case VEIL_MD_REFLECTED_ACK: on_reflected_ack(c, pl, pn); break;
	case VEIL_MD_BEGIN_TRANSACTION: on_begin_tx(c, pl, pn); break;
	case VEIL_MD_COMMIT_TRANSACTION: on_commit_tx(c, pl, pn); break;
	case VEIL_MD_GET_DEVICES_INFO: on_get_devices(c, pl, pn); break;
	case VEIL_MD_DROP_DEVICE: on_drop_device(c, pl, pn); break;
	case VEIL_MD_SET_SHARED_DEVICE_DATA: on_set_shared_data(c, pl, pn); break;
	default:
		/* A server-to-client type or an unknown one. */
		veil_log_debug("mediator: closing a device that sent type 0x%02x", type);
		conn_close(c, VEIL_MD_CLOSE_PROTOCOL);
		break;
	}
}

static void md_drained(void *ctx)
{
	pump(ctx);
}

/* The handshake must be complete within hs_timeout_ms of the upgrade. */
static void md_established(void *ctx)
{
	struct md_conn *c = ctx;
	if (c->state == C_HELLO)
		veil_http_ws_timer(c->ws, c->m->hs_timeout_ms);
}

static void md_closed(void *ctx)
{
	struct md_conn *c = ctx;
	/* Its reflects waiting for their batch stay there, without it (no ack: it is gone). */
	for (size_t i = 0; i < c->m->npend; i++)
		if (c->m->pend[i].c == c)
			c->m->pend[i].c = NULL;
	c->state = C_CLOSING;
	group_leave(c);
	up_close(c);
	hs_free(c);
	free(c->eph);
	veil_buf_drop(&c->early);
	veil_buf_drop(&c->held);
	free(c);
}

static const struct veil_http_ws_ops md_ops = {
    .open = md_open,
    .message = md_message,
    .drained = md_drained,
    .established = md_established,
    .closed = md_closed,
    .timer = md_timer,
};

static void md_free(void *arg)
{
	struct veil_medsvc *m = arg;
	if (m->chat != NULL) {
		/* Every session was closed with its device: what the list still holds goes. */
		veil_chat_pipe_consumer(m->chat, NULL, NULL);
		veil_chat_pipe_run(m->chat, NULL, NULL);
	}
	for (size_t i = 0; i < MD_BUCKETS; i++)
		while (m->buckets[i] != NULL) {
			struct md_group *g = m->buckets[i];
			m->buckets[i] = g->next;
			free(g->tx_scope);
			free(g->txw);
			free(g);
		}
	batch_flush(m);
	md_store_close(m->st);
	free(m->pend);
	veil_buf_release(&m->penv);
	free(m);
}

int veil_medsvc_register(struct veil_http *h, const struct veil_server *srv)
{
	char path[1100];
	struct veil_medsvc *m = calloc(1, sizeof *m);
	if (m == NULL)
		return VEIL_ENOMEM;
	m->h = h;
	veil_buf_init(&m->penv, MD_BATCH_BYTES + VEIL_MD_MAX_MESSAGE);
	m->max_slots = srv->cfg.md_max_slots;
	if (m->max_slots == 0 || m->max_slots > MD_MAX_DEVICES)
		m->max_slots = MD_MAX_DEVICES;
	m->tx_ttl_s = srv->cfg.md_tx_ttl_s > 0 ? srv->cfg.md_tx_ttl_s : 60;
	m->hs_timeout_ms = (srv->cfg.md_hs_timeout_s > 0 ? srv->cfg.md_hs_timeout_s : 10) * 1000u;
	m->queue_limit = srv->cfg.md_queue_limit > 0 ? srv->cfg.md_queue_limit : 100000;
	m->volatile_ttl_ms = srv->cfg.md_volatile_ttl_s * 1000u;
	m->chat = srv->chat;
	int rc;
	/* With a PostgreSQL store, the mediator's tables are in it too (several nodes). */
	if (strncmp(srv->cfg.store, "postgres", 8) == 0)
		snprintf(path, sizeof path, "%s", srv->cfg.store);
	else
		snprintf(path, sizeof path, "%s/mediator.db", srv->cfg.data_dir);
	rc = md_store_open(&m->st, path);
	if (rc == 0)
		md_store_set_queue_limit(m->st, m->queue_limit);
	if (rc == 0)
		md_store_on_batch(m->st, batch_done, md_store_woke, m);
	if (rc == 0 && md_store_shared(m->st))
		md_store_on_event(m->st, md_store_woke, m);
	if (rc == 0)
		rc = veil_http_on_wake(h, md_wake, m);
	if (rc == 0)
		rc = veil_http_on_pass(h, md_pass, m);
	if (rc == 0)
		rc = veil_http_ws_route(h, VEIL_MEDIATOR_PREFIX, VEIL_MD_MAX_MESSAGE, &md_ops, m);
	if (rc == 0)
		rc = veil_http_on_stop(h, md_free, m);
	if (rc == 0 && m->chat != NULL)
		veil_chat_pipe_consumer(m->chat, md_pipes_woke, m);
	if (rc != 0) {
		md_store_close(m->st);
		free(m);
	}
	return rc;
}
